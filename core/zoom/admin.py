"""What the admin's Zoom page calls: connection check, meetings and their state, publishing,
the per-source default, and uploading a recording by hand.

Every change writes an audit row in the same transaction (core.audit.record); the caller's
session commits both together. Publishing changes who may see a meeting, so it also
invalidates cached search results.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import audit
from core.config import Settings, get_settings
from core.models import Job, MediaItem, Source
from core.zoom.client import ZoomClient
from core.zoom.meetings import enqueue_ingest, ingest_meeting, invalidate_search_cache, known_meeting, zoom_source
from core.zoom.records import pick_transcript_file

# ---------------------------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------------------------


def check_connection(settings: Settings | None = None) -> tuple[bool, str]:
    """(credentials work and recordings are readable?, a sentence for the admin). Never shows secrets."""
    settings = settings or get_settings()
    with ZoomClient.from_settings(settings) as client:
        ok, message = client.check()
    webhook = "set" if settings.zoom_webhook_secret else "NOT set (webhooks are refused)"
    return ok, f"{message} Webhook secret token: {webhook}."


def run_sync(actor: str, *, from_month: str | None = None, to_month: str | None = None,
             settings: Settings | None = None):
    """The admin's "sync now" / back-fill: list Zoom, register what is missing, audit the run.

    Talks to Zoom for a while, so it opens its own short transactions (not the caller's).
    """
    from core.db import session_scope
    from core.zoom.sync import backfill, sync_recent

    settings = settings or get_settings()
    if from_month:
        report = backfill(from_month, to_month or from_month, settings=settings)
    else:
        report = sync_recent(settings)
    with session_scope() as session:
        audit.record(session, actor, "zoom.sync", f"{from_month}..{to_month or from_month}" if from_month else "recent",
                     None, report._asdict())
    return report


# ---------------------------------------------------------------------------------------------
# Meetings
# ---------------------------------------------------------------------------------------------


class MeetingRow(NamedTuple):
    item_id: int
    uuid: str
    title: str
    started_at: datetime | None
    duration_s: float | None
    host: str | None
    status: str  # the item's pipeline status (queued, indexed, failed …)
    status_detail: str | None
    visible: bool  # published to viewers
    trashed: bool
    engine: str | None
    chunk_count: int
    has_zoom_transcript: bool
    job_status: str | None  # the newest job's status

    @property
    def state(self) -> str:
        """One word for the table: trashed, processing, failed, published or hidden."""
        if self.trashed:
            return "trashed"
        if self.status in ("queued", "fetching", "transcribing"):
            return "processing"
        if self.status in ("failed", "dead"):
            return "failed"
        return "published" if self.visible else "hidden"


def list_meetings(
    session: Session, *, visible: bool | None = None, search: str | None = None, limit: int = 100, offset: int = 0
) -> list[MeetingRow]:
    """Zoom meetings, newest first; `visible` filters published/hidden; `search` matches titles."""
    newest_job = (
        select(Job.status)
        .where(Job.media_item_id == MediaItem.id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = select(MediaItem, newest_job).join(Source).where(Source.kind == "zoom")
    if visible is not None:
        stmt = stmt.where(MediaItem.visible.is_(visible))
    if search and search.strip():
        stmt = stmt.where(MediaItem.title.ilike("%" + audit.escape_like(search.strip()) + "%", escape="\\"))
    stmt = stmt.order_by(MediaItem.published_at.desc().nulls_last(), MediaItem.id.desc())
    rows = []
    for item, job_status in session.execute(stmt.limit(max(1, limit)).offset(max(0, offset))):
        known = known_meeting(item.extra)
        rows.append(
            MeetingRow(
                item_id=item.id, uuid=item.external_id, title=item.title, started_at=item.published_at,
                duration_s=item.duration_s, host=item.host, status=item.status, status_detail=item.status_detail,
                visible=item.visible, trashed=item.skipped, engine=item.engine, chunk_count=item.chunk_count,
                has_zoom_transcript=bool(known.transcript_path or (known.meeting and pick_transcript_file(known.meeting))),
                job_status=job_status,
            )
        )
    return rows


def _zoom_item(session: Session, item_id: int) -> MediaItem:
    item = session.scalars(
        select(MediaItem).join(Source).where(MediaItem.id == item_id, Source.kind == "zoom").with_for_update()
    ).first()
    if item is None:
        raise LookupError(f"no Zoom meeting with item id {item_id}")
    return item


def _set_visible(session: Session, item_id: int, actor: str, visible: bool) -> bool:
    item = _zoom_item(session, item_id)
    if item.visible == visible:
        return False
    audit.record(session, actor, "zoom.publish" if visible else "zoom.unpublish", f"item {item.id}",
                 {"visible": item.visible}, {"visible": visible})
    item.visible = visible
    session.flush()
    invalidate_search_cache(session)
    return True


def publish(session: Session, item_id: int, actor: str) -> bool:
    """Show the meeting to viewers. False when it already was."""
    return _set_visible(session, item_id, actor, True)


def unpublish(session: Session, item_id: int, actor: str) -> bool:
    """Hide the meeting from everyone but the admin. False when it already was hidden."""
    return _set_visible(session, item_id, actor, False)


def restore(session: Session, item_id: int, actor: str) -> bool:
    """Bring back a meeting trashed in Zoom (still hidden) and queue it if it was never indexed."""
    item = _zoom_item(session, item_id)
    if not item.skipped:
        return False
    audit.record(session, actor, "zoom.restore", f"item {item.id}", {"trashed": True}, {"trashed": False})
    item.skipped = False
    item.status_detail = None
    item.status = "indexed" if item.chunk_count else "queued"
    if not item.chunk_count:
        enqueue_ingest(session, item.id)
    session.flush()
    return True


def get_source_default(session: Session, settings: Settings | None = None) -> bool:
    """Whether new Zoom meetings are published as they arrive (False unless the admin said so)."""
    value = session.scalars(select(Source.publish_by_default).where(Source.kind == "zoom").order_by(Source.id)).first()
    return bool(value)


def set_source_default(session: Session, publish: bool, actor: str, settings: Settings | None = None) -> None:
    """Publish (or hide) *new* meetings by default; meetings already there keep their state."""
    settings = settings or get_settings()
    zoom_source(session, settings)  # make sure there is one to carry the default
    before = get_source_default(session)
    session.execute(update(Source).where(Source.kind == "zoom").values(publish_by_default=publish))
    audit.record(session, actor, "zoom.default_publish", "zoom source", {"publish_by_default": before},
                 {"publish_by_default": publish})
    session.flush()


def count_meetings(session: Session) -> dict[str, int]:
    """How many meetings are published and hidden (for the page's header)."""
    rows = session.execute(
        select(MediaItem.visible, func.count()).join(Source).where(Source.kind == "zoom").group_by(MediaItem.visible)
    ).all()
    counts = {bool(v): n for v, n in rows}
    return {"published": counts.get(True, 0), "hidden": counts.get(False, 0)}


# ---------------------------------------------------------------------------------------------
# Upload by hand
# ---------------------------------------------------------------------------------------------


def upload_recording(
    session: Session,
    file_path: Path,
    title: str,
    actor: str,
    *,
    transcript_path: Path | None = None,
    started_at: datetime | None = None,
    settings: Settings | None = None,
) -> int:
    """A recording saved from Zoom by hand → a (hidden) meeting + its job, like a webhook would.

    The file is copied into the media folder (its SHA-256 names it, so uploading it twice
    finds the same meeting). A Zoom VTT transcript given beside it is used first (free,
    with speaker names). Returns the item id.
    """
    from core.sources.files import check_media_file, file_sha256, store_copy

    settings = settings or get_settings()
    if not title or not title.strip():
        raise ValueError("give the meeting a title")
    source_file = check_media_file(Path(file_path))
    sha = file_sha256(source_file)
    stored = store_copy(source_file, settings.media_dir / "zoom", sha)
    stored_vtt = None
    if transcript_path is not None:
        vtt = Path(transcript_path).expanduser()
        if not vtt.is_file() or vtt.suffix.lower() != ".vtt":
            raise ValueError(f"{vtt.name}: the transcript must be Zoom's .vtt file")
        stored_vtt = stored.with_suffix(".vtt")
        stored_vtt.write_bytes(vtt.read_bytes())
    started = started_at or datetime.fromtimestamp(source_file.stat().st_mtime, tz=timezone.utc)
    meeting = {"uuid": f"upload-{sha[:40]}", "topic": title.strip()[:500], "start_time": started.isoformat(),
               "recording_files": []}
    outcome = ingest_meeting(
        session, meeting, settings=settings, media_path=stored, transcript_path=stored_vtt,
    )
    audit.record(session, actor, "zoom.upload", f"item {outcome.item_id}", None,
                 {"title": title.strip(), "file": source_file.name, "transcript": bool(stored_vtt)})
    return outcome.item_id


# ---------------------------------------------------------------------------------------------
# Playback
# ---------------------------------------------------------------------------------------------


class Playback(NamedTuple):
    kind: str  # "file": the app's own player on `target` (a local path); "link": open `target` in Zoom
    target: str
    start_s: float


def playback_for(
    session: Session, item_id: int, start_s: float, *, is_admin: bool, settings: Settings | None = None
) -> Playback | None:
    """Where a hit in a meeting plays, or None when this viewer may not see the meeting at all."""
    settings = settings or get_settings()
    item = session.get(MediaItem, item_id)
    if item is None or (not item.visible and not is_admin):
        return None
    meeting = known_meeting(item.extra).meeting
    share = meeting.share_url if meeting else None
    if settings.zoom_share_links and share:
        return Playback("link", share, max(0.0, start_s))
    if item.media_path and Path(item.media_path).is_file():
        return Playback("file", item.media_path, max(0.0, start_s))
    if share:
        return Playback("link", share, max(0.0, start_s))
    return None
