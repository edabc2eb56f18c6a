"""A source's circuit breaker on the real Postgres: trips after failures in a row, one probe at a time, resumes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from core import clock
from core.backfill import breaker, queue
from core.backfill.dispatch import claim_next
from core.catalog import get_or_create_source, register_item
from core.db import session_scope
from core.models import Job, MediaItem, SourceBreaker
from core.records import ItemInfo
from core.states import BreakerState, FailureCause, WaitReason
from core.transcribe.router import WorkerCaps

T0 = datetime(2026, 11, 25, 6, 40, tzinfo=timezone.utc)
LOCAL = WorkerCaps("w1", ("local",), "cpu", "tiny.en")
DOWN = FailureCause.SOURCE_UNREACHABLE


@pytest.fixture(autouse=True)
def frozen_clock():
    clock.set_now(T0)
    yield
    clock.set_now(None)


def make_items(n: int, kind: str) -> list[int]:
    with session_scope() as s:
        src = get_or_create_source(s, kind, kind, f"https://{kind}.example/x")
        ids = [register_item(s, src, ItemInfo(f"{kind}{i:08d}", f"Talk {i}", f"file://{kind}{i}", duration_s=600.0),
                             media_path=f"/nonexistent/{kind}{i}.wav").id for i in range(n)]
        queue.enqueue_items(s, ids)
        return ids


def jobs(ids: list[int]) -> list[Job]:
    with session_scope() as s:
        return list(s.scalars(select(Job).where(Job.media_item_id.in_(ids)).order_by(Job.id)))


def source_of(item_id: int) -> int:
    with session_scope() as s:
        return s.get(MediaItem, item_id).source_id


def test_three_unreachable_failures_in_a_row_pause_the_source_then_one_probe_at_a_time_until_it_answers(db):
    yt, up = make_items(5, "youtube"), make_items(1, "upload")
    src = source_of(yt[0])
    with session_scope() as s:
        assert not breaker.record_failure(s, src, DOWN, "Failed to resolve 'www.youtube.com'").open
        assert not breaker.record_failure(s, src, DOWN, "Failed to resolve 'www.youtube.com'").open
        trip = breaker.record_failure(s, src, DOWN, "Failed to resolve 'www.youtube.com'")
    assert trip.open and trip.until == T0 + timedelta(seconds=300)
    assert all(j.run_after == trip.until and j.wait_reason == WaitReason.SOURCE for j in jobs(yt))
    with session_scope() as s:
        (status,) = breaker.paused_sources(s)
        assert status.line() == "YouTube unreachable since 06:40 UTC — 5 items waiting; next try 06:45 UTC"
        claim = claim_next(s, LOCAL, lease_s=60)
        assert claim.item_id == up[0] and claim_next(s, LOCAL, lease_s=60) is None  # the other source flows

    clock.set_now(trip.until)
    with session_scope() as s:
        probe = claim_next(s, LOCAL, lease_s=60)
        assert probe is not None and probe.item_id in yt
    with session_scope() as s:
        assert claim_next(s, LOCAL, lease_s=60) is None, "one probe at a time: the others wait"
        other = s.get(MediaItem, next(i for i in yt if i != probe.item_id))
        assert other.status_detail.startswith("waiting: YouTube could not be reached since 06:40 UTC; the next try is at")
    with session_scope() as s:  # the probe fails the same way: the wait doubles
        again = breaker.record_failure(s, src, DOWN, "connection refused", job_id=probe.job_id)
        assert queue.release(s, probe.job_id, "w1", run_after=again.until, why=WaitReason.SOURCE)
    assert again.until == trip.until + timedelta(seconds=600)

    clock.set_now(again.until)
    with session_scope() as s:
        probe2 = claim_next(s, LOCAL, lease_s=60)
        assert probe2 is not None
        assert breaker.record_answer(s, src), "the probe got through: the source resumes"
        queue.complete(s, probe2.job_id, "w1")
    with session_scope() as s:
        row = s.get(SourceBreaker, src)
        assert row.state == BreakerState.CLOSED and row.failures == 0 and breaker.paused_sources(s) == []
        # Every waiting job is claimable at once; none lost an attempt while paused.
        waiting = [j for j in jobs(yt) if j.status == "queued"]
        assert len(waiting) == 4 and all(j.attempts == 0 and j.run_after <= again.until for j in waiting)
        assert claim_next(s, LOCAL, lease_s=60) is not None


def test_an_answer_between_failures_resets_the_streak_and_a_429_pauses_at_once_for_its_retry_after(db):
    zoom = make_items(2, "zoom")
    src = source_of(zoom[0])
    with session_scope() as s:
        breaker.record_failure(s, src, DOWN, "Zoom request failed: ConnectError")
        breaker.record_failure(s, src, DOWN, "Zoom request failed: ConnectError")
        breaker.record_answer(s, src)  # a private recording: Zoom answered
        assert not breaker.record_failure(s, src, DOWN, "Zoom request failed: ConnectError").open
        trip = breaker.record_failure(s, src, FailureCause.RATE_LIMITED, "Zoom rate limit (429)", retry_after_s=900)
    assert trip.open and trip.until == T0 + timedelta(seconds=900)
    with session_scope() as s:
        (status,) = breaker.paused_sources(s)
        assert status.line().startswith("Zoom is rate-limiting us since 06:40 UTC — 2 items waiting")


def test_every_cause_has_plain_words_and_advice():
    from core.backfill.failures import UNCLASSIFIED, advice, label

    for cause in FailureCause:
        assert label(cause, "youtube") and label(cause, "zoom") and advice(cause).endswith(".")
    assert label(None) == UNCLASSIFIED and label("from-an-old-version") == UNCLASSIFIED


def test_the_cli_lists_the_dead_letter_by_cause_and_retries_one_cause_audited(db):
    import os
    import subprocess
    import sys

    from core import audit
    from core.config import PROJECT_ROOT

    yt, zoom = make_items(3, "youtube"), make_items(1, "zoom")
    with session_scope() as s:
        for item_id in yt + zoom:
            job = s.scalars(select(Job).where(Job.media_item_id == item_id)).one()
            job.status, job.attempts, job.last_error = "dead", 3, "SourceUnreachable: Failed to resolve"
            job.failure_cause = FailureCause.SOURCE_UNREACHABLE if item_id != yt[2] else FailureCause.REMOVED

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "core", "backfill", *args], cwd=PROJECT_ROOT, env=dict(os.environ),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = cli("dead").splitlines()
    assert listed[0].startswith("YouTube could not be reached (2) — cause source_unreachable: Usually passes")
    assert {line.split(" — ")[0] for line in listed[1:]} == {"Zoom could not be reached (1)",
                                                             "Video is removed or does not exist (1)"}
    assert cli("retry-dead", "--cause", "source_unreachable").strip() == "3 dead job(s) queued again"
    assert sorted(j.status for j in jobs(yt + zoom)) == ["dead", "queued", "queued", "queued"]
    with session_scope() as s:
        rows = audit.list_entries(s, action="dead.retry_group")
    assert {r.actor for r in rows} == {"cli"} and len(rows) == 2  # one audited action per group (YouTube, Zoom)
