"""A transcript file a person brings (SRT, WebVTT, YouTube json3) → an indexed item, no transcription.

Used by `python -m core ingest FILE.srt` and Admin → Library's upload. The file is checked
strictly first (core.transcribe.captions.read_transcript_file): a bad file stores nothing.

Which item it becomes:
* a YouTube video, when `video` (a URL or id) is given or the file name carries an id
  (`<id>.srt`, `Title [<id>].en.vtt`): the item is that video, so links and the player are
  YouTube's, and the channel's own listing of it is the same item (never a duplicate);
* otherwise an upload identified by the file's SHA-256, as audio files are.

The transcript's engine is "imported". Importing replaces the item's segments and chunks in
one transaction (core.pipeline.index_transcript), and so does any later caption or whisper
run of the same item. Jobs still queued for the item are cancelled: its transcript is here,
and a queued paid run would be a second bill.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import select

from core.backfill import queue
from core.catalog import get_or_create_source, register_item
from core.config import get_settings
from core.db import session_scope
from core.models import MediaItem, Source
from core.pipeline import Heartbeat, index_transcript, indexed_item
from core.records import ItemInfo, Transcript
from core.sources.base import BadInput
from core.sources.files import VIDEO_ID, file_sha256, youtube_id_in_name
from core.transcribe.captions import read_transcript_file

ENGINE = "imported"


class ImportResult(NamedTuple):
    item_id: int
    title: str
    status: str  # "indexed" | "review"; for `already`, the status it had
    chunk_count: int
    video_id: str | None  # the YouTube video it belongs to, if any
    already: bool = False  # nothing done: the item was already indexed (and force was off)
    detail: str | None = None


def _video_id(video: str | None, path: Path) -> str | None:
    if not video:
        return youtube_id_in_name(path)
    from core.sources.youtube import parse_video_url

    video = video.strip()
    if VIDEO_ID.fullmatch(video):
        return video  # a bare id, as printed in YouTube Studio
    return parse_video_url(video)  # a URL, or BadInput naming the accepted forms


def import_transcript(
    path: str | Path,
    *,
    video: str | None = None,
    title: str | None = None,
    published_at: datetime | None = None,
    force: bool = False,
    name: str | None = None,
    heartbeat: Heartbeat | None = None,
) -> ImportResult:
    """Index the transcript at `path` (`name`: the file name to show and to read an id from).

    Raises core.transcribe.captions.TranscriptFileError or core.sources.base.BadInput with a
    one-sentence message; nothing is stored then.
    """
    path = Path(path)
    shown = Path(name) if name else path
    if not path.is_file():
        raise BadInput(f"no such file: {path}")
    segments, fmt = read_transcript_file(path) if not name else _read_as(path, shown.name)
    video_id = _video_id(video, shown)
    settings = get_settings()
    if video_id:
        kind, external_id = "youtube", video_id
        url = f"https://www.youtube.com/watch?v={video_id}"
    else:
        # No media and no page to link to: an empty url makes links point at the app itself.
        kind, external_id, url = "upload", file_sha256(path), ""

    with session_scope() as session:
        done = indexed_item(session, kind, external_id)
        if done is not None and not force:
            return ImportResult(done.id, done.title, done.status, done.chunk_count or 0, video_id, already=True)
        item = done or _known_video(session, video_id)
        if item is None:
            src = (get_or_create_source(session, "youtube", "YouTube", settings.channel_url) if video_id
                   else get_or_create_source(session, "upload", "Uploads", None))
            default_title = f"YouTube video {video_id}" if video_id else shown.stem.replace("_", " ")
            item = register_item(session, src, ItemInfo(
                external_id=external_id, title=title or default_title, url=url, published_at=published_at,
                duration_s=float(segments[-1].end),
            ))
        else:
            item.title = title or item.title
            item.published_at = published_at or item.published_at
        queue.cancel_live(session, item.id)
        item_id, item_title = item.id, item.title
    transcript = Transcript(segments, engine=ENGINE, model=f"{fmt} file", audio_seconds=float(segments[-1].end))
    indexed = index_transcript(item_id, transcript, f"transcript imported from {shown.name} ({fmt})",
                               heartbeat=heartbeat)
    return ImportResult(item_id, item_title, indexed.status, indexed.chunk_count, video_id,
                        detail="; ".join(indexed.review_reasons) or None)


def _known_video(session, video_id: str | None) -> MediaItem | None:
    """The item a channel sync (or an earlier ingest) made for this video, under any YouTube source."""
    if not video_id:
        return None
    return session.scalars(
        select(MediaItem).join(Source, Source.id == MediaItem.source_id)
        .where(Source.kind == "youtube", MediaItem.external_id == video_id).order_by(MediaItem.id)
    ).first()


def _read_as(path: Path, name: str):
    """Read an upload saved under another name (the browser's file name decides the format)."""
    from core.transcribe.captions import TranscriptFileError

    try:
        return read_transcript_file(path)
    except TranscriptFileError as exc:
        raise TranscriptFileError(str(exc).replace(path.name, name)) from None
