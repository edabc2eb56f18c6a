"""Zoom webhook events → meetings in the archive (hidden until the admin publishes them).

Everything here is quick database work, so the receiver (core/webhooks.py) answers inside
Zoom's 3-second window: a meeting becomes a `media_items` row plus a queued job, and the
worker does the downloading and transcribing later.

Signatures follow Zoom's documentation: `x-zm-signature` is `v0=` + hex HMAC-SHA256 of
`v0:{x-zm-request-timestamp}:{raw body}` keyed with the app's secret token; the URL check
(`endpoint.url_validation`) is answered with the HMAC of its `plainToken`.

The webhook, the periodic sync and the admin's upload all register meetings through
`ingest_meeting`, so the three paths cannot drift apart.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.models import Job, MediaItem, Source, WebhookEvent
from core.sources.zoom import ZoomMeeting, meeting_info, meeting_to_json, parse_meeting, pick_transcript_file

log = logging.getLogger(__name__)

SIGNATURE_VERSION = "v0"
MAX_CLOCK_SKEW_S = 300  # Zoom: refuse requests whose timestamp is more than 5 minutes off
URL_VALIDATION = "endpoint.url_validation"
COMPLETED = "recording.completed"
TRANSCRIPT_COMPLETED = "recording.transcript_completed"
TRASHED = "recording.trashed"
DELETED = "recording.deleted"
HANDLED_EVENTS = frozenset({COMPLETED, TRANSCRIPT_COMPLETED, TRASHED, DELETED})
# Keys whose values are credentials: kept out of the stored event log.
_SECRET_KEYS = frozenset({"download_token", "password", "recording_play_passcode", "plainToken", "encryptedToken"})
WEBHOOK_ACTOR = "zoom-webhook"


# ---------------------------------------------------------------------------------------------
# Verification (pure)
# ---------------------------------------------------------------------------------------------


class WebhookRejected(Exception):
    """A delivery we refuse; `status` is the HTTP answer."""

    status = 400

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadSignature(WebhookRejected):
    status = 401


class BadEvent(WebhookRejected):
    status = 400


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `x-zm-signature` value Zoom sends for this body and timestamp."""
    message = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def _timestamp_seconds(value: str) -> float:
    number = float(value)
    return number / 1000.0 if number > 1e11 else number  # tolerate milliseconds


def verify_request(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> None:
    """Raise BadSignature unless the raw body is signed with `secret` and recent (either way)."""
    signature = headers.get("x-zm-signature")
    timestamp = headers.get("x-zm-request-timestamp")
    if not signature or not timestamp:
        raise BadSignature("missing x-zm-signature or x-zm-request-timestamp")
    try:
        sent_at = _timestamp_seconds(timestamp)
    except ValueError:
        raise BadSignature("bad x-zm-request-timestamp") from None
    # Checked before the HMAC, but the HMAC covers the timestamp: an old signed body cannot be
    # replayed with a fresh timestamp.
    if abs((time.time() if now is None else now) - sent_at) > max_skew_s:
        raise BadSignature("timestamp more than 5 minutes off")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignature("signature does not match")


def url_validation_response(secret: str, plain_token: str) -> dict[str, str]:
    """Zoom's endpoint check: echo the plain token with its hex HMAC-SHA256 under the secret."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


# ---------------------------------------------------------------------------------------------
# Parsing (pure)
# ---------------------------------------------------------------------------------------------


class ZoomEvent(NamedTuple):
    event_id: str  # stable across Zoom's re-deliveries of the same notification
    event: str
    event_ts: int | None
    account_id: str | None
    object: dict[str, Any]
    download_token: str | None
    payload: dict[str, Any]  # the whole body, for the event log (credentials redacted on store)


def parse_event(body: bytes) -> ZoomEvent:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str) or not data["event"]:
        raise BadEvent("no event name")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise BadEvent("no payload object")
    event = data["event"]
    obj = payload.get("object") if isinstance(payload.get("object"), dict) else {}
    if event == URL_VALIDATION:
        if not isinstance(payload.get("plainToken"), str) or not payload["plainToken"]:
            raise BadEvent("url_validation without plainToken")
    elif event in HANDLED_EVENTS and (not isinstance(obj.get("uuid"), str) or not obj["uuid"]):
        raise BadEvent(f"{event} without a meeting uuid")
    ts = data.get("event_ts")
    event_ts = int(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
    # Zoom re-sends the same body when we were slow; its event_ts and meeting uuid identify it.
    if event_ts is not None:
        event_id = f"zoom:{event}:{obj.get('uuid') or obj.get('id') or '-'}:{event_ts}"
    else:
        event_id = "zoom:sha256:" + hashlib.sha256(body).hexdigest()
    token = data.get("download_token") or payload.get("download_token")
    return ZoomEvent(
        event_id=event_id[:200],
        event=event,
        event_ts=event_ts,
        account_id=payload.get("account_id") if isinstance(payload.get("account_id"), str) else None,
        object=obj,
        download_token=token if isinstance(token, str) and token else None,
        payload=data,
    )


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("[redacted]" if k in _SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


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
    session.execute(
        pg_insert(Source)
        .values(kind="zoom", name="Zoom", url=key, publish_by_default=False)
        .on_conflict_do_nothing(index_elements=["kind", "url"])
    )
    return session.scalars(select(Source).where(Source.kind == "zoom", Source.url == key)).one()


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

    inserted = session.execute(
        pg_insert(MediaItem)
        .values(
            source_id=source.id, external_id=info.external_id, title=info.title, url=info.url,
            visible=source.publish_by_default, status="queued",
        )
        .on_conflict_do_nothing(index_elements=["source_id", "external_id"])
        .returning(MediaItem.id)
    ).scalar()
    item = session.scalars(
        select(MediaItem)
        .where(MediaItem.source_id == source.id, MediaItem.external_id == info.external_id)
        .with_for_update()
    ).one()
    session.refresh(item)
    created = inserted is not None

    # Refresh what Zoom told us, never erasing a known value with an unknown one.
    item.title = info.title or item.title
    if info.url:
        item.url = info.url
    for field in ("published_at", "duration_s", "host"):
        value = getattr(info, field)
        if value is not None:
            setattr(item, field, value)
    if media_path is not None:
        item.media_path = str(media_path)
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


def trash_meeting(session: Session, item: MediaItem, *, actor: str = WEBHOOK_ACTOR) -> None:
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


def delete_meeting(session: Session, item: MediaItem, settings: Settings, *, actor: str = WEBHOOK_ACTOR) -> list[Path]:
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
    try:
        from core.search import cache
    except ImportError:
        return
    cache.invalidate(session)


# ---------------------------------------------------------------------------------------------
# One delivery
# ---------------------------------------------------------------------------------------------


class EventOutcome(NamedTuple):
    status: str  # accepted | duplicate | ignored
    item_id: int | None = None
    files_to_remove: tuple[Path, ...] = ()


def handle_event(session: Session, event: ZoomEvent, settings: Settings) -> EventOutcome:
    """Record the event once, then apply it. A re-delivery finds its id and changes nothing."""
    first = session.execute(
        pg_insert(WebhookEvent)
        .values(event_id=event.event_id, source="zoom", event=event.event[:64], payload=redact(event.payload))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(WebhookEvent.event_id)
    ).scalar()
    if first is None:
        return EventOutcome("duplicate")
    if event.event not in HANDLED_EVENTS:
        return EventOutcome("ignored")
    uuid = event.object["uuid"]
    if event.event in (COMPLETED, TRANSCRIPT_COMPLETED):
        outcome = ingest_meeting(
            session, event.object, settings=settings, account_id=event.account_id,
            download_token=event.download_token,
        )
        return EventOutcome("accepted", outcome.item_id)
    item = find_meeting(session, uuid)
    if item is None:
        return EventOutcome("ignored")
    if event.event == TRASHED:
        trash_meeting(session, item)
        return EventOutcome("accepted", item.id)
    item_id = item.id
    files = delete_meeting(session, item, settings)
    return EventOutcome("accepted", item_id, tuple(files))


def process_delivery(event: ZoomEvent, settings: Settings | None = None) -> EventOutcome:
    """Apply one verified event in its own transaction; files go only after the commit."""
    from core.db import session_scope

    settings = settings or get_settings()
    with session_scope() as session:
        outcome = handle_event(session, event, settings)
    if outcome.files_to_remove:
        remove_files(list(outcome.files_to_remove))
    if outcome.status == "accepted" and event.event in (TRASHED, DELETED):
        invalidate_search_cache()
    return outcome
