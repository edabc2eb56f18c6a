"""The keys of `media_items.extra` that code reads and branches on, behind one typed accessor.

`extra` is JSONB for facts only some items have. The backfill's keys are read and written
here and nowhere else, so their names and types live in one place:

- `captions`: whether the source had captions the last time we asked (None = never asked);
  the router skips the captions try when it is False (written by the worker).
- `date_estimate`: an upload date guessed from the channel listing order (core.backfill.sync),
  used by priorities when `published_at` is unknown.
- `first_seen_at`: when a sync first listed the item.
- `freshness_lag_s`: publication → searchable, in seconds (worker; averaged by progress).
- `listing_rank`, `listing_size`: the item's place in the last channel listing.
- `route`: the router's reason for the last run.

Zoom keeps its own key (`zoom`, read by core.sources.zoom.known_meeting).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from core.models import MediaItem

FRESHNESS_LAG_KEY = "freshness_lag_s"  # read in SQL by core.backfill.progress.freshness_summary
_DATES = ("date_estimate", "first_seen_at")


class ItemExtra(NamedTuple):
    captions: bool | None = None
    date_estimate: datetime | None = None
    first_seen_at: datetime | None = None
    freshness_lag_s: float | None = None
    listing_rank: int | None = None
    listing_size: int | None = None
    route: str | None = None


def read(item: MediaItem) -> ItemExtra:
    raw = item.extra or {}
    captions = raw.get("captions")
    date_estimate, first_seen = (raw.get(k) for k in _DATES)
    lag, rank, size = raw.get(FRESHNESS_LAG_KEY), raw.get("listing_rank"), raw.get("listing_size")
    return ItemExtra(
        captions=captions if isinstance(captions, bool) else None,
        date_estimate=datetime.fromisoformat(date_estimate) if date_estimate else None,
        first_seen_at=datetime.fromisoformat(first_seen) if first_seen else None,
        freshness_lag_s=float(lag) if lag is not None else None,
        listing_rank=int(rank) if rank is not None else None,
        listing_size=int(size) if size is not None else None,
        route=raw.get("route"),
    )


_UNSET: Any = object()


def update(
    item: MediaItem,
    *,
    captions: bool | None = _UNSET,
    date_estimate: datetime | None = _UNSET,
    first_seen_at: datetime | None = _UNSET,
    freshness_lag_s: float | None = _UNSET,
    listing_rank: int | None = _UNSET,
    listing_size: int | None = _UNSET,
    route: str | None = _UNSET,
) -> None:
    """Change some keys (None removes one); other keys, Zoom's included, are kept."""
    extra = dict(item.extra or {})
    changes: dict[str, Any] = {
        "captions": captions,
        "date_estimate": date_estimate.isoformat() if isinstance(date_estimate, datetime) else date_estimate,
        "first_seen_at": first_seen_at.isoformat() if isinstance(first_seen_at, datetime) else first_seen_at,
        FRESHNESS_LAG_KEY: freshness_lag_s,
        "listing_rank": listing_rank,
        "listing_size": listing_size,
        "route": route,
    }
    for key, value in changes.items():
        if value is _UNSET:
            continue
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = value
    item.extra = extra  # a new dict: JSONB changes are seen on flush
