"""`python -m scheduler`: APScheduler 3, its schedule in memory, shared jobs run once per firing.

Runs beside the UI (`python -m core serve` starts it) or alone on a worker machine pointed
at the same DATABASE_URL (e.g. a GPU box: `python -m scheduler --engines local`). It only
schedules: the queue, money and routing live in core/. Every process keeps its own schedule
(APScheduler 3 forbids sharing a job store between schedulers); the shared jobs run once per
firing across processes through scheduler/firing.py. SIGTERM stops the schedule, lets
running jobs finish within SHUTDOWN_GRACE_S, releases the rest, and exits.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from datetime import datetime, timedelta, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config import ConfigError, Settings, get_settings
from scheduler.firing import EPOCH, run_once

log = logging.getLogger("scheduler")


def build_scheduler(scheduler_cls: type[BaseScheduler] = BlockingScheduler) -> BaseScheduler:
    return scheduler_cls(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone=timezone.utc,
    )


def add_shared_job(
    scheduler: BaseScheduler, ref: str, *, job_id: str, name: str, seconds: float | None = None,
    cron: CronTrigger | None = None, period_s: float | None = None, first_run: datetime | None = None,
    args: tuple = (),
) -> None:
    """A job every scheduler process fires and exactly one runs per firing (scheduler/firing.py).

    Interval triggers start at the shared EPOCH so all processes fire on one grid; `period_s`
    (the cron job's period) sizes the firing slots.
    """
    if (cron is None) == (seconds is None) or (cron is not None and period_s is None):
        raise ValueError(f"{job_id}: give either seconds, or a cron trigger with its period_s")
    trigger = cron or IntervalTrigger(seconds=seconds, start_date=EPOCH, timezone=timezone.utc)
    slot_s = period_s or seconds
    extra = {"next_run_time": first_run} if first_run is not None else {}  # None would pause it
    scheduler.add_job(run_once, trigger, args=[job_id, slot_s, ref, *args], id=job_id, name=name,
                      replace_existing=True, **extra)


def add_jobs(scheduler: BaseScheduler, settings: Settings, *, sync: bool = True) -> None:
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    if sync:
        add_shared_job(scheduler, "scheduler.jobs:channel_sync", job_id="channel-sync", name="channel sync",
                       seconds=settings.sync_interval_min * 60, first_run=soon)
    add_shared_job(scheduler, "scheduler.jobs:budget_rollover", job_id="budget-rollover", name="budget roll-over",
                   cron=CronTrigger(minute=0, second=5, timezone=settings.budget_timezone), period_s=3600)
    add_shared_job(scheduler, "scheduler.jobs:lease_reaper", job_id="lease-reaper", name="lease reaper",
                   seconds=max(5.0, settings.lease_s / 2), first_run=soon)
    if sync:
        add_shared_job(scheduler, "scheduler.jobs:zoom_sync", job_id="zoom-sync", name="zoom recordings sync",
                       seconds=30 * 60, first_run=soon)
        add_shared_job(scheduler, "scheduler.jobs:sync_requests", job_id="sync-requests", name="sync on request",
                       seconds=10)
    from core import speakers

    if speakers.available():  # the optional extra: speaker turns for indexed items, a few minutes at a time
        from core.speakers.stage import SCHEDULE_S

        add_shared_job(scheduler, "scheduler.jobs:speaker_turns", job_id="speaker-turns", name="speaker turns",
                       seconds=SCHEDULE_S, first_run=soon)
    if settings.backup_interval_h > 0:
        add_shared_job(scheduler, "scheduler.jobs:backup", job_id="backup", name="database backup",
                       seconds=settings.backup_interval_h * 3600)
    # Per-process jobs: every scheduler process runs its own.
    local = dict(replace_existing=True)
    scheduler.add_job("scheduler.jobs:backfill_tick", "interval", seconds=settings.backfill_tick_s,
                      id="backfill-tick", name="backfill tick", next_run_time=soon, **local)
    # From the start: an archive indexed with another embedding model heals without anyone asking.
    scheduler.add_job("scheduler.jobs:reembed_tick", "interval", seconds=60,
                      id="reembed-tick", name="re-embed into the configured model", next_run_time=soon, **local)
    scheduler.add_job("scheduler.jobs:progress_snapshot", "interval", seconds=60,
                      id="progress-snapshot", name="progress snapshot", next_run_time=soon, **local)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--engines", help="transcription engines this machine runs (default: detected)")
    parser.add_argument("--device", help="advertise this whisper device")
    parser.add_argument("--slots", type=int, help="jobs at once in this process (default WORKER_SLOTS)")
    parser.add_argument("--no-sync", action="store_true", help="do not list the channel from this process")
    parser.add_argument("--plugin", action="append", default=[], help="import a module first (it may register engines)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in args.plugin:
        importlib.import_module(name)
    # The jobs' modules, imported now in this one thread: APScheduler runs jobs in a thread pool,
    # and concurrent first imports of the same package can see a partly initialised module.
    for name in ("core.pipeline", "core.admin_actions", "core.search"):
        importlib.import_module(name)
    try:
        settings = get_settings()
        from core.backfill.worker import Worker, install_signal_handlers
        from core.db import get_engine

        get_engine()  # start/join the database and migrate before the first job runs
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from scheduler import jobs

    engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines is not None else None
    worker = Worker(engines=engines, device=args.device, slots=args.slots, role="scheduler")
    worker.start()
    jobs.set_worker(worker)
    scheduler = build_scheduler()
    add_jobs(scheduler, settings, sync=not args.no_sync)

    def stop_schedule() -> None:
        try:
            scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:  # a signal before the start: main() will not start it
            pass

    install_signal_handlers(worker, on_stop=stop_schedule)
    print(f"scheduler {worker.id} running: {worker.capabilities}", flush=True)
    try:
        if not worker.stopping:
            scheduler.start()  # blocks until shutdown
    finally:
        worker.request_stop()
        released = worker.drain()
        jobs.set_worker(None)
        worker.close()
        print(f"scheduler {worker.id} stopped ({released} job(s) released)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
