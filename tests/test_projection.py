"""One projection: Admin → Backfill, Admin → Costs and `python -m core backfill status` print the same
progress, pace, finish date and backlog cost; dead items are not progress; paused means paused."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import insert, update
from streamlit.testing.v1 import AppTest

from core import clock
from core.backfill import breaker, progress, queue
from core.config import PROJECT_ROOT
from core.db import session_scope
from core.models import Job, LedgerEntry, MediaItem, Source
from core.states import FailureCause

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture(autouse=True)
def frozen():
    st.cache_data.clear()
    clock.set_now(NOW)
    yield
    clock.set_now(None)


def seed(done: int = 10, dead: int = 2, queued: int = 18) -> list[int]:
    """A run begun two days ago: `done` items indexed over the last day, the rest dead or queued."""
    with session_scope() as s:
        progress.start_run(s, "channel backfill", now=NOW - timedelta(days=2))
        src = Source(kind="youtube", name="YouTube", url="https://www.youtube.com/@test")
        s.add(src)
        s.flush()
        n = done + dead + queued
        ids = list(s.scalars(insert(MediaItem).returning(MediaItem.id), [
            {"source_id": src.id, "external_id": f"vid{i:08d}", "title": f"Talk {i}", "url": f"https://youtu.be/{i}",
             "status": "indexed" if i < done else ("dead" if i < done + dead else "queued"), "duration_s": 1200.0,
             "engine": "openai" if i < done else None, "indexed_at": NOW - timedelta(hours=2 * i + 1) if i < done else None}
            for i in range(n)
        ]))
        for i, item_id in enumerate(ids):
            status = "done" if i < done else ("dead" if i < done + dead else "queued")
            s.add(Job(media_item_id=item_id, status=status, created_at=NOW - timedelta(days=1, hours=23), run_after=NOW,
                      finished_at=NOW - timedelta(hours=2 * i + 1) if i < done + dead else None,
                      last_error="x" if status == "dead" else None,
                      failure_cause=FailureCause.REMOVED if status == "dead" else None, attempts=1))
            if i < done:
                s.add(LedgerEntry(at=NOW - timedelta(hours=2 * i + 1), media_item_id=item_id, engine="openai-transcribe",
                                  audio_minutes=20, usd=0.12))
    return ids


def backfill_page() -> AppTest:
    at = AppTest.from_file(str(PAGES / "admin_backfill.py"), default_timeout=60)
    at.session_state["admin_user"] = "admin"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def costs_page() -> AppTest:
    st.cache_data.clear()
    at = AppTest.from_file(str(PAGES / "admin_costs.py"), default_timeout=60)
    at.session_state["admin_user"] = "admin"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def cli() -> str:
    env = {**os.environ, "CHAFFEE_CLOCK": NOW.isoformat()}
    env.pop("CHAFFEE_CLOCK_FILE", None)
    done = subprocess.run([sys.executable, "-m", "core", "backfill", "status"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def what_each_place_says() -> dict[str, tuple[str, str, str]]:
    """(finish, items left, backlog dollars) as printed by each of the three places."""
    page = backfill_page()
    (bar,) = [p for p in page.get("progress") if "items indexed" in p.proto.text]
    caption = next(c.value for c in page.caption if c.value.startswith("Pace:"))
    backfill = (bar.proto.text.rsplit(" · ", 1)[1], re.search(r"· ([\d,]+) left", bar.proto.text).group(1),
                re.search(r"backlog ≈ (\$[\d,.]+)", caption).group(1))

    costs = costs_page()
    finish = next(c.value for c in costs.caption if c.value.startswith("Finish: "))
    backlog = next(m for m in costs.metric if m.label == "Backlog will cost")
    cost = (finish.removeprefix("Finish: ").split(" — the same projection")[0],
            re.match(r"([\d,]+) items", backlog.proto.delta).group(1), backlog.value)

    line = cli()
    cli_says = (re.search(r"items/day; (.*); backlog ≈", line).group(1),
                re.search(r"; ([\d,]+) left", line).group(1), re.search(r"backlog ≈ (\$[\d,.]+)", line).group(1))
    return {"backfill": backfill, "costs": cost, "cli": cli_says}


def test_backfill_costs_and_the_cli_print_the_same_numbers(db):
    seed()
    with session_scope() as s:
        p = progress.projection(s)
    # 10 indexed in the last 24 h: 10 a day; 20 left (the 2 dead included) → 2 days, before the money runs out.
    assert (p.total, p.done, p.dead, p.remaining, p.items_per_day) == (30, 10, 2, 20, pytest.approx(10.0))
    assert p.finish_date == (NOW + timedelta(days=2)).date() and p.bound_by == "pace"
    said = what_each_place_says()
    expected = (p.finish(), f"{p.remaining:,}", f"${p.backlog_usd:,.2f}")
    assert said == {"backfill": expected, "costs": expected, "cli": expected}
    assert expected[0] == "done around 2026-12-01 (set by the pace)"


def test_dead_items_are_not_progress_so_failures_never_bring_the_date_closer(db):
    ids = seed()
    with session_scope() as s:
        before = progress.projection(s)
        s.execute(update(Job).where(Job.media_item_id.in_(ids[12:20])).values(status="dead", finished_at=NOW))
    with session_scope() as s:
        after = progress.projection(s)
    assert (after.done, after.remaining, after.percent) == (before.done, before.remaining, before.percent)
    assert after.dead == before.dead + 8 and after.finish_date >= before.finish_date
    with session_scope() as s:  # only dead items left: no date, a decision
        s.execute(update(Job).where(Job.media_item_id.in_(ids[12:])).values(status="dead", finished_at=NOW))
    with session_scope() as s:
        assert progress.projection(s).finish() == "only 20 dead-lettered items left: retry or discard them"


def test_paused_means_paused_everywhere_not_a_date(db):
    seed()
    with session_scope() as s:
        queue.set_paused(s, True, "checking quality")
    said = what_each_place_says()
    finish = {place: values[0] for place, values in said.items()}
    assert set(finish.values()) == {"paused: no finish date while the backfill is paused"}, finish


def test_a_backlog_waiting_for_a_paused_source_says_so_everywhere(db):
    ids = seed()
    with session_scope() as s:
        src = s.get(MediaItem, ids[0]).source_id
        breaker.record_failure(s, src, FailureCause.RATE_LIMITED, "HTTP Error 429: Too Many Requests", retry_after_s=1800)
    said = what_each_place_says()
    finish = {place: values[0] for place, values in said.items()}
    assert set(finish.values()) == {
        "YouTube is rate-limiting us since 12:00 UTC — 18 items waiting; next try 12:30 UTC: no finish date until it answers"
    }, finish
