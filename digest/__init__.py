"""digest: a self-hosted newsletter service for a weekly digest."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import FileSystemLoader

from digest.core.resources import overrides_dir, resource_dir


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app: settings → database → extensions → blueprints → CLI."""
    from digest import cli, web
    from digest.core import config, extensions, foreground, ratelimits

    settings = config.load_config(overrides=overrides)
    instance_path = settings.get("INSTANCE_PATH") or None
    app = Flask(
        __name__,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        instance_relative_config=True,
        template_folder=str(resource_dir("templates")),
    )
    app.config.update(settings)
    instance = Path(app.instance_path)
    # The instance folder holds the database, the secret key and the outbox's live links.
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    app.config["INSTANCE_PATH"] = str(instance)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = config.instance_secret_key(instance)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'digest.sqlite3'}"
    app.config.setdefault("OUTBOX_PATH", str(instance / "outbox"))
    # Small request bodies everywhere; upload routes raise it for themselves (digest.web).
    # (Flask's own default is None, no limit, so a setdefault would never apply.)
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = web.guard.MAX_BODY_BYTES
    storage = app.config["RATELIMIT_STORAGE_URL"]
    # In one process, counters without limits' sweeper thread (digest.core.ratelimits).
    app.config["RATELIMIT_STORAGE_URI"] = f"{ratelimits.SCHEME}://" if storage == "memory://" else storage
    secure = app.config["BASE_URL"].startswith("https://")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        WTF_CSRF_TIME_LIMIT=None,
    )

    # Background threads step aside while this process answers (digest.core.foreground).
    app.wsgi_app = foreground.counted(app.wsgi_app)  # type: ignore[method-assign,assignment]  # as Flask's docs wrap the WSGI app
    if app.config["TRUSTED_PROXIES"]:
        # For any WSGI server (gunicorn); `digest run` hands this job to waitress instead.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]  # as Flask's docs wrap the WSGI app
    # An operator's overrides (INSTANCE/templates) win over the packaged pages and emails.
    folders = [overrides_dir(app.config), resource_dir("templates")]
    app.jinja_loader = FileSystemLoader([str(folder) for folder in folders])
    extensions.init_db(app)
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    extensions.login_manager.init_app(app)
    web.init_app(app)
    cli.register(app)
    return app
