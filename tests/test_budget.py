"""Money on the real Postgres with a controllable clock: caps, reservations, ledger, roll-over."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import clock
from core.backfill import budget, queue
from core.backfill.dispatch import claim_next
from core.backfill.reaper import reap
from core.backfill.worker import Worker
from core.catalog import get_or_create_source, register_item
from core.config import load_settings
from core.db import session_scope
from core.models import Job, LedgerEntry, MediaItem, Reservation
from core.records import ItemInfo
from core.states import WaitReason
from core.transcribe.router import WorkerCaps

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)  # a Sunday, two days before December
PAID = WorkerCaps("paid-worker", ("openai",))
LOCAL = WorkerCaps("cpu-worker", ("local",), "cpu", "tiny.en")


@pytest.fixture(autouse=True)
def frozen_clock():
    clock.set_now(T0)
    yield
    clock.set_now(None)


def make_items(n: int, *, minutes: float = 10.0) -> list[int]:
    with session_scope() as s:
        src = get_or_create_source(s, "upload", "Uploads", None)
        return [
            register_item(s, src, ItemInfo(f"sha-{i}", f"Talk {i}", f"file://{i}", duration_s=minutes * 60)).id
            for i in range(n)
        ]


def finish(claim, *, minutes: float) -> float:
    """What the worker does when a paid job ends: complete it and write its actual cost."""
    with session_scope() as s:
        assert queue.complete(s, claim.job_id, PAID.worker_id)
        return budget.settle(s, claim.reservation_id, [budget.UsageLike("openai", audio_minutes=minutes)],
                             job_id=claim.job_id, item_id=claim.item_id)


def claim(caps: WorkerCaps = PAID):
    with session_scope() as s:
        return claim_next(s, caps, lease_s=600)


def spent(since: datetime, until: datetime) -> float:
    with session_scope() as s:
        return float(s.scalar(select(func.coalesce(func.sum(LedgerEntry.usd), 0)).where(LedgerEntry.at >= since, LedgerEntry.at < until)))


def test_paid_work_pauses_at_the_daily_cap_resumes_next_day_and_free_work_keeps_going(db):
    ids = make_items(6)
    with session_scope() as s:
        budget.set_budget(s, 0.10, 1.00)
        queue.set_controls(s, paid_routing="always")
        for i in ids:
            queue.enqueue(s, i)
    # 10 min at $0.006/min = $0.06 (reserved with a 10% margin: $0.066): one a day fits under $0.10.
    first = claim()
    assert first is not None and first.route.paid == "openai" and first.reserved_usd == pytest.approx(0.066)
    assert finish(first, minutes=10) == pytest.approx(0.06)
    assert claim() is None  # the next one would pass the cap: it waits for tomorrow
    with session_scope() as s:
        waiting = s.scalars(select(Job).where(Job.wait_reason == WaitReason.BUDGET)).all()
        assert waiting and all(j.run_after == datetime(2026, 11, 30, tzinfo=timezone.utc) for j in waiting)
        item = s.get(MediaItem, waiting[0].media_item_id)
        assert "daily budget spent" in item.status_detail and "2026-11-30 00:00" in item.status_detail
        state = budget.state(s)
        assert state.paid_paused_until == datetime(2026, 11, 30, tzinfo=timezone.utc) or state.left_today < 0.066
    # A worker with local whisper arrives: money does not hold it back.
    local = Worker(engines=["local"], device="cpu")
    local.start()
    try:
        free = local.claim()
    finally:
        local.close()
    assert free is not None and free.route.paid is None and free.reservation_id is None
    assert "local whisper on cpu" in free.route.reason

    clock.set_now(datetime(2026, 11, 30, 0, 0, 1, tzinfo=timezone.utc))
    again = claim()
    assert again is not None and again.route.paid == "openai"
    finish(again, minutes=10)
    assert spent(datetime(2026, 11, 29, tzinfo=timezone.utc), datetime(2026, 11, 30, tzinfo=timezone.utc)) <= 0.10
    assert spent(datetime(2026, 11, 30, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)) <= 0.10


def test_paid_work_pauses_at_the_monthly_cap_until_the_first_of_next_month(db):
    ids = make_items(5)
    with session_scope() as s:
        budget.set_budget(s, 0.10, 0.13)
        queue.set_controls(s, paid_routing="always")
        for i in ids:
            queue.enqueue(s, i)
    finish(claim(), minutes=10)  # Nov 29: $0.06
    clock.set_now(datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
    finish(claim(), minutes=10)  # Nov 30: $0.12 this month
    clock.set_now(datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc))
    assert claim() is None
    with session_scope() as s:
        assert {j.run_after for j in s.scalars(select(Job).where(Job.wait_reason == WaitReason.BUDGET))} == {
            datetime(2026, 12, 1, tzinfo=timezone.utc)
        }
    clock.set_now(datetime(2026, 12, 1, 0, 0, 1, tzinfo=timezone.utc))
    with session_scope() as s:
        assert budget.roll_over(s) >= 0
    assert claim() is not None
    assert spent(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)) <= 0.13


def test_concurrent_reservations_never_pass_the_cap(db, engine):
    with session_scope() as s:
        budget.set_budget(s, 0.10, 1.0)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def reserve() -> None:
        with Session(engine) as s:
            barrier.wait()
            ok = budget.reserve(s, usd=0.03, engine="openai-transcribe", job_id=None, item_id=None).ok
            s.commit()
            results.append(ok)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 3  # 3 × $0.03 ≤ $0.10 < 4 × $0.03
    with session_scope() as s:
        assert float(s.scalar(select(func.sum(Reservation.usd)).where(Reservation.status == "open"))) == pytest.approx(0.09)


def test_settling_writes_ledger_rows_and_closes_the_reservation(db):
    (item,) = make_items(1, minutes=30)
    with session_scope() as s:
        queue.set_controls(s, paid_routing="always")
        queue.enqueue(s, item)
    c = claim()
    with session_scope() as s:
        queue.complete(s, c.job_id, PAID.worker_id)
        usd = budget.settle(s, c.reservation_id, [
            budget.UsageLike("openai-transcribe", audio_minutes=30),
            budget.UsageLike("openai-embed", tokens=2_000_000),
            budget.UsageLike("local"),  # free: no row
        ], job_id=c.job_id, item_id=item)
    assert usd == pytest.approx(0.18 + 0.04)
    with session_scope() as s:
        rows = s.scalars(select(LedgerEntry).order_by(LedgerEntry.engine)).all()
        assert [(r.engine, r.audio_minutes, r.tokens, float(r.usd), r.media_item_id) for r in rows] == [
            ("openai-embed", 0.0, 2_000_000, 0.04, item),
            ("openai-transcribe", 30.0, 0, 0.18, item),
        ]
        res = s.get(Reservation, c.reservation_id)
        assert res.status == "settled" and float(res.usd) >= 0.18
        assert float(s.get(MediaItem, item).cost_usd) == pytest.approx(0.22)
        by_engine = {e.engine: e.usd for e in budget.spend_by_engine(s)}
        assert by_engine == {"openai-transcribe": pytest.approx(0.18), "openai-embed": pytest.approx(0.04)}
        days = budget.spend_by_day(s, 3)
        assert [d.day.isoformat() for d in days] == ["2026-11-27", "2026-11-28", "2026-11-29"]
        assert days[-1].usd == pytest.approx(0.22) and days[0].usd == 0


def test_a_lost_run_is_charged_if_it_may_have_paid_and_released_if_not(db):
    a, b = make_items(2)
    with session_scope() as s:
        queue.set_controls(s, paid_routing="always")
        queue.enqueue(s, a, priority=2)
        queue.enqueue(s, b, priority=1)
    ca, cb = claim(), claim()
    with session_scope() as s:
        queue.heartbeat(s, ca.job_id, PAID.worker_id, lease_s=60, stage="transcribing")
        queue.heartbeat(s, cb.job_id, PAID.worker_id, lease_s=60, stage="fetching")
    clock.set_now(T0 + timedelta(minutes=20))
    report = reap()
    assert report.jobs == 2 and report.reservations == 2
    with session_scope() as s:
        assert s.get(Reservation, ca.reservation_id).status == "settled"
        assert s.get(Reservation, cb.reservation_id).status == "released"
        (row,) = s.scalars(select(LedgerEntry)).all()
        assert row.media_item_id == a and "transcribing" in row.note and float(row.usd) == pytest.approx(ca.reserved_usd)


def test_budgets_are_validated_daily_below_monthly_below_safety(db):
    with session_scope() as s:
        limits = budget.get_budget(s)
        assert (limits.daily_usd, limits.monthly_usd, limits.daily_safety_usd, limits.monthly_safety_usd) == (10, 200, 15, 300)
    for args, words in (
        ((20, 200), "daily safety limit"),
        ((10, 5), "exceeds the monthly budget"),
        ((10, 400), "monthly safety limit"),
        ((-1, 200), "negative"),
    ):
        with pytest.raises(ValueError, match=words):
            with session_scope() as s:
                budget.set_budget(s, *args)
    with session_scope() as s:
        assert budget.set_budget(s, 12, 250, timezone="America/New_York").daily_cap == 12
        assert budget.get_budget(s).monthly_usd == 250


def test_budget_days_follow_the_configured_timezone(db):
    with session_scope() as s:
        budget.set_budget(s, 1.0, 10.0, timezone="America/New_York")
        # 03:00 UTC on Nov 30 is still Nov 29 in New York: it counts for "today" at 20:00 local.
        s.add(LedgerEntry(at=datetime(2026, 11, 30, 3, tzinfo=timezone.utc), engine="openai-transcribe", usd=0.5))
    with session_scope() as s:
        state = budget.state(s, datetime(2026, 11, 30, 1, tzinfo=timezone.utc))
        assert state.spent_today == pytest.approx(0.5)
        assert state.periods.day_end == datetime(2026, 11, 30, 5, tzinfo=timezone.utc)  # midnight EST
        assert budget.state(s, datetime(2026, 11, 30, 6, tzinfo=timezone.utc)).spent_today == 0


def test_progress_shows_done_total_eta_and_dollars_and_the_cli_prints_it(db):
    import os
    import subprocess
    import sys

    from core.backfill.progress import projection, save_snapshot, start_run
    from core.config import PROJECT_ROOT

    ids = make_items(4)
    with session_scope() as s:
        start_run(s, "test run")
        queue.set_controls(s, paid_routing="always")
        for i in ids:
            queue.enqueue(s, i)
    for hour in (1, 2):  # one paid job an hour
        clock.set_now(T0 + timedelta(hours=hour))
        finish(claim(), minutes=10)
    clock.set_now(T0 + timedelta(hours=2))
    with session_scope() as s:
        p = projection(s)
        save_snapshot(s)
    assert (p.total, p.done, p.remaining, p.percent) == (4, 2, 2, 50.0)
    # Two items in the two hours since the run began: 24 a day, so the other two take two more hours.
    assert p.items_per_day == pytest.approx(24.0) and p.finish_date == (T0 + timedelta(hours=4)).date()
    assert p.spent_run_usd == pytest.approx(0.12) and p.left_today_usd == pytest.approx(10 - 0.12)
    assert p.audio_hours_done == pytest.approx(20 / 60)
    line = p.line()
    assert "2/4 (50.0%)" in line and "done around 2026-11-29 (set by the pace)" in line and "$0.12 spent" in line
    done = subprocess.run([sys.executable, "-m", "core", "backfill", "status"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "CHAFFEE_CLOCK": (T0 + timedelta(hours=2)).isoformat()})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == line


def test_running_one_item_now_goes_through_the_budget_too(db):
    (item,) = make_items(1)  # 10 min: $0.066 reserved for the paid API
    with session_scope() as s:
        budget.set_budget(s, 0.05, 1.0)
    worker = Worker(engines=["openai"], settings=load_settings(openai_api_key="test-key"))  # keyed: the API is offered
    worker.start()
    try:
        job_id, what = worker.run_item(item, engine="openai")
    finally:
        worker.close()
    assert what.startswith("not started") and "exceeds the daily cap $0.05" in what
    with session_scope() as s:
        assert s.get(Job, job_id).status == "queued" and s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
