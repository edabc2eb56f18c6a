"""Maintenance the scheduler's reaper job runs (any worker may too): what dead workers left behind."""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from core import clock
from core.backfill import budget, queue, ratelimit
from core.backfill.workers import prune_workers
from core.db import session_scope


class ReapReport(NamedTuple):
    jobs: int
    reservations: int
    buckets: int
    workers: int


def reap(*, now: datetime | None = None) -> ReapReport:
    """Take back expired leases, close their reservations, drop old rate windows and dead workers."""
    now = now or clock.now()
    with session_scope() as s:
        jobs = queue.reap_expired(s, now=now)
        reservations = budget.reap_reservations(s, now=now)
        buckets = ratelimit.prune(s, now=now)
        workers = prune_workers(s, now=now)
    return ReapReport(len(jobs), len(reservations), buckets, workers)
