"""Who may use the admin console: password sign-in (argon2) with throttling, or OIDC.

The password comes from settings (`ADMIN_PASSWORD_HASH`, an argon2 hash, or the plain
`ADMIN_PASSWORD` for development). Every attempt is written to `login_attempts` with the
client it came from; after `login_max_failures` failures for one user name *from one client*
within `login_window_s` seconds, further attempts from that client are refused — without even
checking the password — until the oldest of those failures leaves the window, and the caller
is told how long to wait. Another client (the real admin's browser) is not affected, so a
stranger cannot lock the admin out.

OIDC (Streamlit's `st.login`) is used when `[auth]` is configured in secrets.toml; then an
account is an admin only if its e-mail is in `admin_emails`. No Streamlit import here: the
page hands us the `[auth]` table and the signed-in user's e-mail.
"""
from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.config import Settings
from core.models import LoginAttempt

log = logging.getLogger(__name__)
_hasher = PasswordHasher()
# Verified against when the user name is wrong, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-the-password")


class SignInResult(NamedTuple):
    ok: bool
    user: str | None
    message: str  # shown to the person signing in
    wait_s: float = 0.0  # > 0: throttled, try again after this many seconds


def _now() -> datetime:
    return datetime.now(timezone.utc)


def password_configured(settings: Settings) -> bool:
    return bool(settings.admin_password_hash or settings.admin_password)


def verify_password(settings: Settings, password: str) -> bool:
    """True if `password` matches the argon2 hash (preferred) or the plain development password."""
    if settings.admin_password_hash:
        try:
            return _hasher.verify(settings.admin_password_hash, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            log.error("ADMIN_PASSWORD_HASH is not a valid argon2 hash (python -m core hash-password makes one)")
            return False
    if settings.admin_password:
        # Constant-time compare: the plain password is for development, but no need to leak it.
        return hmac.compare_digest(password.encode(), settings.admin_password.encode())
    return False


def _normalise(username: str) -> str:
    return username.strip().lower()


UNKNOWN_CLIENT = "unknown"


def _client(client: str | None) -> str:
    return (client or "").strip()[:100] or UNKNOWN_CLIENT


def _attempts_of(name: str, client: str):
    return (LoginAttempt.username == name, LoginAttempt.client == client)


def throttle_wait_s(
    session: Session, settings: Settings, username: str, *, client: str | None = None, now: datetime | None = None
) -> float:
    """Seconds this user name must wait before its next attempt from this client (0 = may try now).

    Failures count only since the client's last success: signing in correctly clears the slate.
    """
    now = now or _now()
    name, who = _normalise(username), _client(client)
    window_start = now - timedelta(seconds=settings.login_window_s)
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(*_attempts_of(name, who), LoginAttempt.success.is_(True))
    )
    since = max(window_start, last_success) if last_success else window_start
    recent = list(
        session.scalars(
            select(LoginAttempt.at)
            .where(*_attempts_of(name, who), LoginAttempt.success.is_(False), LoginAttempt.at > since)
            .order_by(LoginAttempt.at.desc())
            .limit(settings.login_max_failures)
        )
    )
    if len(recent) < settings.login_max_failures:
        return 0.0
    # Locked until the oldest of the last N failures falls out of the window.
    unlock_at = recent[-1] + timedelta(seconds=settings.login_window_s)
    return max(0.0, (unlock_at - now).total_seconds())


def format_wait(seconds: float) -> str:
    seconds = int(seconds + 0.999)
    if seconds >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"
    return f"{seconds} s"


def sign_in(
    session: Session, settings: Settings, username: str, password: str, *, client: str | None = None,
    now: datetime | None = None,
) -> SignInResult:
    """Check a password sign-in from `client` (the browser's address), record the attempt, say what to show.

    The caller commits the session (the attempt row must be kept even when the sign-in fails).
    """
    now = now or _now()
    name, who = _normalise(username), _client(client)
    if not password_configured(settings):
        return SignInResult(
            False, None,
            "No admin password is configured. Set ADMIN_PASSWORD_HASH (python -m core hash-password) "
            "in the environment or .streamlit/secrets.toml.",
        )
    if not name or not password:
        return SignInResult(False, None, "Enter the user name and the password.")
    wait = throttle_wait_s(session, settings, name, client=who, now=now)
    if wait > 0:
        return SignInResult(False, None, f"Too many failed attempts. Try again in {format_wait(wait)}.", wait)

    name_ok = hmac.compare_digest(name.encode(), _normalise(settings.admin_user).encode())
    if name_ok:
        ok = verify_password(settings, password)
    else:
        try:  # same work as a real check, then refuse
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        ok = False
    session.add(LoginAttempt(at=now, username=name, success=ok, client=who))
    session.flush()
    if ok:
        audit.record(session, settings.admin_user, "auth.sign_in", "admin console", after={"method": "password"})
        return SignInResult(True, settings.admin_user, "Signed in.")
    wait = throttle_wait_s(session, settings, name, client=who, now=now)
    if wait > 0:
        return SignInResult(False, None, f"Wrong user name or password. Too many failed attempts: try again in {format_wait(wait)}.", wait)
    left = settings.login_max_failures - _failures_in_window(session, settings, name, who, now)
    hint = f" {left} attempt{'s' if left != 1 else ''} left before a wait." if left <= 2 else ""
    return SignInResult(False, None, "Wrong user name or password." + hint)


def _failures_in_window(session: Session, settings: Settings, name: str, who: str, now: datetime) -> int:
    window_start = now - timedelta(seconds=settings.login_window_s)
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(*_attempts_of(name, who), LoginAttempt.success.is_(True))
    )
    since = max(window_start, last_success) if last_success else window_start
    return int(
        session.scalar(
            select(func.count()).where(
                *_attempts_of(name, who), LoginAttempt.success.is_(False), LoginAttempt.at > since
            )
        )
        or 0
    )


def sign_out(session: Session, actor: str, *, method: str = "password") -> None:
    audit.record(session, actor, "auth.sign_out", "admin console", before={"method": method})


# ---------------------------------------------------------------------------------------------
# OIDC (Streamlit's st.login)
# ---------------------------------------------------------------------------------------------


def oidc_configured(settings: Settings, auth_section: Mapping[str, Any] | None) -> bool:
    """True when secrets.toml has a usable `[auth]` table and OIDC sign-in is switched on.

    Streamlit needs redirect_uri and cookie_secret, plus client_id, client_secret and
    server_metadata_url either directly under [auth] or under one provider table ([auth.google]).
    """
    if not settings.admin_oidc or not auth_section:
        return False
    if not auth_section.get("redirect_uri") or not auth_section.get("cookie_secret"):
        return False
    needed = ("client_id", "client_secret", "server_metadata_url")
    if all(auth_section.get(k) for k in needed):
        return True
    return any(isinstance(v, Mapping) and all(v.get(k) for k in needed) for v in auth_section.values())


def oidc_providers(auth_section: Mapping[str, Any] | None) -> list[str | None]:
    """Provider names for st.login(provider): [None] for a single default provider."""
    if not auth_section:
        return []
    named: list[str | None] = [k for k, v in auth_section.items() if isinstance(v, Mapping)]
    return named or [None]


def oidc_admin(settings: Settings, email: str | None) -> str | None:
    """The admin name for an OIDC-signed-in account, or None if that account is not an admin."""
    if not email:
        return None
    allowed = {e.strip().lower() for e in settings.admin_emails}
    return email.strip().lower() if email.strip().lower() in allowed else None


class AttemptRow(NamedTuple):
    at: datetime
    username: str
    success: bool


def recent_attempts(session: Session, *, limit: int = 20) -> list[AttemptRow]:
    """The latest sign-in attempts, newest first (the audit page shows them)."""
    rows = session.execute(
        select(LoginAttempt.at, LoginAttempt.username, LoginAttempt.success).order_by(LoginAttempt.at.desc()).limit(limit)
    )
    return [AttemptRow(*r) for r in rows]
