"""A new user's first hour, through the real CLI: no keys, default settings, a local file.

An engine without credentials is offered nowhere (worker, router, CLI), so a fresh local file
is transcribed by local whisper instead of failing on the paid API; an ingest after a failed
attempt takes its item over; Ctrl-C / SIGTERM / a closed terminal release the job at once
without counting an attempt; the same content twice is "already indexed"; Streamlit runs in
production mode.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.backfill.workers import detect_capabilities
from core.config import PROJECT_ROOT, load_settings
from core.models import Chunk, Job, LedgerEntry, MediaItem
from core.transcribe.router import Policy, RouteItem, route
from tests.conftest import shared_path
from tests.transcripts import srt_cues

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    """The user's environment: no API key, default engines (captions,local,openai)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TRANSCRIPTION_ENGINES")}
    return {**env, **extra}


def cli(*args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=_env(**extra),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def fresh_jfk(tmp_path) -> Path:
    """jfk.flac copied now: changed today, so the router counts it as a "recent upload"."""
    dest = tmp_path / "recording.flac"
    shutil.copyfile(shared_path("audio", "jfk.flac"), dest)
    return dest


def _jobs(db) -> list[Job]:
    with db.connect() as conn:
        return list(conn.execute(select(Job.status, Job.attempts, Job.stage, Job.engine, Job.wait_reason).order_by(Job.id)).all())


# ---------------------------------------------------------------------------------------------
# 1. Defaults that work offline
# ---------------------------------------------------------------------------------------------


def test_without_a_key_the_api_is_offered_nowhere():
    keyless = load_settings(openai_api_key=None)
    assert detect_capabilities(keyless)["engines"] == ["local"]
    # Asked for by name (the CLI passes the settings' list), it is still dropped.
    assert detect_capabilities(keyless, ["local", "openai"])["engines"] == ["local"]
    assert detect_capabilities(load_settings(openai_api_key="k"), ["local", "openai"])["engines"] == ["local", "openai"]

    # So the router sends a fresh upload (urgent: changed today) to local whisper, not to the API.
    from core.transcribe.router import WorkerCaps

    caps = detect_capabilities(keyless, ["local", "openai"])
    me = WorkerCaps("me", tuple(caps["engines"]), "cpu", "tiny.en")
    now = datetime.now(timezone.utc)
    r = route(RouteItem(1, "upload", now), me=me, live=[me], paid_engines={"openai"},
              policy=Policy(("captions", "local", "openai")), now=now)
    assert r.engines == ("local",) and r.paid is None, r


def test_a_fresh_local_file_is_indexed_by_local_whisper_with_no_key(db, fresh_jfk):
    done = cli("ingest", str(fresh_jfk))
    assert done.returncode == 0, done.stderr
    assert "indexed" in done.stdout and "local" in done.stdout, done.stdout
    with db.connect() as conn:
        item = conn.execute(select(MediaItem.engine, MediaItem.status, MediaItem.route_reason)).one()
        assert item.engine == "local" and item.status == "indexed", item
        assert "openai" not in item.route_reason
        assert conn.execute(select(func.count()).select_from(LedgerEntry)).scalar_one() == 0
    assert _jobs(db) == [("done", 1, "done", None, None)]  # one attempt, no retry left behind


def test_forcing_the_api_without_a_key_is_refused_before_anything_is_stored(db, fresh_jfk):
    done = cli("ingest", str(fresh_jfk), "--engine", "openai")
    assert done.returncode == 2
    assert "openai engine is not available here" in done.stderr and "OPENAI_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MediaItem)).scalar_one() == 0


def test_an_ingest_after_a_failed_attempt_takes_its_item_over(db, fresh_jfk):
    # A first try on the API fails (a key, but the server cannot be reached) and leaves a retry job.
    failed = cli("ingest", str(fresh_jfk), "--engine", "openai",
                 OPENAI_API_KEY="test-key", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert [j.status for j in _jobs(db)] == ["retry"]

    # Running it again, on another engine, takes that job over instead of refusing.
    again = cli("ingest", str(fresh_jfk), "--engine", "local")
    assert again.returncode == 0, again.stderr
    assert "already queued" not in again.stdout + again.stderr
    jobs = _jobs(db)
    assert len(jobs) == 1 and jobs[0].status == "done" and jobs[0].engine == "local", jobs
    with db.connect() as conn:
        assert conn.execute(select(MediaItem.engine)).scalar_one() == "local"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_an_interrupt_releases_the_job_at_once_and_counts_no_attempt(db, tmp_path, sig):
    from tests.longform import build

    long = build(shared_path("audio"), tmp_path / "call.wav").path
    proc = subprocess.Popen([sys.executable, "-m", "core", "ingest", str(long), "--engine", "local"],
                            cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the transcription really runs
            jobs = _jobs(db)
            if jobs and jobs[0].status == "running" and jobs[0].stage == "transcribing":
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("the ingest never reached 'transcribing'")
        time.sleep(1.0)  # inside the transcription (the model is loaded, segments are decoding)
        sent = time.monotonic()
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert stopped_in < 10, stopped_in
    assert "released" in err and "Traceback" not in err, err
    (job,) = _jobs(db)
    assert (job.status, job.attempts, job.wait_reason) == ("queued", 0, "interrupted"), job
    with db.connect() as conn:
        status, detail = conn.execute(select(MediaItem.status, MediaItem.status_detail)).one()
        assert status == "queued" and "interrupted" in detail
        assert conn.execute(select(func.count()).select_from(Chunk)).scalar_one() == 0


def test_an_interrupt_while_native_code_loads_is_raised_once_the_load_is_done():
    # Raised inside a native extension's first import (onnxruntime, under faster-whisper's VAD),
    # the interrupt came back as an ImportError with a C-printed traceback: the engine loads
    # inside interrupts.held(), and `ingest`'s handler raises once that ends.
    from core import interrupts
    from core.cli.ingest import _interrupt_on_signals

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    hook = sys.unraisablehook
    loaded = False
    try:
        _interrupt_on_signals()
        with pytest.raises(interrupts.Interrupted, match="SIGTERM"):
            with interrupts.held():
                signal.raise_signal(signal.SIGTERM)
                loaded = True  # the load runs to its end
        assert loaded and interrupts.received() == "signal SIGTERM"
        with pytest.raises(interrupts.Interrupted, match="SIGINT"):  # outside held(): at once
            signal.raise_signal(signal.SIGINT)
    finally:
        interrupts.forget()
        sys.unraisablehook = hook
        for sig, handler in before.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# 4. Same content, no second bill
# ---------------------------------------------------------------------------------------------


def test_the_same_content_again_is_already_indexed_unless_forced(db, fresh_jfk, tmp_path):
    assert cli("ingest", str(fresh_jfk)).returncode == 0
    renamed = tmp_path / "same recording, other name.flac"
    shutil.copyfile(fresh_jfk, renamed)
    for path in (fresh_jfk, renamed):
        again = cli("ingest", str(path))
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("item 1: already indexed"), again.stdout
    assert len(_jobs(db)) == 1  # nothing queued, nothing transcribed

    forced = cli("ingest", str(renamed), "--force")
    assert forced.returncode == 0 and "indexed —" in forced.stdout, forced.stdout + forced.stderr
    assert [j.status for j in _jobs(db)] == ["done", "done"]
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MediaItem)).scalar_one() == 1


def test_a_video_already_indexed_is_not_fetched_again(db, tmp_path):
    # Five minutes of the real file under its own name (the name is the video id): the check is on the
    # id, not on how much of the talk is indexed, and the whole hour costs tens of seconds to embed.
    path = srt_cues(shared_path("transcripts", "RcBwvdVEAr8.srt"), tmp_path / "RcBwvdVEAr8.srt", 600, 900)
    assert cli("ingest", str(path)).returncode == 0
    # No network here: the answer comes from the database before any YouTube request.
    again = cli("ingest", "https://www.youtube.com/watch?v=RcBwvdVEAr8")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("item 1: already indexed"), again.stdout


# ---------------------------------------------------------------------------------------------
# 6. Streamlit in production mode
# ---------------------------------------------------------------------------------------------


def test_streamlit_runs_without_file_watcher_or_run_on_save():
    from core.cli.serve import _children

    # What Streamlit itself resolves from the project's config (the UI child runs in PROJECT_ROOT).
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=60).stdout
    assert 'fileWatcherType = "none"' in shown and "runOnSave = false" in shown
    # And `serve` (what `make run` starts) says so on the command line too.
    import argparse

    ui = _children(argparse.Namespace(port=8501, no_scheduler=True, no_webhooks=True))[0].argv
    flags = dict(zip(ui[::1], ui[1::1]))
    assert flags["--server.fileWatcherType"] == "none" and flags["--server.runOnSave"] == "false"


def test_a_job_another_worker_is_running_is_not_taken_over(db):
    from core.backfill import queue
    from core.catalog import get_or_create_source, register_item
    from core.db import session_scope
    from core.records import ItemInfo

    with session_scope() as s:
        src = get_or_create_source(s, "upload", "Uploads", None)
        item = register_item(s, src, ItemInfo("sha-1", "A talk", "file:///talk.wav"))
        job_id = queue.enqueue(s, item.id)
        (job, _), = queue.candidates(s, job_id=job_id)
        queue.start(s, job, worker_id="gpu-box:1", lease_s=60)
        item_id = item.id
    with session_scope() as s:
        taken = queue.take_over(s, item_id, priority=1.0, engine="local")
    assert taken.job_id is None and "gpu-box:1 is transcribing it right now" in taken.why
    with session_scope() as s:
        assert s.get(Job, job_id).status == "running"  # untouched


def test_durations_are_read_without_the_ffmpeg_programs(tmp_path):
    """Local whisper decodes with PyAV; a machine without ffmpeg/ffprobe still probes a file."""
    from core.transcribe.audio import _pyav_duration
    from core.transcribe.base import CorruptMedia

    assert _pyav_duration(shared_path("audio", "jfk.flac")) == pytest.approx(11.0, abs=0.05)
    assert _pyav_duration(shared_path("audio", "fleurs_en", "fleurs-en-000.ogg")) == pytest.approx(10.56, abs=0.05)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + b"\x00garbage" * 50)
    with pytest.raises(CorruptMedia, match="broken.wav"):
        _pyav_duration(bad)
