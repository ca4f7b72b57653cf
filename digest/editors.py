"""Editors: accounts with argon2-hashed passwords and roles (admin, editor)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Editor, EditorRole

_hasher = PasswordHasher()
# Verifying against this when no editor matches keeps login time independent of whether
# the address exists, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("digest-dummy-password")
MIN_PASSWORD_LENGTH = 10


class EditorError(ValueError):
    """An editor could not be created or changed; the message says why."""


def hash_password(password: str) -> str:
    """Return the argon2id hash of password."""
    return _hasher.hash(password)


def create_editor(session: Session, email: str, password: str, role: EditorRole, name: str = "") -> Editor:
    """Add an editor; refuses a malformed or taken address and a short password."""
    try:
        address = validate_email(email, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as exc:
        raise EditorError(f"{email!r} is not a valid email address: {exc}") from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise EditorError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(Editor.id).where(Editor.email == address)) is not None:
        raise EditorError(f"an editor with the address {address} already exists")
    editor = Editor(email=address, name=name, password_hash=hash_password(password), role=role)
    session.add(editor)
    session.flush()
    return editor


def authenticate(session: Session, email: str, password: str) -> Editor | None:
    """Return the active editor with this address and password, or None."""
    editor = session.scalar(select(Editor).where(Editor.email == email.strip().lower()))
    try:
        _hasher.verify(editor.password_hash if editor else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if editor is None or not editor.active:
        return None
    if _hasher.check_needs_rehash(editor.password_hash):
        editor.password_hash = hash_password(password)
    return editor


def load_editor(session: Session, editor_id: str) -> Editor | None:
    """Return the active editor with this id (Flask-Login's user loader)."""
    if not editor_id.isdigit():
        return None
    editor = session.get(Editor, int(editor_id))
    return editor if editor is not None and editor.active else None
