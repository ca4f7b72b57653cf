"""Editors: accounts with argon2-hashed passwords and roles (admin, editor)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.core.models import Editor, EditorRole
from digest.core.validation import control_character

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
        address = validate_email(
            email, check_deliverability=False, test_environment=True, strict=True
        ).normalized
        # Logins compare lowercased addresses, so store them that way.
        address = address.lower()
    except EmailNotValidError as exc:
        raise EditorError(f"{email!r} is not a valid email address: {exc}") from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise EditorError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    problem = control_character(name, "the name")
    if problem:
        raise EditorError(problem)
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


def generate_password() -> str:
    """Return a new random password (about 96 bits, easy to type)."""
    return secrets.token_urlsafe(12)


def list_editors(session: Session) -> list[Editor]:
    """Return every editor, active ones first, then by address."""
    return list(session.scalars(select(Editor).order_by(Editor.active.desc(), Editor.email)))


def find_editor(session: Session, email: str) -> Editor | None:
    """Return the editor with this address (any case), or None."""
    return session.scalar(select(Editor).where(func.lower(Editor.email) == email.strip().lower()))


def _other_active_admins(session: Session, editor: Editor) -> int:
    return session.scalar(
        select(func.count()).where(
            Editor.role == EditorRole.ADMIN, Editor.active.is_(True), Editor.id != editor.id
        )
    ) or 0


def _keep_an_admin(session: Session, editor: Editor) -> None:
    if editor.is_admin and editor.active and _other_active_admins(session, editor) == 0:
        raise EditorError(
            f"{editor.email} is the last active admin: make another editor an admin first"
        )


def set_role(session: Session, editor: Editor, role: EditorRole) -> Editor:
    """Change an editor's role; the last active admin cannot stop being one."""
    if role is not EditorRole.ADMIN:
        _keep_an_admin(session, editor)
    editor.role = role
    session.flush()
    return editor


def set_active(session: Session, editor: Editor, active: bool) -> Editor:
    """Deactivate (logs them out everywhere) or reactivate an editor; never the last admin."""
    if not active:
        _keep_an_admin(session, editor)
    editor.active = active
    session.flush()
    return editor


def set_password(session: Session, editor: Editor, password: str) -> Editor:
    """Replace an editor's password; refuses a short one."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise EditorError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    editor.password_hash = hash_password(password)
    session.flush()
    return editor
