"""The outbox viewer: the .eml files written instead of sent when no SMTP server is set.

Admins only: the messages carry readers' live links, which act for those readers.

A message's HTML is served alone, from its own route, into a sandboxed iframe: its
Content-Security-Policy allows the email's inline styles and the images it links, and
nothing else (no script, no other request, no form, framed only by this site).
"""

from __future__ import annotations

from pathlib import Path

from flask import abort, current_app, render_template, request
from werkzeug.wrappers import Response

from digest.mail import outbox
from digest.web.editor import admin_only, bp

# Every message holds its reader's live unsubscribe and preference links (and bounce
# address): reading them is acting for any reader, which only admins may.
ADMINS_ONLY = "The outbox holds every reader's personal links: only admins open it."


def _folder() -> Path:
    return Path(current_app.config["OUTBOX_PATH"])


def _message(name: str) -> outbox.Message:
    message = outbox.read_message(_folder(), name)
    if message is None:
        abort(404, "There is no such message in the outbox.")
    return message


def html_policy(image_origins: list[str], measurable: bool = False) -> str:
    """Return the CSP of a message's HTML: its inline styles and linked images, nothing else
    (measurable: the workspace page that frames it may read its height; it still runs no script)."""
    images = " ".join(["data:", *image_origins])
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
        + (" allow-same-origin" if measurable else "")
    )


@bp.get("/outbox")
@admin_only(ADMINS_ONLY)
def outbox_list() -> str:
    """List the newest messages in the outbox: date, recipient, subject."""
    page = outbox.list_messages(_folder(), before=request.args.get("before"))
    return render_template("editor/outbox.html", page=page,
                           smtp_configured=bool(current_app.config.get("SMTP_URL")))


@bp.get("/outbox/<name>")
@admin_only(ADMINS_ONLY)
def outbox_message(name: str) -> str:
    """Show one message: its headers, its text part, and its HTML part in a sandboxed frame."""
    message = _message(name)
    segments = outbox.text_segments(message.text) if message.text is not None else []
    return render_template("editor/outbox_message.html", message=message, segments=segments)


@bp.get("/outbox/<name>/html")
@admin_only(ADMINS_ONLY)
def outbox_html(name: str) -> Response:
    """Serve a message's HTML part alone, under a CSP that lets nothing but its styles and images run."""
    message = _message(name)
    if message.html is None:
        abort(404, "This message has no HTML part.")
    response = current_app.response_class(message.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = html_policy(outbox.image_origins(message.html))
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/outbox/<name>/raw")
@admin_only(ADMINS_ONLY)
def outbox_raw(name: str) -> Response:
    """Serve a message's exact bytes as plain text (its source)."""
    data = outbox.raw_message(_folder(), name)
    if data is None:
        abort(404, "There is no such message in the outbox.")
    response = current_app.response_class(data, mimetype="text/plain")
    return response
