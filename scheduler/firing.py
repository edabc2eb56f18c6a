"""Shared periodic jobs run once per firing, however many scheduler processes are up.

Every scheduler process keeps its schedule in memory (APScheduler 3: a job store must never
be shared between schedulers) and fires every shared job itself; the database decides which
process runs a firing:

* firings are *slots*: an interval job's triggers start at the same `EPOCH` in every process,
  so they fire on one grid, and slot = the time rounded down to the job's period;
* `pg_try_advisory_lock` per job name: while one process runs the job, the others' firings
  return at once instead of running it beside it (or queueing behind it);
* the claim, one row per job in `periodic_runs`: an upsert that only moves the job's slot
  forward, so a firing a process reaches after another has already run it is skipped.

A process that dies mid-run drops its connection and with it the lock; the claimed slot
stays claimed, and the next firing runs as usual (the jobs are idempotent).
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, NamedTuple

from apscheduler.util import ref_to_obj
from sqlalchemy import text

from core.db import get_engine
from core.outage import OutageLog, ride_out

log = logging.getLogger(__name__)

# Interval triggers start here in every process, so their firings fall on one shared grid.
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)

_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
_CLAIM = text(
    "INSERT INTO periodic_runs (job, slot, run_by, started_at, finished_at, ok) "
    "VALUES (:job, :slot, :by, now(), NULL, NULL) "
    "ON CONFLICT (job) DO UPDATE SET slot = EXCLUDED.slot, run_by = EXCLUDED.run_by, "
    "started_at = now(), finished_at = NULL, ok = NULL "
    "WHERE periodic_runs.slot < EXCLUDED.slot RETURNING job"
)
_FINISH = text("UPDATE periodic_runs SET finished_at = now(), ok = :ok WHERE job = :job AND slot = :slot")


class Outcome(StrEnum):
    RAN = "ran"
    BUSY = "busy"  # another process is running this job right now
    DONE_ELSEWHERE = "done-elsewhere"  # this firing already ran in another process


class Firing(NamedTuple):
    outcome: Outcome
    slot: datetime
    result: Any = None


def slot_of(period_s: float, now: datetime | None = None) -> datetime:
    """The firing a run at `now` belongs to: the time rounded down to the job's period."""
    now = now or datetime.now(timezone.utc)  # the schedulers fire on the real clock, not core.clock
    steps = (now - EPOCH) // timedelta(seconds=period_s)
    return EPOCH + steps * timedelta(seconds=period_s)


def _runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_outages: dict[str, OutageLog] = {}


def run_once(job: str, period_s: float, ref: str | Callable[..., Any], *args: Any) -> Firing | None:
    """Run the job `ref` ("module:function") for this firing unless another process has or is.

    None when the database is away: one log line per outage, and the next firing tries again.
    """
    outage = _outages.setdefault(job, OutageLog(f"scheduler {job}", log))
    return ride_out(outage, _run_once, job, period_s, ref, *args)


def _run_once(job: str, period_s: float, ref: str | Callable[..., Any], *args: Any) -> Firing:
    fn = ref_to_obj(ref) if isinstance(ref, str) else ref
    slot = slot_of(period_s)
    key = {"key": f"scheduler:{job}"}
    with get_engine().connect() as conn:
        got = conn.execute(_LOCK, key).scalar()
        conn.commit()
        if not got:
            log.debug("%s: running in another process; this firing is skipped", job)
            return Firing(Outcome.BUSY, slot)
        try:
            claimed = conn.execute(_CLAIM, {"job": job, "slot": slot, "by": _runner_id()}).first()
            conn.commit()
            if claimed is None:
                log.debug("%s: the firing of %s already ran in another process", job, slot.isoformat())
                return Firing(Outcome.DONE_ELSEWHERE, slot)
            ok = False
            try:
                result = fn(*args)
                ok = True
            finally:
                conn.execute(_FINISH, {"job": job, "slot": slot, "ok": ok})
                conn.commit()
            return Firing(Outcome.RAN, slot, result)
        finally:
            conn.execute(_UNLOCK, key)
            conn.commit()
