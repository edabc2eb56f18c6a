"""Admin actions change the database and write their audit row in the same transaction; read models are right."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text

from core import admin_actions as aa
from core import audit, clock, dashboard, health
from core.backfill import budget, priorities, queue
from core.config import get_settings
from core.db import session_scope
from core.models import Chunk, Job, LedgerEntry, MediaItem, Source, TranscriptSegment, Worker

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def frozen_clock():
    clock.set_now(NOW)
    yield
    clock.set_now(None)


def _source(s) -> Source:
    src = Source(kind="youtube", name="Channel", url="https://www.youtube.com/@test")
    s.add(src)
    s.flush()
    return src


def _items(s, n: int, **values) -> list[int]:
    src = _source(s) if not s.scalar(select(Source.id)) else s.get(Source, s.scalar(select(Source.id)))
    rows = [
        {"source_id": src.id, "external_id": f"vid{i:05d}", "title": values.get("title", f"Talk number {i}"),
         "url": f"https://youtu.be/vid{i:05d}", "duration_s": 600.0 + i, "status": values.get("status", "queued"),
         "engine": values.get("engine"), "indexed_at": values.get("indexed_at"), "cost_usd": values.get("cost_usd", 0)}
        for i in range(n)
    ]
    return list(s.scalars(insert(MediaItem).returning(MediaItem.id), rows))


def _audit_rows(action: str) -> list[audit.AuditRow]:
    with session_scope() as s:
        return audit.list_entries(s, action=action)


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------


def test_set_budget_valid_and_invalid(db):
    with session_scope() as s:
        aa.set_budget(s, "admin", daily=4, monthly="$90.00")
    with session_scope() as s:
        assert budget.get_budget(s).daily_usd == 4 and budget.get_budget(s).monthly_usd == 90
    [row] = _audit_rows("budget.set")
    assert row.actor == "admin" and row.before["daily_usd"] == 10.0 and row.after["daily_usd"] == 4.0
    assert "daily_usd: 10.0 → 4.0" in audit.describe_change(row.before, row.after)

    for bad, words in (({"daily": 100, "monthly": 90}, "exceeds the monthly budget"),
                       ({"daily": 4, "monthly": 99_999}, "exceeds the monthly safety limit .\\$300.00, set in configuration"),
                       ({"daily": -5, "monthly": 90}, "The daily budget cannot be negative"),
                       ({"daily": "ten", "monthly": 90}, "The daily budget must be a number of dollars"),
                       ({"daily": 4, "monthly": "nan"}, "The monthly budget must be a number of dollars")):
        with pytest.raises(aa.AdminActionError, match=words):
            with session_scope() as s:
                aa.set_budget(s, "admin", **bad)
    with pytest.raises(aa.NothingToSave, match="unchanged"):
        with session_scope() as s:
            aa.set_budget(s, "admin", daily="4.00", monthly=90)
    with session_scope() as s:
        assert budget.get_budget(s).daily_usd == 4
    assert len(_audit_rows("budget.set")) == 1, "refused and unchanged forms write no audit row"


def test_pause_resume_and_controls(db):
    with session_scope() as s:
        aa.set_paused(s, "admin", True, "checking quality")
    with session_scope() as s:
        assert queue.get_controls(s).paused and queue.get_controls(s).pause_reason == "checking quality"
    with session_scope() as s:
        aa.set_paused(s, "admin", False)
        aa.set_controls(s, "admin", max_concurrency=3, paid_routing="never")
    with session_scope() as s:
        c = queue.get_controls(s)
        assert not c.paused and c.max_concurrency == 3 and c.paid_routing == "never"
    assert _audit_rows("backfill.pause")[0].after == {"paused": True, "reason": "checking quality"}
    assert _audit_rows("backfill.resume")[0].before["paused"] is True
    assert _audit_rows("backfill.controls")[0].after == {"max_concurrency": 3, "paid_routing": "never"}
    with pytest.raises(aa.AdminActionError, match="paid_routing"):
        with session_scope() as s:
            aa.set_controls(s, "admin", paid_routing="sometimes")


def test_sync_request_is_recorded_and_taken_once(db):
    with session_scope() as s:
        aa.request_sync(s, "admin")
    with session_scope() as s:
        pending = aa.pending_sync_request(s)
        assert pending["by"] == "admin" and pending["at"].startswith("2026-11-20T15:00")
    with session_scope() as s:
        assert aa.take_sync_request(s)["by"] == "admin"
    with session_scope() as s:
        assert aa.take_sync_request(s) is None and aa.pending_sync_request(s) is None
    assert _audit_rows("sync.request")[0].target == "channel sync"


def test_priorities_pin_and_skip(db):
    with session_scope() as s:
        a, b = _items(s, 2)
        queue.enqueue(s, a)
        queue.enqueue(s, b)
    with session_scope() as s:
        aa.set_strategy_order(s, "admin", ["topic", "newest"])
        aa.set_topics(s, "admin", ["insulin", " Insulin ", "ketosis"])
        aa.pin_item(s, "admin", b)
        aa.skip_item(s, "admin", a)
    with session_scope() as s:
        assert priorities.get_strategy_order(s) == ["topic", "newest"]
        assert priorities.get_topics(s) == ["insulin", "ketosis"]
        assert s.get(MediaItem, b).pinned and s.scalar(select(Job.priority).where(Job.media_item_id == b)) >= priorities.PIN_BOOST
        item_a = s.get(MediaItem, a)
        assert item_a.skipped and item_a.status == "skipped"
        assert s.scalar(select(Job.status).where(Job.media_item_id == a)) == "cancelled"
    assert _audit_rows("priorities.order")[0].after == {"value": ["topic", "newest"]}
    assert _audit_rows("item.pin")[0].target.startswith(f"item {b}:")
    assert _audit_rows("item.skip")[0].after == {"skipped": True, "status": "skipped"}
    with pytest.raises(aa.AdminActionError, match="unknown strategy"):
        with session_scope() as s:
            aa.set_strategy_order(s, "admin", ["cheapest"])
    with pytest.raises(aa.AdminActionError, match="no item 9999"):
        with session_scope() as s:
            aa.pin_item(s, "admin", 9999)


def _dead_job(s, item_id: int) -> int:
    job = Job(media_item_id=item_id, status="dead", attempts=3, last_error="Unavailable: Video unavailable",
              finished_at=NOW - timedelta(hours=2))
    s.add(job)
    s.get(MediaItem, item_id).status = "dead"
    s.flush()
    return job.id


def test_retry_and_discard_dead(db):
    with session_scope() as s:
        a, b = _items(s, 2)
        ja, jb = _dead_job(s, a), _dead_job(s, b)
    with session_scope() as s:
        assert [d.job_id for d in dashboard.dead_letters(s)] and {d.last_error for d in dashboard.dead_letters(s)} == {
            "Unavailable: Video unavailable"}
        assert aa.retry_dead(s, "admin", job_id=ja) == 1
        assert aa.discard_dead(s, "admin", job_id=jb) == 1
    with session_scope() as s:
        assert (s.get(Job, ja).status, s.get(Job, ja).attempts, s.get(MediaItem, a).status) == ("queued", 0, "queued")
        assert (s.get(Job, jb).status, s.get(MediaItem, b).status, s.get(MediaItem, b).skipped) == ("cancelled", "skipped", True)
    retry = _audit_rows("dead.retry")[0]
    assert retry.before[0]["last_error"] if isinstance(retry.before, list) else retry.before["value"][0]["last_error"]
    assert _audit_rows("dead.discard")[0].after["discarded"] == 1
    with pytest.raises(aa.AdminActionError, match="No dead-lettered job"):
        with session_scope() as s:
            aa.retry_dead(s, "admin", job_id=ja)


def test_retranscribe_queues_a_forced_engine(db):
    with session_scope() as s:
        [a] = _items(s, 1, status="indexed", engine="captions")
    with session_scope() as s:
        job_id = aa.retranscribe(s, "admin", a, "local")
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert (job.kind, job.engine, job.status) == ("retranscribe", "local", "queued")
        assert s.get(MediaItem, a).status == "indexed"  # stays searchable until replaced
    assert _audit_rows("item.retranscribe")[0].after == {"engine": "local", "job": job_id}
    with pytest.raises(aa.AdminActionError, match="already queued"):
        with session_scope() as s:
            aa.retranscribe(s, "admin", a, "openai")
    with pytest.raises(aa.AdminActionError, match="Unknown engine"):
        with session_scope() as s:
            aa.retranscribe(s, "admin", a, "whisperx")


def test_delete_item_cascades_and_removes_our_files_after_commit(db, tmp_path):
    media = get_settings().media_dir
    with session_scope() as s:
        a, b = _items(s, 2)
        s.add_all([TranscriptSegment(media_item_id=a, idx=0, start_s=0, end_s=5, text="hello", engine="captions"),
                   Chunk(media_item_id=a, idx=0, start_s=0, end_s=5, text="hello there")])
        s.add(LedgerEntry(at=NOW, media_item_id=a, engine="openai-transcribe", audio_minutes=10, usd=0.06))
        folder = media / str(a)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "audio.m4a").write_bytes(b"x")
        outside = tmp_path / "users-own-file.mp3"
        outside.write_bytes(b"y")
        s.get(MediaItem, b).media_path = str(outside)
    # A rolled-back delete removes nothing, not even the file.
    with pytest.raises(RuntimeError):
        with session_scope() as s:
            aa.delete_item(s, "admin", a)
            raise RuntimeError("boom")
    assert (media / str(a) / "audio.m4a").exists()
    with session_scope() as s:
        files = aa.delete_item(s, "admin", a)
        aa.delete_item(s, "admin", b)
    assert files and not (media / str(a)).exists()
    assert outside.exists()  # never a file outside our media folder
    with session_scope() as s:
        assert s.get(MediaItem, a) is None
        assert s.scalar(select(func.count()).select_from(Chunk)) == 0
        assert s.scalar(select(func.count()).select_from(TranscriptSegment)) == 0
        assert s.scalar(select(LedgerEntry.media_item_id)) is None  # money history stays
    row = _audit_rows("item.delete")[-1]
    assert row.before["chunks"] == 1 and row.after is None


def test_synonyms_and_prices(db):
    with session_scope() as s:
        aa.set_synonyms(s, "admin", {"LDL": "cholesterol, lipoproteins"})
        aa.set_price(s, "admin", "openai-transcribe", per_audio_minute=0.003)
    with session_scope() as s:
        from core.search.preprocess import get_synonyms

        assert get_synonyms(s) == {"ldl": ["cholesterol", "lipoproteins"]}
        assert budget.get_prices(s)["openai-transcribe"].per_audio_minute == 0.003
    assert _audit_rows("search.synonyms")[0].after == {"ldl": ["cholesterol", "lipoproteins"]}
    assert _audit_rows("budget.price")[0].before["per_audio_minute"] == 0.006
    with pytest.raises(aa.AdminActionError, match="negative"):
        with session_scope() as s:
            aa.set_price(s, "admin", "openai-transcribe", per_audio_minute=-1)


def test_audit_listing_filters_and_escapes(db):
    with session_scope() as s:
        audit.record(s, "alice", "item.pin", "item 1: 100% Carnivore_Talk", {"pinned": False}, {"pinned": True})
        audit.record(s, "bob", "budget.set", "budget", None, 5)
    with session_scope() as s:
        assert audit.count_entries(s) == 2
        assert [r.actor for r in audit.list_entries(s, search="100%")] == ["alice"]
        assert audit.count_entries(s, search="%") == 1  # a literal percent sign, not a wildcard
        assert audit.count_entries(s, actor="bob") == 1
        assert audit.distinct_actions(s) == ["budget.set", "item.pin"]
        assert audit.list_entries(s, action="budget.set")[0].after == {"value": 5}
    with pytest.raises(ValueError):
        with session_scope() as s:
            audit.record(s, " ", "x")


# ---------------------------------------------------------------------------------------------
# Read models: dashboard and health
# ---------------------------------------------------------------------------------------------


def test_library_page_filters_search_and_pages_fast_at_12k(db):
    with session_scope() as s:
        src = _source(s)
        statuses = ["indexed", "queued", "review", "failed", "dead", "skipped"]
        rows = [
            {"source_id": src.id, "external_id": f"v{i:06d}", "title": f"Talk {i} about {'insulin' if i % 10 == 0 else 'meat'}",
             "url": f"https://youtu.be/v{i:06d}", "status": statuses[i % 6], "engine": "captions" if i % 6 == 0 else None,
             "duration_s": 3000.0, "cost_usd": Decimal("0.18") if i % 12 == 0 else 0}
            for i in range(12_000)
        ]
        s.execute(insert(MediaItem), rows)
        s.execute(insert(MediaItem), [{"source_id": src.id, "external_id": "odd", "title": "50% off_sale", "url": "u",
                                        "status": "queued"}])
        s.execute(text("ANALYZE media_items"))
    with session_scope() as s:
        started = time.perf_counter()
        page = dashboard.library_page(s, dashboard.LibraryFilter(statuses=("indexed",), search="insulin"), page=3, page_size=50)
        elapsed = time.perf_counter() - started
        assert page.total == 12_000 // 30 and page.page == 3 and len(page.rows) == 50
        assert all(r.status == "indexed" and "insulin" in r.title for r in page.rows)
        assert elapsed < 0.5, f"library page took {elapsed:.3f} s"
        last = dashboard.library_page(s, dashboard.LibraryFilter(), page=10_000, page_size=100)
        assert last.page == last.pages == 121 and len(last.rows) == 1
        assert dashboard.library_page(s, dashboard.LibraryFilter(search="%")).total == 1  # literal, bound
        assert dashboard.library_page(s, dashboard.LibraryFilter(search="v000007")).rows[0].external_id == "v000007"
        costly = dashboard.library_page(s, dashboard.LibraryFilter(sort="most expensive"), page_size=5)
        assert costly.rows[0].cost_usd == pytest.approx(0.18)
        assert dashboard.library_page(s, dashboard.LibraryFilter(engines=("none",))).total == 12_001 - 2000
        counts = dashboard.status_counts(s)
        assert counts["indexed"] == 2000 and counts["transcribing"] == 0


def test_cost_aggregates(db):  # the backlog projection: tests/test_projection.py
    with session_scope() as s:
        aa.set_budget(s, "admin", daily=2, monthly=40)
        done = _items(s, 14, status="indexed", engine="openai", indexed_at=NOW - timedelta(days=1))
        s.execute(insert(MediaItem), [
            {"source_id": s.scalar(select(Source.id)), "external_id": f"q{i}", "title": "queued", "url": "u",
             "status": "queued", "duration_s": 3600.0} for i in range(7)
        ])
        for d in range(5):  # $1.50 a day for the last five days, one day over the cap
            s.add(LedgerEntry(at=NOW - timedelta(days=d, hours=1), media_item_id=done[d], engine="openai-transcribe",
                              audio_minutes=250, usd=1.5 if d else 2.5))
        s.add(Job(media_item_id=done[0], status="dead", last_error="x", finished_at=NOW - timedelta(days=2)))
        s.add(Job(media_item_id=done[1], status="retry", last_error="y", started_at=NOW - timedelta(hours=3)))
    with session_scope() as s:
        daily = dashboard.daily_spend(s, 7)
        assert len(daily) == 7 and daily[-1].usd == 2.5 and daily[-1].over and daily[-1].cap == 2
        assert sum(d.usd for d in daily) == pytest.approx(8.5)
        mtd = dashboard.month_to_date(s)
        assert mtd.spent == pytest.approx(8.5) and mtd.cap == 40 and mtd.by_day[-1][1] == pytest.approx(8.5)
        assert mtd.month_start.day == 1 and mtd.days_in_month == 30
        engines = {r.engine: r for r in dashboard.by_engine(s)}
        assert engines["openai"].usd == pytest.approx(8.5) and engines["openai"].items == 14
        cum = dashboard.cumulative_spend(s, days=10)
        assert cum[-1][1] == pytest.approx(8.5) and cum[0][1] == 0
        fails = {(c.day, c.series): c.count for c in dashboard.failures_per_day(s, 7)}
        assert fails[((NOW - timedelta(days=2)).date(), "dead-lettered")] == 1
        assert fails[(NOW.date(), "failed attempt, will retry")] == 1
        per_day = dashboard.items_per_day(s, 3)
        assert sum(c.count for c in per_day) == 14


def test_health_heartbeat_queue_workers_storage(db):
    settings = get_settings()
    with session_scope() as s:
        assert health.scheduler_heartbeat(s, settings).label == "never seen"
        s.add_all([
            Worker(id="a:1:x", role="scheduler", hostname="a", pid=1, capabilities={"device": "cpu"},
                   heartbeat_at=datetime.now(timezone.utc) - timedelta(seconds=20)),
            Worker(id="b:2:y", role="worker", hostname="b", pid=2, capabilities={"device": "cuda", "gpu": "L4"},
                   heartbeat_at=datetime.now(timezone.utc) - timedelta(hours=2)),
        ])
        [a] = _items(s, 1)
        queue.enqueue(s, a)
    with session_scope() as s:
        beat = health.scheduler_heartbeat(s, settings)
        assert beat.alive and beat.label == "alive" and beat.hostname == "a"
        ws = {w.id: w for w in health.workers(s, settings)}
        assert ws["a:1:x"].alive and not ws["b:2:y"].alive and ws["b:2:y"].capabilities["gpu"] == "L4"
        depth = health.queue_depth(s)
        assert depth.jobs["queued"] == 1 and depth.jobs["dead"] == 0 and depth.waiting == 1
        store = health.storage(s, settings)
        assert store.database_bytes > 1_000_000 and store.limit_bytes == int(settings.storage_limit_gb * 1024**3)
        assert 0 < store.fraction < 1
        assert health.largest_tables(s)
    with session_scope() as s:
        s.execute(text("UPDATE workers SET heartbeat_at = now() - interval '1 hour' WHERE role = 'scheduler'"))
    with session_scope() as s:
        assert health.scheduler_heartbeat(s, settings).label == "stale"
    assert health.human_bytes(1536) == "1.5 KB" and health.human_age(3700) == "1 h 1 min ago"


# ---------------------------------------------------------------------------------------------
# Demo data
# ---------------------------------------------------------------------------------------------


def test_seed_demo_over_the_real_listing(db):
    from core.demo import DemoError, seed_demo
    from tests.conftest import shared_path

    listing = shared_path("youtube", "anthonychaffeemd_flat_playlist.jsonl")
    clock.set_now(None)  # the demo is "the last 30 days" of real time
    with session_scope() as s:
        summary = seed_demo(s, listing=listing)
    assert summary.items == 572 and summary.workers == 3
    assert summary.by_status["indexed"] > 250 and summary.by_status["queued"] > 150
    assert {"dead", "failed", "review", "skipped", "fetching", "transcribing"} <= set(summary.by_status)
    with session_scope() as s:
        cap = budget.get_budget(s).daily_cap
        assert all(d.usd <= cap + 1e-6 for d in dashboard.daily_spend(s, 31))  # the simulated backfill kept the cap
        assert sum(1 for d in dashboard.daily_spend(s, 31) if d.usd > 0) >= 28  # a month of ledger rows
        assert dashboard.dead_letters(s) and all(d.last_error for d in dashboard.dead_letters(s))
        assert health.scheduler_heartbeat(s, get_settings()).alive
        assert s.scalar(select(func.count()).select_from(MediaItem).where(MediaItem.published_at.is_(None))) > 100
    with pytest.raises(DemoError, match="--force"):
        with session_scope() as s:
            seed_demo(s, listing=listing)
    with session_scope() as s:
        assert seed_demo(s, listing=listing, force=True).items == 572
