"""API tokens: how a program acts for an editor on /api/v1.

Contract:
- A token is `dg_` + 32 random bytes (URL-safe base64), returned once by `create_token`;
  only its SHA-256 is stored. With 256 random bits a plain hash is enough (no salt or
  slow hash needed), and finding a token is one lookup on the unique hash column, so no
  secret is ever compared character by character.
- A token acts with its editor's current role and stops working the moment the editor is
  deactivated (and disappears with the editor).
- `last_used_at` is written at most once per `TOUCH_INTERVAL`, so a busy integration does
  not turn every read into a write.
- Functions take a Session and flush; the view or command commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from digest.core.db import utcnow
from digest.core.models import ApiToken, Editor
from digest.core.validation import Invalid, text

PREFIX = "dg_"
TOKEN_BYTES = 32
NAME_MAX = 200
TOUCH_INTERVAL = dt.timedelta(minutes=1)


def hash_token(token: str) -> str:
    """Return the stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, editor: Editor, name: str) -> tuple[ApiToken, str]:
    """Add a token for an active editor; return it with the secret, which is never shown again."""
    errors: dict[str, str] = {}
    name = text(name, "name", errors, required=True, max_length=NAME_MAX)
    if not editor.active:
        errors["editor"] = f"{editor.email} is deactivated: reactivate them first."
    if errors:
        raise Invalid(errors)
    secret = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken(editor_id=editor.id, name=name, token_hash=hash_token(secret))
    session.add(token)
    session.flush()
    return token, secret


def authenticate(session: Session, secret: str, now: dt.datetime | None = None) -> ApiToken | None:
    """Return the token with this secret if its editor is active (noting the use), else None."""
    if not secret.startswith(PREFIX) or not secret.isascii():
        return None
    token = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.editor))
        .where(ApiToken.token_hash == hash_token(secret))
    )
    if token is None or not token.editor.active:
        return None
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL:
        token.last_used_at = now
        session.flush()
    return token


def list_tokens(session: Session, editor: Editor | None = None) -> list[ApiToken]:
    """Return the tokens of one editor (or of everyone), newest first, editors loaded."""
    query = select(ApiToken).options(joinedload(ApiToken.editor))
    if editor is not None:
        query = query.where(ApiToken.editor_id == editor.id)
    return list(session.scalars(query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def get_token(session: Session, token_id: int, editor: Editor | None = None) -> ApiToken | None:
    """Return the token with this id (only if it belongs to editor, when given), or None."""
    token = session.get(ApiToken, token_id)
    if token is None or (editor is not None and token.editor_id != editor.id):
        return None
    return token


def revoke(session: Session, token: ApiToken) -> None:
    """Delete a token: the next request that sends it is refused."""
    session.delete(token)
    session.flush()
