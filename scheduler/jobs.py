"""The scheduler's jobs, named by reference ("scheduler.jobs:channel_sync"), so each is a plain
module-level function; the work itself lives in core/.

Shared jobs (every scheduler process fires them; scheduler/firing.py lets exactly one run
each firing, and each is safe to run twice anyway):
- channel_sync: list the channel, register and queue new videos;
- budget_rollover: at the top of each hour (so at every midnight and first of the month in
  the budget's timezone) wake jobs that waited for money if money is back;
- lease_reaper: take back jobs of workers that stopped answering, close their reservations;
- sync_requests: the admin's "sync now", picked up within seconds;
- zoom_sync: list recent Zoom cloud recordings, catching what webhooks missed (a no-op
  while Zoom is not configured);
- speaker_turns: a time-budgeted diarization pass over indexed items (core/speakers/stage.py;
  only where the speakers extra is installed).
- backup: a pg_dump of the embedded database with retention (core/backup.py; a no-op that says
  so on a managed PostgreSQL, which keeps its own backups).

Per-process jobs (every scheduler process runs its own):
- backfill_tick: claim work for this process's free worker slots;
- reembed_tick: move a batch of chunks indexed with another embedding model into the configured
  model's vector space (core/reembed.py; a no-op once everything is there), then fill a batch
  of missing sentence vectors (core/sentence_index.py);
- progress_snapshot: store the run's progress for the dashboards.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from core.backfill import budget
from core.backfill.progress import save_snapshot
from core.backfill.reaper import ReapReport, reap
from core.backfill.worker import Worker
from core.db import session_scope
from core.outage import OutageLog, ride_out

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
_outages: dict[str, OutageLog] = {}


def through_outages(fn: F) -> F:
    """A tick that finds the database gone logs one line (once per outage) and returns None.

    The next firing tries again; APScheduler would otherwise log a traceback every tick.
    """

    @functools.wraps(fn)
    def tick(*args: Any, **kwargs: Any) -> Any:
        outage = _outages.setdefault(fn.__name__, OutageLog(f"scheduler {fn.__name__}", log))
        return ride_out(outage, fn, *args, **kwargs)

    return tick  # type: ignore[return-value]

_worker: Worker | None = None  # this process's worker, set by scheduler.__main__


def set_worker(worker: Worker | None) -> None:
    global _worker
    _worker = worker


def channel_sync(url: str | None = None) -> str:
    from core.backfill.sync import sync_channel
    from core.config import get_settings

    if not (url or get_settings().channel_url):
        return "no channel configured"
    report = sync_channel(url=url)
    if report.error:
        log.error("channel sync failed: %s", report.error)
    return str(report)


def sync_requests() -> str | None:
    """Run the admin's "sync now" (core.admin_actions.request_sync) without waiting for the interval."""
    from core.admin_actions import take_sync_request
    from core.models import Source

    with session_scope() as s:
        request = take_sync_request(s)
        source = s.get(Source, request["source_id"]) if request and request.get("source_id") else None
        url = source.url if source is not None and source.kind == "youtube" else None
    if not request:
        return None
    log.info("sync requested by %s", request.get("by"))
    return channel_sync(url)


def zoom_sync() -> str:
    from core.zoom.sync import sync_recent

    return str(sync_recent())


@through_outages
def backfill_tick() -> int:
    """Start jobs for free slots of this process (each runs in its own thread)."""
    if _worker is None or _worker.stopping:
        return 0
    return _worker.fill()


@through_outages
def reembed_tick() -> str | None:
    """A bounded batch of re-embedding (the whole archive after EMBEDDING_MODEL changed)."""
    from core.reembed import BATCH_ITEMS, PaidReembedRefused, reembed_pending

    if _worker is not None and _worker.stopping:
        return None
    try:
        report = reembed_pending(max_items=BATCH_ITEMS)
    except PaidReembedRefused:
        return None  # paid embeddings are re-done through ingestion and its budget
    if report.items:
        log.warning("embeddings: %s", report.line())  # seen in the scheduler's console: it is not instant
    if not report.remaining:
        # Then the sentence vectors of items indexed before them (or in another model's space).
        from core.sentence_index import BATCH_ITEMS as SENTENCE_BATCH
        from core.sentence_index import backfill

        filled = backfill(max_items=SENTENCE_BATCH)
        if filled.items:
            log.warning("sentence vectors: %d item(s), %d sentences; %d item(s) left",
                        filled.items, filled.sentences, filled.remaining)
    return report.line()


def budget_rollover() -> int:
    with session_scope() as s:
        woken = budget.roll_over(s)
    if woken:
        log.info("budget period rolled over: %d waiting job(s) may run again", woken)
    return woken


def lease_reaper() -> ReapReport:
    report = reap()
    if report.jobs or report.reservations:
        log.warning("reaper: %s", report)
    return report


@through_outages
def backup() -> str:
    from core.backup import scheduled_backup

    line = scheduled_backup()
    log.info("%s", line)
    return line


@through_outages
def progress_snapshot() -> str:
    with session_scope() as s:
        return save_snapshot(s).line()


@through_outages
def speaker_turns() -> str | None:
    """A few minutes of speaker turns over indexed items (resumed at the next firing)."""
    from core import speakers

    if not speakers.available() or (_worker is not None and _worker.stopping):
        return None
    from core.speakers.stage import TICK_BUDGET_S, diarize_pending

    report = diarize_pending(budget_s=TICK_BUDGET_S)
    if report.done or report.failed:
        log.warning("%s", report.line())
    return report.line()
