"""Two-factor sign-in for editors: TOTP codes (RFC 6238) and one-time recovery codes.

Contract: an editor's second factor is on once they confirmed a code from their
authenticator (`totp_enabled_at` set); until then the secret is only pending and can be
shown again, afterwards never. The secret is stored sealed (encrypted) with the app's
secret key. A TOTP code is accepted for its 30-second step and the one before and after,
and at most once: the last used step is kept and moves forward in one guarded UPDATE, so
two requests racing with the same code cannot both pass. Ten recovery codes are made at
enrolment, shown once and stored as keyed hashes; each works once (one guarded UPDATE).
The workspace may require every editor to have a second factor. API tokens are not
covered: a token is a long random secret of its own, created in a signed-in session.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from digest.core.db import rowcount
from digest.core.models import Editor, RecoveryCode, Workspace
from digest.core.tokens import BadToken, keyed_hash, seal, unseal

RECOVERY_CODES = 10
STEP_SECONDS = 30
_SEALED = "totp-secret"
# Recovery codes: ten characters of an alphabet without look-alikes (~50 bits each).
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class TwoFactorError(ValueError):
    """A second-factor change or check was refused; the message says why."""


def is_on(editor: Editor) -> bool:
    """Return whether the editor signs in with a second factor."""
    return editor.totp_enabled_at is not None


def start_enrolment(session: Session, editor: Editor, secret_key: str) -> str:
    """Give the editor a new pending TOTP secret and return it (refused once 2FA is on)."""
    if is_on(editor):
        raise TwoFactorError("two-factor sign-in is already on; turn it off first to change devices")
    secret = pyotp.random_base32()
    editor.totp_secret = seal(secret_key, _SEALED, secret)
    editor.totp_last_step = None
    session.flush()
    return secret


def pending_secret(editor: Editor, secret_key: str) -> str | None:
    """Return the secret of an enrolment not yet confirmed, or None (never once 2FA is on)."""
    if is_on(editor) or editor.totp_secret is None:
        return None
    return _unsealed(secret_key, editor.totp_secret)


def provisioning_uri(editor: Editor, secret: str, issuer: str) -> str:
    """Return the otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=editor.email, issuer_name=issuer)


def confirm_enrolment(session: Session, editor: Editor, secret_key: str, code: str,
                      now: dt.datetime) -> list[str]:
    """Turn 2FA on when code matches the pending secret; return the new recovery codes."""
    secret = pending_secret(editor, secret_key)
    if secret is None:
        raise TwoFactorError("start again: there is no pending authenticator to confirm")
    step = _matching_step(secret, code, now)
    if step is None:
        raise TwoFactorError("that code does not match: check the device's clock and try the next code")
    editor.totp_enabled_at = now
    editor.totp_last_step = step
    session.flush()
    return new_recovery_codes(session, editor, secret_key, now)


def new_recovery_codes(session: Session, editor: Editor, secret_key: str, now: dt.datetime) -> list[str]:
    """Replace the editor's recovery codes with ten new ones; return them (shown once)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.editor_id == editor.id))
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(editor_id=editor.id, code_hash=_code_hash(secret_key, code), created_at=now)
                    for code in codes)
    session.flush()
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def recovery_codes_left(session: Session, editor: Editor) -> int:
    """Return how many of the editor's recovery codes are unused."""
    return session.scalar(select(func.count()).where(
        RecoveryCode.editor_id == editor.id, RecoveryCode.used_at.is_(None))) or 0


def check_code(session: Session, editor: Editor, secret_key: str, code: str, now: dt.datetime) -> bool:
    """Return whether code (from the authenticator, or a recovery code) signs the editor in; uses it up."""
    if not is_on(editor) or editor.totp_secret is None:
        return False
    typed = "".join(code.split())
    if len(typed) == 6 and typed.isdigit():
        secret = _unsealed(secret_key, editor.totp_secret)
        step = _matching_step(secret, typed, now) if secret is not None else None
        if step is None:
            return False
        # A code is good for one sign-in: the step only moves forward, in one statement.
        used = rowcount(session.execute(
            update(Editor)
            .where(Editor.id == editor.id,
                   or_(Editor.totp_last_step.is_(None), Editor.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )) == 1
        if used:
            editor.totp_last_step = step
        return used
    return rowcount(session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.editor_id == editor.id, RecoveryCode.used_at.is_(None),
               RecoveryCode.code_hash == _code_hash(secret_key, typed))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )) == 1


def turn_off(session: Session, editor: Editor) -> Editor:
    """Remove the editor's second factor and recovery codes (a lost device, or their choice)."""
    editor.totp_secret = None
    editor.totp_enabled_at = None
    editor.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.editor_id == editor.id))
    session.flush()
    return editor


def required(session: Session) -> bool:
    """Return whether the workspace requires every editor to sign in with a second factor."""
    return bool(session.scalar(select(Workspace.require_two_factor).order_by(Workspace.id).limit(1)))


def set_required(session: Session, require: bool) -> None:
    """Require (or stop requiring) a second factor of every editor."""
    workspace = session.scalar(select(Workspace).order_by(Workspace.id).limit(1))
    if workspace is None:
        workspace = Workspace()
        session.add(workspace)
    workspace.require_two_factor = require
    session.flush()


def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _unsealed(secret_key: str, sealed: str) -> str | None:
    # Sealed under an earlier secret key: no code matches until an admin runs reset-2fa.
    try:
        return unseal(secret_key, _SEALED, sealed)
    except BadToken:
        return None


def _code_hash(secret_key: str, code: str) -> str:
    return keyed_hash(secret_key, "recovery-code", code.replace("-", "").lower())
