"""`python -m scheduler`: APScheduler with its job store in our Postgres, running the backfill."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.util import ref_to_obj
from sqlalchemy import func, select, text

from core import clock
from core.backfill import budget, queue
from core.backfill.progress import last_snapshot
from core.config import PROJECT_ROOT
from core.db import session_scope
from core.embeddings import ensure_space
from core.models import Job, LedgerEntry, MediaItem, Worker
from core.states import WaitReason
from scheduler.__main__ import JOBS_TABLE
from tests.fakes.openai_server import FakeOpenAI
from tests.test_worker_processes import _FakeAPIEmbedder, add_items, worker_env

SHARED_JOBS = {"budget-rollover", "lease-reaper"}


@pytest.fixture()
def fake_openai(db):
    with db.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {JOBS_TABLE}"))
    with FakeOpenAI(embedding_dim=64) as fake:
        with session_scope() as s:
            ensure_space(s, _FakeAPIEmbedder())
        yield fake


def start_scheduler(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scheduler", "--plugin", "tests.fakes.queue_engines", "--engines", "local", "--no-sync"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def stored_jobs() -> set[str]:
    with session_scope() as s:
        return set(s.scalars(text(f"SELECT id FROM {JOBS_TABLE}")))


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-3000:]
    return out


def test_the_scheduler_runs_the_backfill_keeps_its_schedule_in_postgres_and_stops_cleanly(db, fake_openai, tmp_path):
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
    assert stored_jobs() == SHARED_JOBS  # the shared schedule lives in the app's database
    time.sleep(1.5)  # let the first progress snapshot land (it runs right after start)
    out = stop(proc)
    assert "stopped (0 job(s) released)" in out
    with session_scope() as s:
        assert all(s.get(MediaItem, i).status == "indexed" for i in ids)
        assert s.scalar(select(func.count()).select_from(Worker)) == 0
        snapshot = last_snapshot(s)
    assert snapshot and snapshot["total"] == 5

    # A restart finds its schedule again instead of adding a second copy of each job.
    proc = start_scheduler(env)
    time.sleep(4)
    assert stored_jobs() == SHARED_JOBS
    stop(proc)


def test_every_scheduled_job_is_importable_by_reference():
    for ref in ("channel_sync", "sync_requests", "backfill_tick", "budget_rollover", "lease_reaper", "progress_snapshot"):
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
