"""Which item the backfill does next: the admin's order of strategies, pins and skips → one number.

Strategies, each scoring an item in [0, 1]:
- `newest`: later upload first. Flat channel listings carry no dates: an item without
  one uses the estimate the channel sync stored from its listing position
  (the item's date_estimate, see core/backfill/sync.py); with neither it counts as oldest.
- `most_viewed`: log-scaled view count.
- `topic`: the admin's keywords found in the title (counts double) or the description.
  A keyword matches at a word start, case-insensitively: "keto" finds "Ketosis".
- `backlog`: the back catalogue, oldest first (the reverse of newest).

The admin orders the strategies; the score compares them lexicographically (the first
decides, the next breaks its ties, …) by giving each a band of digits in one float:
10,000 levels for the first, 1,000 for each next. Pinned items come before everything
(+1e13); skipped items are never queued.

app_settings key owned here: `priorities` = {"order": [strategy, …], "topics": [keyword, …]}
(core.settings_store.load_priorities). Scoring reads no queue: core.backfill.queue calls it.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import clock, item_extra, settings_store
from core.models import Job, MediaItem
from core.settings_store import PrioritiesValue
from core.states import LIVE_JOBS

STRATEGIES = ("newest", "most_viewed", "topic", "backlog")
DEFAULT_ORDER = ("newest", "topic", "most_viewed", "backlog")
PIN_BOOST = 1e13
FIRST_LEVELS = 10_000
NEXT_LEVELS = 1_000
_EPOCH = datetime(2005, 4, 23, tzinfo=timezone.utc)  # the first YouTube upload: nothing is older


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def _raw(session: Session, *, lock: bool = False) -> PrioritiesValue:
    return settings_store.PRIORITIES.load(session, lock=lock)


def get_strategy_order(session: Session) -> list[str]:
    order = _raw(session).get("order")
    return list(order) if order else list(DEFAULT_ORDER)


def set_strategy_order(session: Session, order: Sequence[str]) -> list[str]:
    """Store the admin's order (a subset is fine; unknown names raise ValueError) and re-rank the queue."""
    clean = list(dict.fromkeys(s.strip() for s in order if s.strip()))
    unknown = [s for s in clean if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    if not clean:
        raise ValueError("name at least one strategy")
    raw = _raw(session, lock=True)
    raw["order"] = clean
    settings_store.PRIORITIES.save(session, raw)
    reprioritize(session)
    return clean


def get_topics(session: Session) -> list[str]:
    return list(_raw(session).get("topics") or [])


def set_topics(session: Session, keywords: Iterable[str]) -> list[str]:
    """Store topic keywords (trimmed, de-duplicated case-insensitively) and re-rank the queue."""
    seen: dict[str, str] = {}
    for word in keywords:
        word = " ".join(word.split())
        if word and word.lower() not in seen:
            seen[word.lower()] = word
    raw = _raw(session, lock=True)
    raw["topics"] = list(seen.values())
    settings_store.PRIORITIES.save(session, raw)
    reprioritize(session)
    return raw["topics"]


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def topic_pattern(topics: Sequence[str]) -> re.Pattern[str] | None:
    if not topics:
        return None
    alternatives = "|".join(re.escape(t) for t in sorted(topics, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})", re.IGNORECASE)


def topic_matches(text: str | None, pattern: re.Pattern[str] | None) -> set[str]:
    """The distinct keywords (lower-cased) found in the text."""
    if not text or pattern is None:
        return set()
    return {m.group(0).lower() for m in pattern.finditer(text)}


def item_date(item: MediaItem) -> tuple[datetime | None, bool]:
    """(upload date or the sync's estimate, whether it is an estimate)."""
    if item.published_at is not None:
        return item.published_at, False
    estimate = item_extra.read(item).date_estimate
    if estimate is not None:
        return estimate, True
    return None, True


def date_label(item: MediaItem) -> str:
    """How the UI shows an item's date: the date, "≈ 2021-03 (estimated)" or "unknown"."""
    when, estimated = item_date(item)
    if when is None:
        return "date unknown"
    if estimated:
        return f"date unknown (≈ {when:%Y-%m}, from the channel listing order)"
    return f"{when:%Y-%m-%d}"


@dataclass(frozen=True)
class Scorer:
    order: tuple[str, ...]
    pattern: re.Pattern[str] | None
    now: datetime

    @classmethod
    def load(cls, session: Session, now: datetime | None = None) -> "Scorer":
        return cls(tuple(get_strategy_order(session)), topic_pattern(get_topics(session)), now or clock.now())

    def recency(self, item: MediaItem) -> float:
        when, _ = item_date(item)
        if when is None:
            return 0.0
        span = (self.now - _EPOCH).total_seconds()
        return min(1.0, max(0.0, (when - _EPOCH).total_seconds() / span))

    def strategy(self, name: str, item: MediaItem) -> float:
        if name == "newest":
            return self.recency(item)
        if name == "backlog":
            return 1.0 - self.recency(item)
        if name == "most_viewed":
            return min(1.0, math.log10(1 + max(0, item.view_count or 0)) / 9.0)
        if name == "topic":
            title = len(topic_matches(item.title, self.pattern))
            desc = len(topic_matches(item.description, self.pattern))
            return min(1.0, (2 * title + desc) / 6.0)
        raise ValueError(f"unknown strategy {name!r}")

    def score(self, item: MediaItem) -> float:
        total = 0.0
        for i, name in enumerate(self.order):
            levels = FIRST_LEVELS if i == 0 else NEXT_LEVELS
            band = NEXT_LEVELS ** (len(self.order) - 1 - i)
            total += math.floor(self.strategy(name, item) * (levels - 1)) * band
        return total + (PIN_BOOST if item.pinned else 0.0)

    def explain(self, item: MediaItem) -> str:
        """Why an item sits where it does, for the admin's queue view."""
        parts = [f"{name} {self.strategy(name, item):.2f}" for name in self.order]
        return ("pinned; " if item.pinned else "") + ", ".join(parts)


def score_item(session: Session, item: MediaItem) -> float:
    return Scorer.load(session).score(item)


def reprioritize(session: Session, item_ids: Sequence[int] | None = None) -> int:
    """Recompute the priority of waiting jobs (all, or of some items) after the admin changed something."""
    scorer = Scorer.load(session)
    stmt = (
        select(Job.id, MediaItem)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .where(Job.status.in_(LIVE_JOBS))
    )
    if item_ids is not None:
        stmt = stmt.where(Job.media_item_id.in_(item_ids))
    rows = [{"id": job_id, "priority": scorer.score(item)} for job_id, item in session.execute(stmt)]
    if rows:
        session.execute(update(Job), rows)  # bulk UPDATE by primary key: one pipelined round trip
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Pins and skips
# ---------------------------------------------------------------------------------------------


def pin_item(session: Session, item_id: int, pinned: bool = True) -> None:
    """Pinned items are done before anything else (and count as urgent for routing)."""
    item = session.get(MediaItem, item_id)
    if item is None:
        raise LookupError(f"no media item {item_id}")
    item.pinned = pinned
    session.flush()
    reprioritize(session, [item_id])
