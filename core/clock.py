"""The one clock of the queue, the budget and the worker: real time, or a time tests control.

Every timestamp the backfill writes or compares (leases, back-off, budget periods, ledger
rows) comes from `now()`, never from the database's `now()`, so a test can move a whole
fleet of worker processes to "tomorrow" and watch paid work resume.

Overrides, first match wins:
- `set_now(fn_or_datetime)` in this process (`None` goes back to real time);
- `CHAFFEE_CLOCK_FILE=path`: the file holds an ISO-8601 time, read on every call, so a
  test moves the clock of every worker process at once by rewriting the file;
- `CHAFFEE_CLOCK=2026-11-25T09:00:00+00:00`: a fixed time for one process.

Sleeping and lease heartbeats use real seconds (`time.monotonic`): a frozen clock freezes
the calendar, not the workers.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

_override: Callable[[], datetime] | None = None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _parse(text: str) -> datetime:
    return _aware(datetime.fromisoformat(text.strip()))


def now() -> datetime:
    """The current time (timezone-aware UTC unless an override says otherwise)."""
    if _override is not None:
        return _aware(_override())
    path = os.environ.get("CHAFFEE_CLOCK_FILE")
    if path:
        try:
            return _parse(Path(path).read_text())
        except (OSError, ValueError):
            pass  # a file being rewritten this instant: fall through to the next source
    fixed = os.environ.get("CHAFFEE_CLOCK")
    if fixed:
        return _parse(fixed)
    return datetime.now(timezone.utc)


def set_now(value: datetime | Callable[[], datetime] | None) -> None:
    """Freeze this process's clock at a time, drive it by a function, or (None) release it."""
    global _override
    if value is None or callable(value):
        _override = value
    else:
        frozen = _aware(value)
        _override = lambda: frozen  # noqa: E731


def write_clock_file(path: Path, value: datetime) -> None:
    """Set the shared test clock read through CHAFFEE_CLOCK_FILE (atomic: readers never see half a time)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(_aware(value).isoformat())
    os.replace(tmp, path)


def advance_clock_file(path: Path, delta: timedelta) -> datetime:
    new = _parse(path.read_text()) + delta
    write_clock_file(path, new)
    return new
