"""Sources and the inbox: feeds and their health, items to accept or dismiss, saved links."""

from __future__ import annotations

from flask import (
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.models import InboxItem
from digest.core.validation import Invalid, as_id
from digest.domain import inbox, links, newsletters, sources
from digest.web.editor import bp, commit_change, int_arg, newsletter_or_409

ID = "int(max=2147483647)"


def _sources_page(errors: dict[str, str] | None = None, status: int = 200) -> Response:
    newsletter = g.newsletter
    dbs = db_session()
    return make_response(render_template(
        "editor/sources.html",
        sources=sources.list_sources(dbs, newsletter) if newsletter else [],
        sections=newsletters.sections(dbs, newsletter) if newsletter else [],
        errors=errors or {},
        form=request.form if errors else {},
    ), status)


@bp.get("/sources")
def sources_list() -> Response:
    """List the sources with their health, and the form to add one."""
    return _sources_page()


@bp.post("/sources")
def source_add() -> Response:
    """Add a source for a section."""
    newsletter = newsletter_or_409()
    dbs = db_session()
    try:
        source = sources.add_source(dbs, newsletter, request.form.get("url", ""),
                                    request.form.get("section", ""))
    except Invalid as exc:
        dbs.rollback()
        return _sources_page(exc.errors, 400)
    dbs.commit()
    flash(f"{source.url} is a source for {source.section.name}: it is read within a minute.",
          "success")
    return redirect(url_for("editor.sources_list"))


@bp.post(f"/sources/<{ID}:source_id>/remove")
def source_remove(source_id: int) -> Response:
    """Remove a source (its items stay in the inbox)."""
    source = sources.get_source(db_session(), source_id, newsletter_or_409())
    if source is None:
        abort(404)
    url = source.url
    commit_change(lambda dbs: sources.remove_source(dbs, source),
                  f"{url} is no longer a source.", (Invalid,))
    return redirect(url_for("editor.sources_list"))


@bp.post("/sources/include-accepted")
def sources_include_accepted() -> Response:
    """Choose whether the weekly issue pulls in accepted items by itself."""
    newsletter = newsletter_or_409()
    include = request.form.get("include") == "1"
    commit_change(lambda dbs: inbox.set_include_accepted(dbs, newsletter, include),
                  "The weekly issue now publishes and carries the items you accept." if include
                  else "Accepted items now stay drafts until you publish them.", (Invalid,))
    return redirect(url_for("editor.sources_list"))


@bp.get("/inbox")
def inbox_list() -> str:
    """List the new items (or accepted or dismissed ones), newest first."""
    newsletter = g.newsletter
    state = request.args.get("state", "new")
    dbs = db_session()
    page = inbox.list_items(dbs, newsletter, state=state, page=int_arg("page") or 1) \
        if newsletter else None
    return render_template("editor/inbox.html", page=page, state=state,
                           sections=newsletters.sections(dbs, newsletter) if newsletter else [])


def _item(item_id: int) -> InboxItem:
    item = inbox.get_item(db_session(), item_id, newsletter_or_409())
    if item is None:
        abort(404)
    return item


@bp.post(f"/inbox/<{ID}:item_id>/accept")
def inbox_accept(item_id: int) -> Response:
    """Make a draft post of an item and open it."""
    item = _item(item_id)
    dbs = db_session()
    try:
        post = inbox.accept(dbs, item, summary=request.form.get("summary"),
                            section_id=as_id(request.form.get("section_id", "")))
    except Invalid as exc:
        dbs.rollback()
        flash(" ".join(exc.errors.values()), "error")
        return redirect(url_for("editor.inbox_list"))
    dbs.commit()
    flash(f"“{post.title}” is a draft post now: edit it and publish it when it is ready.",
          "success")
    return redirect(url_for("editor.post_edit", post_id=post.id))


@bp.post(f"/inbox/<{ID}:item_id>/dismiss")
def inbox_dismiss(item_id: int) -> Response:
    """Hide an item for good."""
    item = _item(item_id)
    title = item.title
    commit_change(lambda dbs: inbox.dismiss(dbs, item), f"“{title}” is dismissed.", (Invalid,))
    return redirect(url_for("editor.inbox_list"))


@bp.route("/inbox/save", methods=["GET", "POST"])
def inbox_save() -> Response:
    """Show the save-a-link form (the bookmarklet's target, filled from the page); save it."""
    newsletter = newsletter_or_409()
    values = request.form if request.method == "POST" else request.args
    form = {k: values.get(k, "") for k in ("url", "title", "description")}
    errors: dict[str, str] = {}
    if request.method == "POST":
        dbs = db_session()
        try:
            item, created = inbox.save_link(dbs, newsletter, form["url"], form["title"],
                                            form["description"])
        except Invalid as exc:
            dbs.rollback()
            errors = exc.errors
        else:
            dbs.commit()
            flash(f"“{item.title}” is {'in the inbox' if created else 'already in the inbox'}.",
                  "success")
            return redirect(url_for("editor.inbox_list"))
    save_url = links.absolute(current_app.config, url_for("editor.inbox_save"))
    return make_response(render_template("editor/inbox_save.html", form=form, errors=errors,
                                         save_url=save_url), 400 if errors else 200)
