"""Channel sync: list the channel, learn upload dates cheaply, register new items, queue them.

Flat channel listings carry no upload dates, and one metadata call per old video would
cost hundreds of requests (and invite YouTube's bot wall). Instead:
- the channel's Atom feed gives the exact dates of the ~15 newest uploads (one request);
- every other undated item gets an *estimate* from its place in the listing (listings are
  newest first): interpolated between dated neighbours, or extrapolated from the feed's
  upload rhythm. Estimates live in the item's `date_estimate` (core.item_extra; never in
  published_at), so the
  UI says "date unknown (≈ 2021-03)" and priorities can still order by age.

A sync also records when it first saw each item (`first_seen_at`), so the lag from
publication to discovery, and to indexing (`freshness_lag_s`, written by the worker), can
be reported: with a sync every `sync_interval_min`, a new upload is found
within that interval.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select

from core import clock, item_extra
from core.backfill import breaker, queue
from core.backfill.failures import classify
from core.config import get_settings
from core.db import session_scope
from core.models import MediaItem
from core.records import ItemInfo
from core.sources.base import RateLimited, SourceError
from core.states import SOURCE_WIDE_CAUSES

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = timedelta(days=7)  # assumed upload rhythm when fewer than two dates are known
EARLIEST = datetime.fromisoformat("2005-04-23T00:00:00+00:00")


class SyncReport(NamedTuple):
    source_id: int | None
    listed: int
    new: int
    queued: int
    dated_by_feed: int
    dates_unknown: int
    error: str | None = None


def estimate_dates(dates: Sequence[datetime | None], *, now: datetime) -> list[datetime | None]:
    """Known dates in listing order (newest first) → an estimate for each unknown one.

    Between two dated items the estimate is interpolated by position; past the oldest dated
    item it is extrapolated with the mean gap between dated uploads (or a week). Estimates
    never go after `now` or before YouTube existed, and stay in listing order.
    """
    known = [(i, d) for i, d in enumerate(dates) if d is not None]
    if not known:
        return [None] * len(dates)
    if len(known) >= 2:
        (i0, d0), (i1, d1) = known[0], known[-1]
        gap = (d0 - d1) / max(1, i1 - i0)
    else:
        gap = DEFAULT_INTERVAL
    gap = max(gap, timedelta(hours=1))
    out: list[datetime | None] = []
    k = 0  # index into known: the first dated item at or after position i
    for i, d in enumerate(dates):
        if d is not None:
            out.append(d)
            continue
        while k < len(known) and known[k][0] < i:
            k += 1
        newer = known[k - 1] if k > 0 else None
        older = known[k] if k < len(known) else None
        if newer and older:
            frac = (i - newer[0]) / (older[0] - newer[0])
            est = newer[1] - (newer[1] - older[1]) * frac
        elif newer:
            est = newer[1] - gap * (i - newer[0])
        else:
            assert older is not None  # known is not empty: with no dated item before i there is one after
            est = older[1] + gap * (older[0] - i)
        out.append(min(now, max(EARLIEST, est)))
    return out


def _feed_dates(source: Any) -> dict[str, datetime]:
    fetch = getattr(source, "recent_upload_dates", None)
    if fetch is None:
        return {}
    try:
        return dict(fetch())
    except SourceError as exc:  # dates are a nicety: the sync goes on without them
        log.warning("channel feed unavailable, upload dates stay unknown: %s", exc)
        return {}


def sync_channel(*, url: str | None = None, source: Any = None, limit: int | None = None) -> SyncReport:
    """List the channel (or the given source object), register and queue what is new or unfinished."""
    from core.catalog import get_or_create_source, register_item

    settings = get_settings()
    url = url or settings.channel_url
    if source is None:
        from core.sources.youtube import YouTubeSource

        source = YouTubeSource(settings, channel_url=url)
    kind = getattr(source, "kind", "youtube")
    now = clock.now()
    try:
        infos: list[ItemInfo] = []
        for info in source.list_items():
            infos.append(info)
            if limit and len(infos) >= limit:
                break
    except SourceError as exc:
        cause = classify(exc)
        if cause in SOURCE_WIDE_CAUSES:
            # The listing is one more call to a source that is down: its breaker counts it too.
            with session_scope() as s:
                src = get_or_create_source(s, kind, "YouTube" if kind == "youtube" else kind, url)
                breaker.record_failure(s, src.id, cause, str(exc), retry_after_s=getattr(exc, "retry_after_s", None))
        # The caller says it once: the CLI as its `error:` line, the scheduler in its log.
        return SyncReport(None, 0, 0, 0, 0, 0, f"rate limited: {exc}" if isinstance(exc, RateLimited) else str(exc))
    feed = _feed_dates(source)

    with session_scope() as s:
        src = get_or_create_source(s, kind, "YouTube" if kind == "youtube" else kind, url)
        items_before = set(s.scalars(select(MediaItem.external_id).where(MediaItem.source_id == src.id)))
        dated = 0
        items: list[MediaItem] = []
        for info in infos:
            if info.published_at is None and info.external_id in feed:
                info = info._replace(published_at=feed[info.external_id])
                dated += 1
            items.append(register_item(s, src, info))
        estimates = estimate_dates([it.published_at for it in items], now=now)
        for rank, (item, est) in enumerate(zip(items, estimates)):
            item_extra.update(
                item,
                listing_rank=rank,
                listing_size=len(items),
                date_estimate=est if item.published_at is None else None,
            )
            if item.external_id not in items_before:
                item_extra.update(item, first_seen_at=now)
        s.flush()
        src.last_synced_at = now
        queued = queue.enqueue_source(s, src.id)
        unknown = sum(it.published_at is None for it in items)
        report = SyncReport(src.id, len(infos), sum(i.external_id not in items_before for i in infos), queued, dated, unknown)
    log.info("channel sync: %s", report)
    return report
