"""The job queue on the real Postgres: claiming with SKIP LOCKED, leases, retries, dead letter, pauses."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from core import clock, settings_store
from core.backfill import queue
from core.backfill.dispatch import claim_next
from core.backfill.reaper import reap
from core.catalog import get_or_create_source, register_item
from core.db import session_scope
from core.models import Job, MediaItem
from core.records import ItemInfo
from core.states import WaitReason
from core.transcribe.router import WorkerCaps

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def frozen_clock():
    clock.set_now(T0)
    yield
    clock.set_now(None)


def make_items(n: int, *, kind: str = "upload", url: str | None = None, **fields) -> list[int]:
    with session_scope() as s:
        src = get_or_create_source(s, kind, kind, url)
        ids = []
        for i in range(n):
            info = ItemInfo(external_id=f"{kind}-{url}-{i}", title=f"Talk {i}", url=f"file://talk{i}", duration_s=600.0, **fields)
            ids.append(register_item(s, src, info, media_path=f"/nonexistent/{i}.wav").id)
        return ids


def job_of(item_id: int) -> Job:
    with session_scope() as s:
        return s.scalars(select(Job).where(Job.media_item_id == item_id).order_by(Job.id.desc())).first()


LOCAL = WorkerCaps("w1", ("local",), "cpu", "tiny.en")


def test_enqueueing_twice_keeps_one_live_job_and_skipped_items_stay_out(db):
    a, b = make_items(2)
    with session_scope() as s:
        assert queue.enqueue(s, a) is not None
        assert queue.enqueue(s, a) is None  # already live
        s.get(MediaItem, b).skipped = True
        assert queue.enqueue(s, b) is None
    with session_scope() as s:
        assert s.scalar(select(Job.id).where(Job.media_item_id == b)) is None
        assert len(s.scalars(select(Job).where(Job.media_item_id == a)).all()) == 1


def test_two_claimers_never_get_the_same_job(db, engine):
    ids = make_items(3)
    with session_scope() as s:
        for prio, item in zip((1.0, 3.0, 2.0), ids):
            queue.enqueue(s, item, priority=prio)
    from sqlalchemy.orm import Session

    first, second = Session(engine), Session(engine)
    try:
        top = queue.candidates(first, now=T0, limit=1)  # locks the best job in this transaction
        other = queue.candidates(second, now=T0, limit=1)  # SKIP LOCKED: the next best, no waiting
        assert top[0][1].id == ids[1] and other[0][1].id == ids[2]
    finally:
        first.rollback()
        second.rollback()
        first.close()
        second.close()


def test_retryable_failures_back_off_exponentially_then_dead_letter_with_the_last_error(db, monkeypatch):
    monkeypatch.setenv("RETRY_BASE_S", "60")
    from core.config import get_settings

    get_settings.cache_clear()
    (item,) = make_items(1)
    with session_scope() as s:
        queue.enqueue(s, item)
    rng = random.Random(7)
    delays = []
    now = T0
    for attempt in (1, 2, 3):
        clock.set_now(now)
        with session_scope() as s:
            claim = claim_next(s, LOCAL, lease_s=60)
            assert claim is not None and claim.attempt == attempt
        with session_scope() as s:
            outcome = queue.fail(s, claim.job_id, "w1", f"boom {attempt}", retryable=True, rng=rng)
        if attempt < 3:
            assert outcome.status == "retry"
            delay = (outcome.run_after - now).total_seconds()
            assert 60 * 2 ** (attempt - 1) / 2 <= delay <= 60 * 2 ** (attempt - 1)
            delays.append(delay)
            with session_scope() as s:  # not claimable before its time
                assert claim_next(s, LOCAL, lease_s=60) is None
            now = outcome.run_after
        else:
            assert outcome.status == "dead"
    assert delays[1] > delays[0] * 0.9
    job = job_of(item)
    assert job.status == "dead" and job.attempts == 3 and job.last_error == "boom 3"
    with session_scope() as s:
        it = s.get(MediaItem, item)
        assert it.status == "dead" and "boom 3" in it.status_detail
        assert [j.id for j in queue.dead_letter(s)] == [job.id]
    get_settings.cache_clear()


def test_a_permanent_error_is_dead_at_once_and_the_admin_can_retry_or_discard(db):
    a, b = make_items(2)
    with session_scope() as s:
        queue.enqueue(s, a, priority=2)
        queue.enqueue(s, b, priority=1)
    for _ in range(2):
        with session_scope() as s:
            claim = claim_next(s, LOCAL, lease_s=60)
        with session_scope() as s:
            assert queue.fail(s, claim.job_id, "w1", "private video", retryable=False).status == "dead"
    assert job_of(a).attempts == 1
    with session_scope() as s:
        assert queue.retry_dead(s, item_id=a) == 1
        assert queue.discard_dead(s, item_id=b) == 1
    job = job_of(a)
    assert job.status == "queued" and job.attempts == 0
    with session_scope() as s:
        assert s.get(MediaItem, b).skipped and s.get(MediaItem, b).status == "skipped"
        assert queue.enqueue(s, b) is None  # discarded items are not queued again by a sync


def test_release_gives_the_attempt_back(db):
    (item,) = make_items(1)
    with session_scope() as s:
        queue.enqueue(s, item)
    with session_scope() as s:
        claim = claim_next(s, LOCAL, lease_s=60)
    with session_scope() as s:
        assert queue.release(s, claim.job_id, "w1", why=WaitReason.SHUTDOWN)
    job = job_of(item)
    assert job.status == "queued" and job.attempts == 0 and job.lease_owner is None


def test_expired_leases_are_reaped_but_heartbeats_keep_a_job(db):
    a, b = make_items(2)
    with session_scope() as s:
        queue.enqueue(s, a, priority=2)
        queue.enqueue(s, b, priority=1)
    with session_scope() as s:
        ca = claim_next(s, LOCAL, lease_s=30)
        cb = claim_next(s, WorkerCaps("w2", ("local",)), lease_s=30)
    clock.set_now(T0 + timedelta(seconds=25))
    with session_scope() as s:
        assert queue.heartbeat(s, cb.job_id, "w2", lease_s=30, stage="transcribing")
    clock.set_now(T0 + timedelta(seconds=40))
    assert reap().jobs == 1  # a's worker went silent; b's heartbeat renewed its lease
    ja, jb = job_of(a), job_of(b)
    assert ja.status == "retry" and ja.attempts == 1 and "lease expired" in ja.last_error
    assert jb.status == "running"
    with session_scope() as s:  # the lost owner cannot finish it any more
        assert not queue.complete(s, ca.job_id, "w1")


def test_pause_and_max_concurrency_stop_claims(db):
    ids = make_items(3)
    with session_scope() as s:
        for i in ids:
            queue.enqueue(s, i)
        queue.set_paused(s, True, "maintenance")
    with session_scope() as s:
        assert claim_next(s, LOCAL, lease_s=60) is None
        queue.set_paused(s, False)
        queue.set_controls(s, max_concurrency=1)
    with session_scope() as s:
        assert claim_next(s, LOCAL, lease_s=60) is not None
    with session_scope() as s:
        assert claim_next(s, WorkerCaps("w2", ("local",)), lease_s=60) is None  # one running is the max
    with pytest.raises(ValueError):
        with session_scope() as s:
            queue.set_controls(s, max_concurrency=0)


# ---------------------------------------------------------------------------------------------
# Routing (pure) and the storage limit
# ---------------------------------------------------------------------------------------------

from core.transcribe.router import Policy, RouteItem, route  # noqa: E402

POLICY = Policy(("captions", "local", "openai"), "urgent", 14.0)
GPU = WorkerCaps("gpu", ("local",), "cuda", "large-v3")
API = WorkerCaps("api", ("openai",))


def _route(item: RouteItem, me: WorkerCaps, live=(), **kw):
    return route(item, me=me, live=list(live), paid_engines={"openai"}, policy=POLICY, now=T0, **kw)


def test_routing_prefers_captions_then_a_gpu_worker_then_the_paid_api_for_urgent_items():
    old_video = RouteItem(1, "youtube", T0 - timedelta(days=400))
    new_video = RouteItem(2, "youtube", T0 - timedelta(days=2))
    r = _route(old_video, GPU)
    assert r.engines == ("captions", "local") and r.paid is None and "large-v3" in r.reason
    # A CPU worker leaves transcription to a live GPU worker (captions it still tries: they are free).
    r = _route(old_video, LOCAL, [GPU])
    assert r.engines == ("captions",) and r.elsewhere and "GPU worker" in r.reason
    # An API-only worker: urgent items go to the paid API, the backlog waits for whisper.
    assert _route(new_video, API, [GPU]).paid == "openai"
    assert _route(old_video, API, [GPU]).engines == ("captions",)
    r = _route(new_video, API, [], budget_refusal="daily budget spent")
    assert r.engines == ("captions",) and r.wait == WaitReason.BUDGET and "daily budget spent" in r.reason
    # Uploads have no captions; known-missing captions are not asked for again.
    assert _route(RouteItem(3, "upload", None), LOCAL).engines == ("local",)
    assert _route(old_video._replace(captions=False), LOCAL).engines == ("local",)
    # The admin's forced engine wins (re-transcription).
    assert _route(old_video, API, forced="openai").engines == ("openai",)
    assert _route(old_video, API, [GPU], forced="local").elsewhere


def test_past_the_storage_limit_nothing_new_starts_and_the_admin_is_told_why(db):
    from core.backfill.worker import Worker

    (item,) = make_items(1)
    with session_scope() as s:
        queue.enqueue(s, item)
        queue.set_controls(s, storage_limit_gb=0.001)  # 1 MB: the database alone is bigger
    worker = Worker(engines=["local"])
    worker.start()
    try:
        assert worker.claim() is None
        with session_scope() as s:
            stopped = settings_store.BACKFILL_STOPPED.load(s)
            assert "storage limit reached" in stopped["reason"] and "GB used of" in stopped["reason"]
            queue.set_controls(s, storage_limit_gb=50)
        worker._storage_checked = -1e9  # the next claim looks again (normally once a minute)
        assert worker.claim() is not None
        with session_scope() as s:
            assert not settings_store.BACKFILL_STOPPED.load(s)
    finally:
        worker.close()
