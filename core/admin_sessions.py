"""Admin sessions that survive reloads and new tabs: a server-side row, an HttpOnly cookie in the browser.

Streamlit cannot set a cookie from Python, and a cookie set by page JavaScript could not be
HttpOnly. So a sign-in goes in two steps:

1. the sign-in page (Streamlit) checks the password and calls `open_session`: a row with a
   one-use *handoff* code (valid HANDOFF_S seconds), the code handed to this browser tab only;
2. the tab loads `GET /api/admin/session?code=…` from the UI server itself (core/admin_web.py,
   a route of the same st.App): `redeem_handoff` swaps the code for a fresh token, and the
   answer sets it as an HttpOnly, SameSite=Strict cookie.

Every later page load (a reload, a new tab) sends the cookie with Streamlit's WebSocket
handshake; the page reads it with `st.context.cookies` and `session_user` finds the row.
Only SHA-256 hashes of the token and of the code are stored. Sign-out revokes the row (the
cookie is then worthless even if a copy survives) and the route clears the cookie.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import AdminSession

COOKIE_NAME = "chaffee_admin_session"
HANDOFF_S = 60.0
TOKEN_BYTES = 32
SEEN_EVERY_S = 60.0  # last_seen_at is refreshed at most this often (no write on every page run)


class Opened(NamedTuple):
    session_id: int
    handoff_code: str  # goes to the browser once, in the URL of the cookie route


class ActiveSession(NamedTuple):
    session_id: int
    username: str
    method: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def open_session(
    session: Session, username: str, *, method: str, ttl_s: float, client: str | None = None,
    now: datetime | None = None,
) -> Opened:
    """A new session for a just-verified admin; its cookie is set when the handoff code is redeemed."""
    now = now or _now()
    code = secrets.token_urlsafe(TOKEN_BYTES)
    row = AdminSession(
        username=username, method=method, handoff_hash=_hash(code), handoff_expires_at=now + timedelta(seconds=HANDOFF_S),
        client=client, created_at=now, last_seen_at=now, expires_at=now + timedelta(seconds=ttl_s),
    )
    session.add(row)
    session.flush()
    return Opened(row.id, code)


def redeem_handoff(session: Session, code: str, *, now: datetime | None = None) -> tuple[str, datetime] | None:
    """Swap a one-use handoff code for the session's token; (token, expires_at), or None if unusable.

    One UPDATE: a code redeemed twice (or late) finds no row the second time.
    """
    if not code or len(code) > 200:
        return None
    now = now or _now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = session.execute(
        update(AdminSession)
        .where(
            AdminSession.handoff_hash == _hash(code),
            AdminSession.handoff_expires_at > now,
            AdminSession.revoked_at.is_(None),
            AdminSession.expires_at > now,
        )
        .values(token_hash=_hash(token), handoff_hash=None, handoff_expires_at=None)
        .returning(AdminSession.expires_at)
    ).first()
    return (token, row.expires_at) if row is not None else None


def session_user(session: Session, token: str | None, *, now: datetime | None = None) -> ActiveSession | None:
    """The live session a cookie's token names (not expired, not revoked), or None."""
    if not token or len(token) > 200:
        return None
    now = now or _now()
    row = session.scalars(
        select(AdminSession).where(
            AdminSession.token_hash == _hash(token), AdminSession.revoked_at.is_(None), AdminSession.expires_at > now
        )
    ).first()
    if row is None:
        return None
    if (now - row.last_seen_at).total_seconds() >= SEEN_EVERY_S:
        row.last_seen_at = now
    return ActiveSession(row.id, row.username, row.method)


def revoke(session: Session, *, session_id: int | None = None, token: str | None = None, now: datetime | None = None) -> int:
    """End a session (by id, or by its cookie's token); returns rows revoked."""
    if session_id is None and not token:
        return 0
    cond = AdminSession.id == session_id if session_id is not None else AdminSession.token_hash == _hash(token or "")
    result = session.execute(
        update(AdminSession).where(cond, AdminSession.revoked_at.is_(None)).values(revoked_at=now or _now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult at runtime
