"""Public pages: the front page and the health check."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from sqlalchemy import select, text

from digest.extensions import db_session
from digest.models import Newsletter

bp = Blueprint("public", __name__)


@bp.get("/")
def index() -> str:
    newsletter = db_session().scalars(select(Newsletter).order_by(Newsletter.id)).first()
    return render_template("public/index.html", newsletter=newsletter)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    db_session().execute(text("SELECT 1"))
    return jsonify(status="ok")
