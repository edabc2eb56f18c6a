"""Priorities and channel sync on the real 572-video listing: strategies, admin order, pins, skips, dates."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from core import clock
from core.backfill import priorities, queue
from core.backfill.sync import estimate_dates, sync_channel
from core.db import session_scope
from core.models import Job, MediaItem
from core.records import ItemInfo
from core.sources.youtube import parse_channel_feed, parse_flat_entry
from tests.conftest import shared_path
from tests.fakes.youtube_http import channel_feed

NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
CHANNEL = "https://www.youtube.com/@anthonychaffeemd"


class RecordedChannel:
    """The channel as YouTube answered it: the real flat listing, and a feed of the newest uploads.

    Stands in for the network only; parsing is our real code (parse_flat_entry, parse_channel_feed).
    """

    kind = "youtube"

    def __init__(self, extra_new: list[ItemInfo] | None = None, feed_size: int = 15):
        path = shared_path("youtube", "anthonychaffeemd_flat_playlist.jsonl")
        entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        self.items = list(extra_new or []) + [i for i in map(parse_flat_entry, entries) if i]
        # The feed: the newest uploads, one every three days, in the Atom shape YouTube serves.
        videos = [(i.external_id, escape(i.title), (NOW - timedelta(days=3 * n + 1)).isoformat()) for n, i in enumerate(self.items[:feed_size])]
        self.feed = parse_channel_feed(channel_feed("UC" + "x" * 22, videos))

    def list_items(self):
        return iter(self.items)

    def recent_upload_dates(self):
        return self.feed


@pytest.fixture(autouse=True)
def frozen_clock():
    clock.set_now(NOW)
    yield
    clock.set_now(None)


def queued_order(limit: int = 5) -> list[MediaItem]:
    with session_scope() as s:
        rows = s.execute(
            select(MediaItem).join(Job, Job.media_item_id == MediaItem.id)
            .where(Job.status.in_(("queued", "retry"))).order_by(Job.priority.desc(), Job.id).limit(limit)
        ).scalars().all()
        s.expunge_all()
        return rows


def test_sync_dates_the_newest_from_the_feed_estimates_the_rest_and_says_so(db):
    channel = RecordedChannel()
    report = sync_channel(url=CHANNEL, source=channel)
    assert (report.listed, report.new, report.queued, report.dated_by_feed) == (572, 572, 572, 15)
    assert report.dates_unknown == 557
    with session_scope() as s:
        items = s.scalars(select(MediaItem).order_by(MediaItem.id)).all()
        dated = [i for i in items if i.published_at is not None]
        assert len(dated) == 15
        assert priorities.date_label(dated[0]) == (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
        unknown = [i for i in items if i.published_at is None]
        assert all(priorities.date_label(i).startswith("date unknown (≈ ") for i in unknown)
        estimates = [datetime.fromisoformat(i.extra["date_estimate"]) for i in unknown]
        assert estimates == sorted(estimates, reverse=True)  # listing order is newest first
        assert all(e < dated[-1].published_at for e in estimates)
        assert all(i.extra["first_seen_at"] == NOW.isoformat() for i in items)


def test_the_admin_order_of_strategies_pins_and_skips_decide_what_runs_next(db):
    channel = RecordedChannel()
    sync_channel(url=CHANNEL, source=channel)
    newest = queued_order(3)
    assert [i.external_id for i in newest] == [i.external_id for i in channel.items[:3]]

    with session_scope() as s:
        priorities.set_strategy_order(s, ["most_viewed", "newest"])
    top = queued_order(3)
    views = sorted((i.view_count or 0 for i in channel.items), reverse=True)
    assert [i.view_count for i in top] == views[:3]

    with session_scope() as s:
        priorities.set_topics(s, ["fasting", "autoimmune"])
        priorities.set_strategy_order(s, ["topic", "newest"])
    top = queued_order(10)
    matched = [i for i in channel.items if priorities.topic_matches(i.title, priorities.topic_pattern(["fasting", "autoimmune"]))]
    assert len(matched) >= 3
    assert all(priorities.topic_matches(i.title, priorities.topic_pattern(["fasting", "autoimmune"])) for i in top[:3])

    oldest = channel.items[-1].external_id
    skip = channel.items[0].external_id
    with session_scope() as s:
        ids = {i.external_id: i.id for i in s.scalars(select(MediaItem))}
        priorities.pin_item(s, ids[oldest])
        queue.skip_item(s, ids[skip])
    assert queued_order(1)[0].external_id == oldest
    with session_scope() as s:
        assert s.scalar(select(Job.status).where(Job.media_item_id == ids[skip])) == "cancelled"
        assert s.get(MediaItem, ids[skip]).status == "skipped"
    with pytest.raises(ValueError, match="unknown strategy"):
        with session_scope() as s:
            priorities.set_strategy_order(s, ["loudest"])


def test_a_sync_finds_a_new_upload_and_queues_it_without_duplicates(db):
    sync_channel(url=CHANNEL, source=RecordedChannel())
    later = NOW + timedelta(minutes=60)  # one sync interval later
    clock.set_now(later)
    fresh = ItemInfo("NEWVIDEO123", "Brand new Q&A on fasting", "https://www.youtube.com/watch?v=NEWVIDEO123", duration_s=3600.0)
    report = sync_channel(url=CHANNEL, source=RecordedChannel(extra_new=[fresh]))
    assert (report.listed, report.new, report.queued) == (573, 1, 1)
    with session_scope() as s:
        item = s.scalars(select(MediaItem).where(MediaItem.external_id == "NEWVIDEO123")).one()
        assert item.published_at == NOW - timedelta(days=1)  # dated by the feed
        assert item.extra["first_seen_at"] == later.isoformat()
        assert s.scalar(select(Job.status).where(Job.media_item_id == item.id)) == "queued"
        assert len(s.scalars(select(MediaItem)).all()) == 573
        assert len(s.scalars(select(Job)).all()) == 573


def test_date_estimates_interpolate_between_known_dates_and_extrapolate_past_them():
    d = lambda day: datetime(2026, 1, day, tzinfo=timezone.utc)  # noqa: E731
    est = estimate_dates([d(20), None, d(10), None, None], now=NOW)
    assert est[1] == d(15)  # halfway between its dated neighbours
    assert est[3] == d(10) - timedelta(days=5) and est[4] == d(10) - timedelta(days=10)  # the mean gap continues
    assert estimate_dates([None, None], now=NOW) == [None, None]


def test_enqueue_scores_newest_first_and_a_pin_beats_everything(db):
    from core.catalog import get_or_create_source, register_item

    with session_scope() as s:
        src = get_or_create_source(s, "upload", "Uploads", None)
        old = register_item(s, src, ItemInfo("a", "Old talk", "file://a", published_at=NOW - timedelta(days=900)))
        new = register_item(s, src, ItemInfo("b", "New talk", "file://b", published_at=NOW - timedelta(days=2)))
        queue.enqueue(s, old.id)
        queue.enqueue(s, new.id)
    assert [i.title for i in queued_order()] == ["New talk", "Old talk"]
    with session_scope() as s:
        priorities.pin_item(s, old.id)
        assert "pinned" in priorities.Scorer.load(s).explain(s.get(MediaItem, old.id))
    assert [i.title for i in queued_order()] == ["Old talk", "New talk"]
