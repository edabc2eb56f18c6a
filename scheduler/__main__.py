"""`python -m scheduler`: APScheduler 3 with its job store in the app's PostgreSQL.

Runs beside the UI (`python -m core serve` starts it) or alone on a worker machine pointed
at the same DATABASE_URL (e.g. a GPU box: `python -m scheduler --engines local`). It only
schedules: the queue, money and routing live in core/. SIGTERM stops the schedule, lets
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
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from core.config import ConfigError, Settings, get_settings

log = logging.getLogger("scheduler")
JOBS_TABLE = "apscheduler_jobs"


def build_scheduler(url: str) -> BlockingScheduler:
    return BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=url, tablename=JOBS_TABLE), "local": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone=timezone.utc,
    )


def add_jobs(scheduler: BlockingScheduler, settings: Settings, *, sync: bool = True) -> None:
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    shared = dict(jobstore="default", replace_existing=True)
    if sync:
        scheduler.add_job("scheduler.jobs:channel_sync", "interval", minutes=settings.sync_interval_min,
                          id="channel-sync", name="channel sync", next_run_time=soon, **shared)
    scheduler.add_job("scheduler.jobs:budget_rollover", "cron", minute=0, second=5, timezone=settings.budget_timezone,
                      id="budget-rollover", name="budget roll-over", **shared)
    scheduler.add_job("scheduler.jobs:lease_reaper", "interval", seconds=max(5.0, settings.lease_s / 2),
                      id="lease-reaper", name="lease reaper", next_run_time=soon, **shared)
    if sync:
        scheduler.add_job("scheduler.jobs:zoom_sync", "interval", minutes=30,
                          id="zoom-sync", name="zoom recordings sync", next_run_time=soon, **shared)
        scheduler.add_job("scheduler.jobs:sync_requests", "interval", seconds=10,
                          id="sync-requests", name="sync on request", **shared)
    local = dict(jobstore="local", replace_existing=True)
    scheduler.add_job("scheduler.jobs:backfill_tick", "interval", seconds=settings.backfill_tick_s,
                      id="backfill-tick", name="backfill tick", next_run_time=soon, **local)
    # From the start: an archive indexed with another embedding model heals without anyone asking.
    scheduler.add_job("scheduler.jobs:reembed_tick", "interval", seconds=60,
                      id="reembed-tick", name="re-embed into the configured model", next_run_time=soon, **local)
    scheduler.add_job("scheduler.jobs:progress_snapshot", "interval", seconds=60,
                      id="progress-snapshot", name="progress snapshot", next_run_time=soon, **local)


def forget_jobs(ids: tuple[str, ...]) -> None:
    """Drop stored jobs this process must not run (the job store outlives the process)."""
    from sqlalchemy import text

    from core.db import get_engine

    with get_engine().begin() as conn:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": JOBS_TABLE}).scalar():
            conn.execute(text(f"DELETE FROM {JOBS_TABLE} WHERE id = ANY(:ids)"), {"ids": list(ids)})


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
    try:
        settings = get_settings()
        from core.backfill.worker import Worker, install_signal_handlers
        from core.db import database_url, get_engine

        get_engine()  # start/join the database and migrate before the job store touches it
        url = database_url(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from scheduler import jobs

    engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines is not None else None
    worker = Worker(engines=engines, device=args.device, slots=args.slots, role="scheduler")
    worker.start()
    jobs.set_worker(worker)
    scheduler = build_scheduler(url)
    if args.no_sync:
        forget_jobs(("channel-sync", "sync-requests"))  # stored by an earlier run that did sync
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
