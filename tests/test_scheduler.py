"""`python -m scheduler`: APScheduler with its schedule in memory, running the backfill; shared jobs
run once per firing however many scheduler processes fire them."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import ref_to_obj
from sqlalchemy import func, select, text

from core import clock
from core.backfill import budget, queue
from core.backfill.progress import last_snapshot
from core.config import PROJECT_ROOT
from core.db import session_scope
from core.embeddings import ensure_space
from core.models import Job, LedgerEntry, MediaItem, PeriodicRun, Worker
from core.states import WaitReason
from scheduler.__main__ import add_shared_job, build_scheduler
from scheduler.firing import Outcome, run_once, slot_of
from tests.fakes.openai_server import FakeOpenAI
from tests.test_worker_processes import _FakeAPIEmbedder, add_items, worker_env


@pytest.fixture()
def fake_openai(db):
    with FakeOpenAI(embedding_dim=64) as fake:
        with session_scope() as s:
            ensure_space(s, _FakeAPIEmbedder())
        yield fake


def start_scheduler(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scheduler", "--plugin", "tests.fakes.queue_engines", "--engines", "local", "--no-sync"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def shared_runs() -> dict[str, datetime]:
    """Shared job → the slot of its last firing that ran."""
    with session_scope() as s:
        return {run.job: run.slot for run in s.scalars(select(PeriodicRun))}


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-3000:]
    return out


def test_the_scheduler_runs_the_backfill_and_its_shared_jobs_once_per_firing_and_stops_cleanly(db, fake_openai, tmp_path):
    ids = add_items([{"seconds": 120 + 10 * i} for i in range(5)], tmp_path)
    env = worker_env(fake_openai, BACKFILL_TICK_S="0.3", LEASE_S="3", WORKER_SLOTS="2")
    proc = start_scheduler(env)
    deadline = time.monotonic() + 60
    while True:
        with session_scope() as s:
            done = s.scalar(select(func.count()).select_from(Job).where(Job.status == "done"))
            schedulers = s.scalars(select(Worker).where(Worker.role == "scheduler")).all()
        if done == len(ids):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail((proc.communicate()[0] or "")[-3000:])
        time.sleep(0.2)
    assert len(schedulers) == 1 and schedulers[0].capabilities["engines"] == ["local"]
    assert "lease-reaper" in shared_runs()  # shared jobs run through the once-per-firing claim
    assert "channel-sync" not in shared_runs()  # --no-sync: this process lists nothing
    time.sleep(1.5)  # let the first progress snapshot land (it runs right after start)
    out = stop(proc)
    assert "stopped (0 job(s) released)" in out
    with session_scope() as s:
        assert all(s.get(MediaItem, i).status == "indexed" for i in ids)
        assert s.scalar(select(func.count()).select_from(Worker)) == 0
        snapshot = last_snapshot(s)
    assert snapshot and snapshot["total"] == 5

    # The schedule lives in each process: nothing of it is stored for the next start to trip on.
    with session_scope() as s:
        assert s.scalar(text("SELECT to_regclass('apscheduler_jobs')")) is None


def test_every_scheduled_job_is_importable_by_reference():
    for ref in ("channel_sync", "sync_requests", "zoom_sync", "backfill_tick", "reembed_tick", "budget_rollover",
                "lease_reaper", "progress_snapshot"):
        assert callable(ref_to_obj(f"scheduler.jobs:{ref}"))


def test_roll_over_resumes_paid_work_at_midnight_and_the_reaper_takes_back_dead_leases(db, tmp_path):
    from scheduler import jobs

    t0 = datetime(2026, 11, 29, 23, 0, tzinfo=timezone.utc)
    clock.set_now(t0)
    try:
        ids = add_items([{"seconds": 600}, {"seconds": 600}], tmp_path)
        with session_scope() as s:
            budget.set_budget(s, 0.10, 1.0)
            s.add(LedgerEntry(at=t0 - timedelta(hours=1), engine="openai-transcribe", usd=0.10))
            waiting = s.scalars(select(Job).where(Job.media_item_id == ids[0])).one()
            # Deferred (e.g. by the admin's raised-then-lowered budget) to some time far away.
            queue.defer(s, waiting, until=t0 + timedelta(days=3), why=WaitReason.BUDGET)
        assert jobs.budget_rollover() == 0  # the day's money is spent: nothing to wake
        clock.set_now(datetime(2026, 11, 30, 0, 0, 5, tzinfo=timezone.utc))
        assert jobs.budget_rollover() == 1
        with session_scope() as s:
            assert s.scalars(select(Job.run_after).where(Job.media_item_id == ids[0])).one() <= clock.now()

            running = s.scalars(select(Job).where(Job.media_item_id == ids[1])).one()
            queue.start(s, running, worker_id="gone:1:x", lease_s=30)
        clock.set_now(datetime(2026, 11, 30, 0, 1, tzinfo=timezone.utc))
        assert jobs.lease_reaper().jobs == 1
        with session_scope() as s:
            assert s.scalars(select(Job.status).where(Job.media_item_id == ids[1])).one() == "retry"
    finally:
        clock.set_now(None)


RUNS: list[str] = []  # the scheduler of every run of the test job
_runs_lock = threading.Lock()


def record_run(scheduler_name: str) -> str:
    with _runs_lock:
        RUNS.append(scheduler_name)
    time.sleep(0.2)  # long enough for the other scheduler's firing to arrive while this one runs
    return scheduler_name


def test_two_schedulers_firing_the_same_shared_job_run_it_once_per_firing(db):
    """Two schedulers (as two processes would) against the real database, one job every second."""
    RUNS.clear()
    firings: list = []
    schedulers = []
    for name in ("a", "b"):
        sched = build_scheduler(BackgroundScheduler)
        # Both fire the one shared job id; each names itself in the runs it makes.
        add_shared_job(sched, "tests.test_scheduler:record_run", job_id="test-tick", name="test tick", seconds=1,
                       args=(name,))
        sched.add_listener(lambda event: firings.append(event.retval), EVENT_JOB_EXECUTED)
        schedulers.append(sched)
    for sched in schedulers:
        sched.start()
    time.sleep(4.5)
    for sched in schedulers:
        sched.shutdown(wait=True)
    ran = [f for f in firings if f.outcome == Outcome.RAN]
    assert len(firings) >= 2 * len(ran) - 1, firings  # both schedulers fired …
    assert len(ran) >= 3 and len(RUNS) == len(ran), firings  # … every second, and one of them ran it …
    assert len({f.slot for f in ran}) == len(ran), firings  # … once per firing
    assert {f.outcome for f in firings} - {Outcome.RAN} <= {Outcome.BUSY, Outcome.DONE_ELSEWHERE}
    with session_scope() as s:
        run = s.get(PeriodicRun, "test-tick")
        assert run.ok is True and run.finished_at is not None


def test_a_firing_already_run_elsewhere_or_still_running_is_skipped(db):
    calls: list[int] = []
    first = run_once("reaper-test", 3600, lambda: calls.append(1) or "done")
    assert (first.outcome, first.result) == (Outcome.RAN, "done")
    assert run_once("reaper-test", 3600, lambda: calls.append(2)).outcome == Outcome.DONE_ELSEWHERE
    assert calls == [1]

    # While one process runs a job, another's firing of it returns at once instead of waiting.
    seen = []

    def long_job():
        seen.append(run_once("slow-test", 1, lambda: None).outcome)

    assert run_once("slow-test", 1, long_job).outcome == Outcome.RAN
    assert seen == [Outcome.BUSY]
    assert slot_of(60, datetime(2026, 12, 1, 8, 59, 59, tzinfo=timezone.utc)) == datetime(
        2026, 12, 1, 8, 59, tzinfo=timezone.utc)
