"""Calls per window to a rate-limited API, counted in `rate_buckets` and shared by every worker.

One statement takes a slot: insert the window's row with 1 call, or add one to it only
while it is under the limit. Postgres makes that upsert atomic, so two workers on two
machines can never both take the last slot, and no lock is held while anyone waits.
Windows are fixed (aligned to the epoch) and timed by core.clock.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from core import clock
from core.models import RateBucket

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_TAKE = text(
    """
    INSERT INTO rate_buckets (key, window_start, calls) VALUES (:key, :window, 1)
    ON CONFLICT (key, window_start) DO UPDATE SET calls = rate_buckets.calls + 1
        WHERE rate_buckets.calls < :limit
    RETURNING calls
    """
)


def window_start(now: datetime, window_s: float) -> datetime:
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=elapsed - elapsed % window_s)


def try_acquire(session: Session, key: str, *, limit: int, window_s: float = 60.0, now: datetime | None = None) -> float:
    """Take one call slot: 0.0 when taken, else the seconds until the next window opens.

    A limit of 0 or less means no limit. Commit the session for the slot to count for others.
    """
    if limit <= 0:
        return 0.0
    now = now or clock.now()
    start = window_start(now, window_s)
    taken = session.execute(_TAKE, {"key": key, "window": start, "limit": limit}).scalar()
    if taken is not None:
        return 0.0
    return max(0.01, (start + timedelta(seconds=window_s) - now).total_seconds())


def acquire(key: str, *, limit: int, window_s: float = 60.0, timeout_s: float | None = None) -> float:
    """Wait (real seconds) until a slot is ours; returns the seconds waited. TimeoutError past timeout_s."""
    from core.db import session_scope

    waited = 0.0
    while True:
        with session_scope() as session:
            wait = try_acquire(session, key, limit=limit, window_s=window_s)
        if wait == 0.0:
            return waited
        if timeout_s is not None and waited + wait > timeout_s:
            raise TimeoutError(f"rate limit {key}: no free call within {timeout_s:.0f} s ({limit} per {window_s:.0f} s)")
        time.sleep(wait)
        waited += wait


def calls_in_window(session: Session, key: str, *, window_s: float = 60.0, now: datetime | None = None) -> int:
    start = window_start(now or clock.now(), window_s)
    return session.scalar(
        text("SELECT calls FROM rate_buckets WHERE key = :key AND window_start = :w"), {"key": key, "w": start}
    ) or 0


def prune(session: Session, *, older_than_s: float = 3600.0, now: datetime | None = None) -> int:
    """Drop windows long past (the reaper calls this)."""
    cutoff = (now or clock.now()) - timedelta(seconds=older_than_s)
    return session.execute(delete(RateBucket).where(RateBucket.window_start < cutoff)).rowcount  # type: ignore[attr-defined]  # a CursorResult at runtime
