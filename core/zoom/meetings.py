"""A Zoom meeting in the archive: its item, its ingest job, and what we stored about it.

The webhook (core.zoom.events), the periodic sync (core.zoom.sync) and the admin's upload
(core.zoom.admin) all register meetings through `ingest_meeting`, so the three paths cannot
drift apart. The item row itself comes from the one catalog (core.catalog); what Zoom told
us lives in `media_items.extra["zoom"]`, written by `ingest_meeting` and read by `known_meeting`.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import catalog
from core.config import Settings, get_settings
from core.models import Job, MediaItem, Source
from core.zoom.records import (
    ZoomMeeting,
    meeting_info,
    meeting_to_json,
    parse_meeting,
    parse_time,
    pick_transcript_file,
)

log = logging.getLogger(__name__)

# Zoom documents download tokens as valid for 24 hours; stop trusting one a little before.
DOWNLOAD_TOKEN_TTL = timedelta(hours=23)


# ---------------------------------------------------------------------------------------------
# Meetings → items + jobs (the one path for webhooks, the sync and uploads)
# ---------------------------------------------------------------------------------------------


def zoom_source(session: Session, settings: Settings, account_id: str | None = None) -> Source:
    """The Zoom source row (created hidden-by-default on first use), keyed by the account id."""
    key = account_id or settings.zoom_account_id
    if key is None:
        existing = session.scalars(select(Source).where(Source.kind == "zoom").order_by(Source.id)).first()
        if existing is not None:
            return existing
        key = "zoom"
    return catalog.get_or_create_source(session, "zoom", "Zoom", key, publish_by_default=False)


def _merge_files(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Zoom's transcript_completed carries only the new file: keep the ones we already knew."""
    if not old:
        return dict(new)
    merged = {**old, **{k: v for k, v in new.items() if v is not None and k != "recording_files"}}
    files = {f.get("id") or f.get("download_url"): f for f in old.get("recording_files") or []}
    for f in new.get("recording_files") or []:
        files[f.get("id") or f.get("download_url")] = f
    merged["recording_files"] = list(files.values())
    return merged


def enqueue_ingest(
    session: Session, item_id: int, *, priority: float | None = None, run_after: datetime | None = None
) -> bool:
    """Queue one ingest job unless the item already has a live one. True when a job was added.

    `priority=None` lets the queue's scorer rank it like every other item.
    """
    from core.backfill import queue

    return queue.enqueue(session, item_id, kind="ingest", priority=priority, run_after=run_after) is not None


class IngestOutcome(NamedTuple):
    item_id: int
    created: bool
    enqueued: bool


def ingest_meeting(
    session: Session,
    meeting: ZoomMeeting | Mapping[str, Any],
    *,
    settings: Settings | None = None,
    account_id: str | None = None,
    download_token: str | None = None,
    priority: float | None = None,
    hold_for_transcript: bool = True,
    news_from_zoom: bool = True,
    media_path: Path | None = None,
    transcript_path: Path | None = None,
) -> IngestOutcome:
    """Insert or refresh the meeting's item and queue its ingest job (at most one live job).

    `news_from_zoom`: a webhook (or an upload) says something changed; the periodic sync,
    which sees the same meetings again and again, passes False so it never re-runs work.

    A new item is hidden unless the Zoom source's default says publish. Without Zoom's own
    transcript yet, the job waits `zoom_transcript_wait_s` for it (free) before a paid
    engine would be used; `recording.transcript_completed` releases it early.
    """
    settings = settings or get_settings()
    raw = meeting_to_json(meeting) if isinstance(meeting, ZoomMeeting) else dict(meeting)
    parsed = parse_meeting(raw)
    info = meeting_info(parsed)
    source = zoom_source(session, settings, account_id)
    now = datetime.now(timezone.utc)

    # Locked until the caller commits: two deliveries about one meeting merge `extra` in turn.
    item, created = catalog.register(session, source, info, media_path=media_path, lock=True)
    zoom = dict((item.extra or {}).get("zoom") or {})
    zoom["meeting"] = _merge_files(zoom.get("meeting"), meeting_to_json(parsed))
    if download_token:
        zoom["download_token"] = download_token
        zoom["download_token_at"] = now.isoformat()
    if transcript_path is not None:
        zoom["transcript_path"] = str(transcript_path)
    item.extra = {**(item.extra or {}), "zoom": zoom}  # a new dict: JSONB changes are seen on flush

    has_transcript = pick_transcript_file(parse_meeting(zoom["meeting"])) is not None or transcript_path is not None
    enqueued = False
    if item.skipped or item.status in ("skipped", "dead"):
        pass  # trashed in Zoom or given up on: only the admin brings it back
    elif item.status == "failed" and not news_from_zoom:
        pass  # the periodic sync must not retry a broken meeting every few minutes; news from Zoom may
    elif item.status in ("indexed", "review"):
        # Already searchable. Re-run only when Zoom announces its own transcript (free, with
        # speakers) for a meeting a transcription engine indexed; a sync listing is no news.
        if news_from_zoom and has_transcript and item.engine not in (None, "captions"):
            enqueued = enqueue_ingest(session, item.id, priority=priority)
    else:
        run_after = None
        if hold_for_transcript and not has_transcript and media_path is None and settings.zoom_transcript_wait_s > 0:
            ended = (parsed.start_time + timedelta(seconds=parsed.duration_s or 0)) if parsed.start_time else now
            run_after = max(now, min(now, ended) + timedelta(seconds=settings.zoom_transcript_wait_s))
        enqueued = enqueue_ingest(session, item.id, priority=priority, run_after=run_after)
        if enqueued:
            item.status, item.status_detail = "queued", None
        elif has_transcript:
            # The transcript arrived while the job was waiting for it: let the job run now.
            session.execute(
                update(Job)
                .where(Job.media_item_id == item.id, Job.kind == "ingest", Job.status == "queued", Job.run_after > now)
                .values(run_after=now)
            )
    session.flush()
    return IngestOutcome(item.id, created, enqueued)


def find_meeting(session: Session, uuid: str) -> MediaItem | None:
    return session.scalars(
        select(MediaItem).join(Source).where(Source.kind == "zoom", MediaItem.external_id == uuid)
    ).first()


def trash_meeting(session: Session, item: MediaItem, *, actor: str) -> None:
    """Hidden from everyone but the admin and never processed, until restored by hand."""
    from core import audit
    from core.backfill import queue

    before = {"visible": item.visible, "status": item.status}
    item.visible, item.skipped, item.status, item.status_detail = False, True, "skipped", "trashed in Zoom"
    queue.cancel_live(session, item.id)
    audit.record(session, actor, "zoom.trash", f"item {item.id}", before, {"visible": False, "status": "skipped"})


def media_files_of(item: MediaItem, settings: Settings) -> list[Path]:
    """Files we stored for the item, only inside our media folder (never a user's own file)."""
    root = settings.media_dir.resolve()
    candidates = [Path(item.media_path)] if item.media_path else []
    transcript = ((item.extra or {}).get("zoom") or {}).get("transcript_path")
    if transcript:
        candidates.append(Path(transcript))
    candidates.append(settings.media_dir / str(item.id))  # the pipeline's per-item download folder
    owned = []
    for path in candidates:
        try:
            resolved = path.resolve()
        except OSError:
            continue
        if resolved != root and resolved.is_relative_to(root):
            owned.append(resolved)
    return owned


def delete_meeting(session: Session, item: MediaItem, settings: Settings, *, actor: str) -> list[Path]:
    """Delete the item (its segments, chunks and jobs go with it); returns files to remove after commit."""
    from sqlalchemy import delete

    from core import audit

    files = media_files_of(item, settings)
    audit.record(session, actor, "zoom.delete", f"item {item.id}", {"title": item.title, "visible": item.visible}, None)
    session.execute(delete(MediaItem).where(MediaItem.id == item.id))  # ON DELETE CASCADE does the rest
    session.expunge(item)
    return files


def remove_files(paths: list[Path]) -> None:
    for path in paths:
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove %s", path, exc_info=True)


def invalidate_search_cache(session: Session | None = None) -> None:
    """Cached results may hold a meeting whose visibility just changed (with a session: same transaction)."""
    from core.search import cache

    cache.invalidate(session)


# ---------------------------------------------------------------------------------------------
# What we stored (read side)
# ---------------------------------------------------------------------------------------------


class KnownMeeting(NamedTuple):
    """What we stored about a meeting when a webhook, the sync or an upload registered it."""

    meeting: ZoomMeeting | None
    download_token: str | None  # still fresh, else None
    transcript_path: Path | None  # an uploaded VTT
    media_path: Path | None = None  # the recording already on our disk (upload or earlier download)


def known_meeting(
    extra: Mapping[str, Any] | None, *, media_path: str | None = None, now: datetime | None = None
) -> KnownMeeting:
    """Read `media_items.extra["zoom"]` (written by `ingest_meeting` above)."""
    zoom = (extra or {}).get("zoom") or {}
    meeting = None
    if isinstance(zoom.get("meeting"), Mapping):
        try:
            meeting = parse_meeting(zoom["meeting"])
        except ValueError:
            meeting = None
    token = zoom.get("download_token") or None
    received = parse_time(zoom.get("download_token_at"))
    now = now or datetime.now(timezone.utc)
    if token and (received is None or now - received > DOWNLOAD_TOKEN_TTL):
        token = None
    transcript = Path(zoom["transcript_path"]) if zoom.get("transcript_path") else None
    return KnownMeeting(meeting, token, transcript, Path(media_path) if media_path else None)
