"""Real worker processes on one real Postgres: budget caps under concurrency, kill -9, rate limits,
SIGTERM, and a 200-item backfill with mixed routing (captions / local / paid API via a local fake).

Workers are `python -m core worker` child processes. The speech model is replaced by the
stand-in engines of tests/fakes/queue_engines.py (and the paid API by tests/fakes/openai_server.py);
everything else — pipeline, queue, budget, router, quality gates — is the real code.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import wave
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from core import clock
from core.backfill import breaker, budget, priorities, queue
from core.backfill.progress import freshness_summary
from core.catalog import get_or_create_source, register_item
from core.chunking import chunk_segments
from core.config import PROJECT_ROOT
from core.db import session_scope
from core.embeddings import ensure_space
from core.models import Chunk, Job, LedgerEntry, MediaItem, Reservation, SourceBreaker, TranscriptSegment, Worker
from core.records import ItemInfo
from core.states import BreakerState, FailureCause, WaitReason
from tests.fakes.fake_speech import speech_like
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.youtube_http import FakeYouTube, Route

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)


class _FakeAPIEmbedder:
    provider, model, dim = "openai", "text-embedding-3-small", 64


@pytest.fixture()
def fake_openai(db):
    with FakeOpenAI(embedding_dim=64) as fake:
        # The vector space exists before the workers start, as after any first ingest.
        # (Two workers creating it at the same instant collide: reported to the pipeline's owner.)
        with session_scope() as s:
            ensure_space(s, _FakeAPIEmbedder())
        yield fake


def worker_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "EMBEDDING_PROVIDER": "openai",  # embeddings from the fake API: fast, and they cost (a little)
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test-key",
        "TRANSCRIPTION_ENGINES": "captions,local,openai",
        "WORKER_IDLE_S": "0.1",
        "RETRY_BASE_S": "1",
        "PAID_CALLS_PER_MINUTE": "0",  # no rate limit unless a test sets one (embeddings are API calls too)
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CHAFFEE_CLOCK_FILE", None)
    env.update(extra)
    return env


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core", "worker", "--plugin", "tests.fakes.queue_engines", *args],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[str]:
    """Wait for every worker to exit 0; returns their outputs."""
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            outputs = "\n---\n".join((q.communicate()[0] or "")[-3000:] for q in procs)
            pytest.fail(f"workers did not finish in {timeout:.0f} s:\n{outputs}")
    outputs = []
    for p in procs:
        out = p.communicate()[0] or ""
        assert p.returncode == 0, out[-3000:]
        outputs.append(out)
    return outputs


def add_items(specs: list[dict], tmp: Path, *, kind: str = "upload", published: datetime | None = None) -> list[int]:
    """Upload items whose 'audio' is a spec file the stand-in engines read (see queue_engines)."""
    ids = []
    with session_scope() as s:
        src = get_or_create_source(s, kind, kind, None)
        for i, spec in enumerate(specs):
            path = tmp / f"{kind}-{i}.json"
            path.write_text(json.dumps(spec))
            info = ItemInfo(f"{kind}-{i}", f"Talk {i}", f"file://{path}", duration_s=spec["seconds"], published_at=published)
            ids.append(register_item(s, src, info, media_path=path).id)
        queue.enqueue_items(s, ids)
    return ids


def ledger_by_day() -> dict[str, float]:
    with session_scope() as s:
        day = func.date(func.timezone("UTC", LedgerEntry.at))
        return {str(d): float(u) for d, u in s.execute(select(day, func.sum(LedgerEntry.usd)).group_by(day))}


def assert_ledger_matches_reservations() -> None:
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Reservation).where(Reservation.status == "open")) == 0
        unreserved = s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.reservation_id.is_(None)))
        assert unreserved == 0, "every dollar spent was reserved first"
        over = s.execute(text(
            "SELECT r.id, r.usd, sum(l.usd) FROM reservations r JOIN ledger l ON l.reservation_id = r.id "
            "GROUP BY r.id, r.usd HAVING sum(l.usd) > r.usd + 0.000001"
        )).all()
        assert over == [], f"spent more than reserved: {over}"


# ---------------------------------------------------------------------------------------------


def test_concurrent_workers_with_random_costs_never_pass_the_caps_and_every_job_ends(db, fake_openai, tmp_path):
    seed = int(os.environ.get("BUDGET_PROPERTY_SEED", random.randrange(10_000)))
    rng = random.Random(seed)
    specs = [{"seconds": rng.randint(2, 20) * 60} for _ in range(24)]
    for i in rng.sample(range(24), 6):  # failures on purpose
        specs[i].update(fail_times=rng.choice([1, 5, 5]), fail=rng.choice(["retryable", "retryable", "permanent"]))
    daily, monthly = 0.30, 0.75
    clock_file = tmp_path / "clock"
    clock.write_clock_file(clock_file, T0)
    clock.set_now(T0)
    try:
        with session_scope() as s:
            budget.set_budget(s, daily, monthly)
            queue.set_controls(s, paid_routing="always")
        add_items(specs, tmp_path)
        env = worker_env(fake_openai, CHAFFEE_CLOCK_FILE=str(clock_file), FAKE_PAID_ENGINE="1",
                         RETRY_BASE_S="600", LEASE_S="60")
        procs = [spawn(env, "--engines", "openai", "--until-drained") for _ in range(3)]
        # Drive the calendar: whenever nothing can run now, jump to the next moment something can.
        now, deadline = T0, time.monotonic() + 90
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            with session_scope() as s:
                live = s.execute(select(Job.status, Job.run_after).where(Job.status.in_(queue.LIVE_STATUSES))).all()
            if not live:
                break
            if all(st != "running" and after > now for st, after in live):
                now = min(after for _, after in live) + timedelta(seconds=1)
                clock.write_clock_file(clock_file, now)
                clock.set_now(now)
            time.sleep(0.1)
        wait_all(procs, 30)
    finally:
        clock.set_now(None)

    days = ledger_by_day()
    assert days and all(usd <= daily + 1e-9 for usd in days.values()), (seed, days)
    months = defaultdict(float)
    for d, usd in days.items():
        months[d[:7]] += usd
    assert all(usd <= monthly + 1e-9 for usd in months.values()), (seed, months)
    assert len(days) >= 3, f"a ${sum(days.values()):.2f} backlog at ${daily}/day spans several days (seed {seed})"
    with session_scope() as s:
        jobs = s.scalars(select(Job)).all()
        assert {j.status for j in jobs} <= {"done", "dead"}, (seed, Counter(j.status for j in jobs))
        for job, spec in zip(sorted(jobs, key=lambda j: j.media_item_id), specs):
            item = s.get(MediaItem, job.media_item_id)
            doomed = spec.get("fail") == "permanent" or spec.get("fail_times", 0) >= 3
            if doomed:
                assert job.status == "dead" and item.status == "dead" and job.last_error, (seed, spec)
                assert job.attempts == (1 if spec["fail"] == "permanent" else 3)
            else:
                assert job.status == "done" and item.status == "indexed", (seed, spec, job.last_error)
    assert_ledger_matches_reservations()


def test_a_worker_killed_mid_job_leaves_every_item_indexed_exactly_once(db, fake_openai, tmp_path):
    marker = tmp_path / "started"
    specs = [{"seconds": 240 + 30 * i} for i in range(6)]
    specs[0].update(sleep=60, sleep_times=1, marker=str(marker))
    ids = add_items(specs, tmp_path)
    with session_scope() as s:
        priorities.pin_item(s, ids[0])  # the slow one is claimed first
    env = worker_env(fake_openai, LEASE_S="2", RETRY_BASE_S="0.2")
    first = spawn(env, "--engines", "local")
    deadline = time.monotonic() + 30
    while not marker.exists():
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail((first.communicate()[0] or "")[-3000:])
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # mid-transcription, lease held, no goodbye
    first.wait()
    with session_scope() as s:
        assert s.scalar(select(Job.status).where(Job.media_item_id == ids[0])) == "running"
    second = spawn(env, "--engines", "local", "--until-drained")
    wait_all([second], 60)

    with session_scope() as s:
        for item_id, spec in zip(ids, specs):
            item = s.get(MediaItem, item_id)
            expected = list(chunk_segments(speech_like(Path(item.media_path).name, spec["seconds"])))
            texts = s.scalars(select(Chunk.text).where(Chunk.media_item_id == item_id).order_by(Chunk.idx)).all()
            assert item.status == "indexed" and item.chunk_count == len(expected)
            assert texts == [c.text for c in expected]  # none lost, none twice
            segs = s.scalar(select(func.count()).select_from(TranscriptSegment).where(TranscriptSegment.media_item_id == item_id))
            assert segs == len(speech_like(Path(item.media_path).name, spec["seconds"]))
        jobs = s.scalars(select(Job).order_by(Job.media_item_id)).all()
        assert [j.status for j in jobs] == ["done"] * 6
        assert jobs[0].attempts == 2  # the killed run counts; the rerun finished it
        assert all(j.attempts == 1 for j in jobs[1:])
    assert_ledger_matches_reservations()


def test_a_crashed_workers_item_costs_exactly_its_ledger_rows_run_lost_estimate_included(db, fake_openai, tmp_path):
    """kill -9 mid paid transcription: the reaper books the reservation as "run lost"; the item's cost adds it."""
    marker = tmp_path / "started"
    (item_id,) = add_items([{"seconds": 600, "sleep": 60, "sleep_times": 1, "marker": str(marker)}], tmp_path)
    with session_scope() as s:
        queue.set_controls(s, paid_routing="always")
    env = worker_env(fake_openai, FAKE_PAID_ENGINE="1", LEASE_S="2", RETRY_BASE_S="0.2")
    first = spawn(env, "--engines", "openai")
    deadline = time.monotonic() + 30
    while not marker.exists():
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail((first.communicate()[0] or "")[-3000:])
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # during the paid call: it may have been billed, we cannot ask
    first.wait()
    wait_all([spawn(env, "--engines", "openai", "--until-drained")], 60)
    with session_scope() as s:
        item = s.get(MediaItem, item_id)
        rows = s.scalars(select(LedgerEntry).where(LedgerEntry.media_item_id == item_id).order_by(LedgerEntry.id)).all()
        assert item.status == "indexed"
        assert "estimated: run lost during 'transcribing'" in rows[0].note  # the crashed run, charged in full
        assert len(rows) >= 3  # … then the rerun's transcription and embeddings at their real price
        assert float(item.cost_usd) == pytest.approx(sum(float(r.usd) for r in rows), abs=1e-6)
        assert float(item.cost_usd) > float(rows[0].usd)
    assert_ledger_matches_reservations()


def test_the_paid_rate_limit_holds_across_two_workers(db, fake_openai, tmp_path):
    limit, window, n = 1, 1.0, 8
    log = tmp_path / "calls.log"
    add_items([{"seconds": 120} for _ in range(n)], tmp_path)
    with session_scope() as s:
        queue.set_controls(s, paid_routing="always", paid_calls_per_minute=limit)
    env = worker_env(fake_openai, FAKE_PAID_ENGINE="1", RATE_WINDOW_S=str(window), FAKE_ENGINE_LOG=str(log))
    procs = [spawn(env, "--engines", "openai", "--until-drained") for _ in range(2)]
    wait_all(procs, 60)
    calls = [line.split("\t") for line in log.read_text().splitlines()]
    assert len(calls) == n and len({pid for *_, pid in calls}) == 2  # both workers called the API
    times = sorted(float(t) for _, _, t, _ in calls)
    per_window = Counter(math.floor(t / window) for t in times)
    # A slot is taken as the transcription stage starts, a moment before the call: allow the
    # one call that crosses a window edge in that moment.
    assert max(per_window.values()) <= limit + 1, per_window
    # n calls at `limit` per window span at least n/limit - 1 window edges (≈ 7 s here); two
    # workers with a limit each would need only half of that.
    assert times[-1] - times[0] >= (n / limit - 2) * window - 0.3, times


def test_sigterm_finishes_a_short_job_and_releases_a_long_one(db, fake_openai, tmp_path):
    marker = tmp_path / "started"
    ids = add_items([{"seconds": 180, "sleep": 2, "marker": str(marker)}], tmp_path)
    env = worker_env(fake_openai, SHUTDOWN_GRACE_S="15")
    proc = spawn(env, "--engines", "local")
    while not marker.exists():
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    wait_all([proc], 30)
    with session_scope() as s:
        assert s.scalar(select(Job.status).where(Job.media_item_id == ids[0])) == "done"  # finished within the grace
        assert s.scalar(select(func.count()).select_from(Worker)) == 0  # unregistered on the way out

    marker.unlink()
    with session_scope() as s:
        src = get_or_create_source(s, "upload", "upload", None)
        path = tmp_path / "long.json"
        path.write_text(json.dumps({"seconds": 180, "sleep": 60, "marker": str(marker)}))
        long_id = register_item(s, src, ItemInfo("long", "Long", "file://long", duration_s=180), media_path=path).id
        queue.enqueue(s, long_id)
    proc = spawn(worker_env(fake_openai, SHUTDOWN_GRACE_S="0.5"), "--engines", "local")
    while not marker.exists():
        assert proc.poll() is None
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_all([proc], 20)
    assert time.monotonic() - started < 10  # it did not wait for the 60 s job
    with session_scope() as s:
        job = s.scalars(select(Job).where(Job.media_item_id == long_id)).one()
        assert (job.status, job.attempts, job.lease_owner, job.wait_reason) == ("queued", 0, None, WaitReason.SHUTDOWN)
    assert_ledger_matches_reservations()


def test_a_timed_out_job_is_dead_lettered_and_a_rate_limited_source_rests_without_burning_attempts(db, fake_openai, tmp_path):
    with session_scope() as s:
        # 5 s, not 1: the other jobs' first run imports and loads models, which takes over a second
        # in a fresh virtualenv (installed without byte-compiling); only the 12 s job must time out.
        queue.set_controls(s, job_timeout_s=5, max_attempts=1)
    (slow,) = add_items([{"seconds": 120, "sleep": 12}], tmp_path)
    throttled, other = add_items([{"seconds": 120, "rate_limited": 600}, {"seconds": 120}], tmp_path, kind="zoom")
    with session_scope() as s:
        priorities.pin_item(s, throttled)  # YouTube-like 429 first: the source's other job must wait
    started = datetime.now(timezone.utc)
    wait_all([spawn(worker_env(fake_openai, LEASE_S="20"), "--engines", "local", "--exit-when-idle")], 60)
    with session_scope() as s:
        job = s.scalars(select(Job).where(Job.media_item_id == slow)).one()
        assert job.status == "dead" and "timed out: still running after 5 s" in job.last_error
        assert s.get(MediaItem, slow).status == "dead"
        rested = {j.media_item_id: j for j in s.scalars(select(Job).where(Job.media_item_id.in_([throttled, other])))}
        # no attempt burned
        assert all(j.status == "queued" and j.attempts == 0 for j in rested.values()), {
            i: (j.status, j.attempts, j.last_error) for i, j in rested.items()}
        assert all(j.run_after >= started + timedelta(seconds=590) for j in rested.values())
        assert rested[other].wait_reason == WaitReason.SOURCE
        source_id = s.get(MediaItem, throttled).source_id
        (paused,) = breaker.paused_sources(s)  # one 429 is enough to rest the source
        assert paused.source_id == source_id and "429" in paused.reason and paused.cause == FailureCause.RATE_LIMITED


def _wait_for(check, timeout: float, procs: list[subprocess.Popen], what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as s:
            found = check(s)
        if found:
            return found
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.1)
    for p in procs:
        p.kill()
    pytest.fail(f"{what} did not happen:\n" + "\n---\n".join((p.communicate()[0] or "")[-3000:] for p in procs))


def test_an_offline_sync_of_50_videos_pauses_youtube_once_burns_no_attempt_while_paused_and_resumes(db, fake_openai, tmp_path):
    """YouTube unreachable (connections refused) under two real workers: 0 dead, 1 pause, all 50 done when it is back."""
    with FakeYouTube() as fake:
        # Every watch page answers with a media file the stand-in engine reads (yt-dlp's generic extractor).
        fake.route("/watch", Route(body=json.dumps({"seconds": 30}).encode(), content_type="audio/wav"))
        with session_scope() as s:
            src = get_or_create_source(s, "youtube", "YouTube", "https://www.youtube.com/@anthonychaffeemd")
            ids = [register_item(s, src, ItemInfo(f"vid{i:08d}", f"Talk {i}", f"https://youtu.be/vid{i:08d}",
                                                   duration_s=30.0)).id for i in range(50)]
            queue.enqueue_items(s, ids)
            source_id = src.id
        fake.go_down()
        env = worker_env(fake_openai, YOUTUBE_BASE_URL=fake.base_url, YOUTUBE_SLEEP_S="0", TRANSCRIPTION_ENGINES="captions,local",
                         SOURCE_BACKOFF_S="1", SOURCE_PROBE_MAX_S="2", RETRY_BASE_S="1")
        procs = [spawn(env, "--engines", "local", "--slots", "3", "--until-drained") for _ in range(2)]

        def paused(s):
            row = s.get(SourceBreaker, source_id)
            return row if row is not None and row.state == BreakerState.OPEN else None

        row = _wait_for(paused, 60, procs, "the YouTube pause")
        assert row.cause == FailureCause.SOURCE_UNREACHABLE and "Connection refused" in row.reason
        time.sleep(4)  # a few probes fail meanwhile (1 s, then 2 s apart)
        with session_scope() as s:
            statuses = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).tuples().all())
            assert statuses.get("dead", 0) == 0 and statuses.get("done", 0) == 0, statuses
            (status,) = breaker.paused_sources(s)
            assert status.line().startswith("YouTube unreachable since ") and " — 50 items waiting" in status.line()
            assert s.scalar(select(func.sum(Job.attempts))) <= 2 + 2  # two before the pause, two probes in flight at most
        fake.come_back()
        outputs = wait_all(procs, 120)

    with session_scope() as s:
        jobs = s.scalars(select(Job).where(Job.media_item_id.in_(ids))).all()
        assert sorted(j.status for j in jobs) == ["done"] * 50
        assert all(s.get(MediaItem, i).status == "indexed" for i in ids)
        # The two failures before the breaker opened counted (one unreachable item may be that item's fault);
        # nothing that waited while YouTube was paused lost an attempt, the probes included.
        assert sum(j.attempts for j in jobs) == 50 + 2, sorted(j.attempts for j in jobs)
        assert breaker.paused_sources(s) == [] and s.get(SourceBreaker, source_id).state == BreakerState.CLOSED
    log = "".join(outputs)
    assert log.count(f"source {source_id} paused after") == 1, "one pause, by whichever worker saw the third failure"
    assert log.count(f"source {source_id} answers again: resumed") == 1


# ---------------------------------------------------------------------------------------------
# The done-criterion run
# ---------------------------------------------------------------------------------------------


class FreshSpeech:
    """The fake API's transcript: new words on every request (so no two items look alike)."""

    def __init__(self, seconds: float):
        self.seconds, self.n = seconds, 0

    def __iter__(self):
        self.n += 1
        return iter([(s.start, s.end, s.text) for s in speech_like(f"api-{self.n}", self.seconds)])


def tone_wav(path: Path, seconds: float) -> Path:
    """A real audio file (a 440 Hz tone): the real OpenAI engine probes and uploads it."""
    rate = 8000
    frames = bytearray()
    for i in range(int(seconds * rate)):
        v = int(8000 * math.sin(2 * math.pi * 440 * i / rate))
        frames += v.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def vtt(segments) -> str:
    def stamp(t: float) -> str:
        return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"

    return "WEBVTT\n\n" + "\n\n".join(f"{stamp(s.start)} --> {stamp(s.end)}\nHost: {s.text}" for s in segments) + "\n"


def test_a_200_item_backfill_with_mixed_routing_ends_within_budget(db, fake_openai, tmp_path):
    seconds = 30.0
    fake_openai.segments = FreshSpeech(seconds)  # the paid engine is the real OpenAI client → this server
    audio = tone_wav(tmp_path / "tone.wav", seconds)
    old = T0 - timedelta(days=700)
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        budget.set_budget(s, 0.10, 1.00)  # room for ≈ 30 paid items: the rest must go elsewhere
        zoom = get_or_create_source(s, "zoom", "Zoom", None)
        uploads = get_or_create_source(s, "upload", "Uploads", None)
        ids = []
        for i in range(70):  # Zoom meetings with their own transcript: captions
            captions = tmp_path / f"meeting-{i}.vtt"
            captions.write_text(vtt(speech_like(f"meeting-{i}", seconds)))
            item = register_item(s, zoom, ItemInfo(f"meeting-{i}", f"Meeting {i}", f"zoom://{i}", duration_s=seconds,
                                                    published_at=old), media_path=audio)
            item.extra = {"zoom": {"transcript_path": str(captions)}}
            ids.append(item.id)
        for i in range(130):  # files: 60 recent (urgent), 70 from the back catalogue
            published = now - timedelta(days=2) if i < 60 else old
            spec = tmp_path / f"file-{i}.json"
            spec.write_text(json.dumps({"seconds": seconds}))
            media = spec
            if i < 60:  # urgent ones may go to the real paid engine: real audio (a link per item: own name)
                media = tmp_path / f"file-{i}.wav"
                os.link(audio, media)
            ids.append(register_item(s, uploads, ItemInfo(f"file-{i}", f"File {i}", f"file://{i}", duration_s=seconds,
                                                          published_at=published), media_path=media).id)
        s.flush()
        queue.enqueue_items(s, ids)
    env = worker_env(fake_openai)
    started = time.monotonic()
    gpu = spawn(env, "--engines", "local", "--device", "cuda", "--model", "fake-large", "--until-drained")
    api = spawn(env, "--engines", "openai", "--until-drained")
    wait_all([gpu, api], 150)
    elapsed = time.monotonic() - started

    with session_scope() as s:
        statuses = Counter(s.scalars(select(Job.status)).all())
        assert statuses == {"done": 200}, (statuses, Counter(s.scalars(select(Job.last_error).where(Job.status == "dead")).all()))
        items = s.scalars(select(MediaItem)).all()
        assert Counter(i.status for i in items) == {"indexed": 200}
        engines = Counter(i.engine for i in items)
        assert engines["captions"] == 70 and engines["local"] > 0 and engines["openai"] > 0, engines
        assert engines["local"] + engines["openai"] == 130
        assert all(i.route_reason for i in items)
        paid = [i for i in items if i.engine == "openai"]
        assert all("paid openai (recent upload" in i.route_reason for i in paid)
        assert all(i.published_at and i.published_at > now - timedelta(days=14) for i in paid)
        fresh = freshness_summary(s, now=datetime.now(timezone.utc))
        assert fresh.items == 60 and 47.9 < fresh.median_lag_h < 49  # uploaded two days ago, searchable now
        state = budget.state(s, datetime.now(timezone.utc))
        assert state.spent_today <= 0.10 + 1e-9
        by_engine = {e.engine: e for e in budget.spend_by_engine(s)}
        assert by_engine["openai-transcribe"].calls == engines["openai"]
        assert by_engine["openai-transcribe"].audio_minutes == pytest.approx(engines["openai"] * seconds / 60)
    assert_ledger_matches_reservations()
    print(f"\n200 items, mixed routing {dict(engines)}: {elapsed:.1f} s, ${state.spent_today:.4f} spent")


def test_two_slots_book_exactly_the_embedding_tokens_the_api_billed(db, tmp_path):
    """Usage is each call's return value: jobs embedding at the same time in one process never
    count each other's tokens (a shared counter's difference did, with --slots > 1)."""
    with FakeOpenAI(embedding_dim=64, embedding_delay_s=0.4) as fake:  # slow: the two jobs' calls overlap
        with session_scope() as s:
            ensure_space(s, _FakeAPIEmbedder())
        add_items([{"seconds": 900} for _ in range(4)], tmp_path)
        worker = spawn(worker_env(fake), "--engines", "local", "--slots", "2", "--until-drained")
        wait_all([worker], 90)
        billed = fake.embedding_tokens()
        calls = len(fake.requests_to("/v1/embeddings"))
    with session_scope() as s:
        assert Counter(s.scalars(select(Job.status)).all()) == {"done": 4}
        booked = s.execute(
            select(func.sum(LedgerEntry.tokens), func.count()).where(LedgerEntry.engine == "openai-embed")
        ).one()
    assert calls >= 4 and billed > 0
    assert (int(booked[0]), booked[1]) == (billed, 4), f"ledger {booked[0]} tokens, the API billed {billed}"
    assert_ledger_matches_reservations()
