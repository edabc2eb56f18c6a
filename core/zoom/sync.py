"""Periodic Zoom sync: catch the meetings webhooks missed, and back-fill past months on demand.

Both go through `core.zoom.meetings.ingest_meeting`, the same path as a webhook, so a meeting
found here and announced by Zoom later is one item with one live job. The scheduler calls
`sync_recent()`; the CLI's `zoom-sync --from YYYY-MM --to YYYY-MM` calls `backfill()`.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple

from sqlalchemy import update

from core.config import Settings, get_settings
from core.models import Source
from core.sources.base import RateLimited
from core.zoom.client import ZoomClient
from core.zoom.meetings import ingest_meeting, zoom_source
from core.zoom.records import month_end, parse_month, pick_audio_file, pick_transcript_file

log = logging.getLogger(__name__)


class SyncReport(NamedTuple):
    listed: int  # meetings Zoom returned
    new: int  # items created
    enqueued: int  # jobs queued
    skipped: int  # nothing usable yet (files still processing, chat only …)
    stopped_early: str | None = None  # why the listing stopped (rate limit, quota), else None


def sync_range(
    start: date, end: date, *, settings: Settings | None = None, client: ZoomClient | None = None,
    priority: float | None = None,
) -> SyncReport:
    """Register every recorded meeting that started between the two days (inclusive)."""
    from core.db import session_scope

    settings = settings or get_settings()
    own_client = client is None
    client = client or ZoomClient.from_settings(settings)
    listed = new = enqueued = skipped = 0
    stopped: str | None = None
    try:
        for meeting in client.list_recordings(start, end):
            listed += 1
            if pick_audio_file(meeting) is None and pick_transcript_file(meeting) is None:
                skipped += 1
                continue
            # One short transaction per meeting: a failure later keeps what was registered.
            with session_scope() as session:
                outcome = ingest_meeting(
                    session, meeting, settings=settings, priority=priority, news_from_zoom=False,
                )
            new += outcome.created
            enqueued += outcome.enqueued
    except RateLimited as exc:  # quota or a long Retry-After: the next run goes on from here
        stopped = str(exc)
        log.warning("Zoom sync stopped early: %s", exc)
    finally:
        if own_client:
            client.close()
    with session_scope() as session:
        source = zoom_source(session, settings)
        session.execute(update(Source).where(Source.id == source.id).values(last_synced_at=datetime.now(timezone.utc)))
    return SyncReport(listed, new, enqueued, skipped, stopped)


def sync_recent(settings: Settings | None = None, *, days: int | None = None, client: ZoomClient | None = None) -> SyncReport:
    """The scheduler's job: the last `zoom_sync_days` days (a no-op when Zoom is not connected)."""
    settings = settings or get_settings()
    if not (settings.zoom_account_id and settings.zoom_client_id and settings.zoom_client_secret):
        return SyncReport(0, 0, 0, 0, "Zoom is not connected")
    today = datetime.now(timezone.utc).date()
    return sync_range(today - timedelta(days=days or settings.zoom_sync_days), today, settings=settings, client=client)


def backfill(from_month: str, to_month: str, *, settings: Settings | None = None, client: ZoomClient | None = None) -> SyncReport:
    """Register the meetings of whole past months, 'YYYY-MM' to 'YYYY-MM' (one request per month page)."""
    start, last = parse_month(from_month), parse_month(to_month)
    if last < start:
        raise ValueError("--to is before --from")
    end = min(month_end(last), datetime.now(timezone.utc).date())
    return sync_range(start, end, settings=settings, client=client)
