"""`ZoomSource`: Zoom recordings behind the one MediaSource protocol the pipeline talks to.

It finds a meeting's files in what the webhook or the sync stored on the item
(`media_items.extra["zoom"]`, read by `core.zoom.meetings.known_meeting`), else asks the API.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.config import Settings, get_settings
from core.records import ItemInfo, Transcript
from core.sources.base import SourceError, Unavailable
from core.zoom.client import ZoomClient
from core.zoom.meetings import KnownMeeting, known_meeting
from core.zoom.records import meeting_info, pick_audio_file, pick_transcript_file

log = logging.getLogger(__name__)


def _safe_name(uuid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in uuid)[:80] or "meeting"


def parse_vtt(data: bytes | str) -> list:
    """Zoom's VTT → segments with speakers (the shared captions parser does the work)."""
    from core.transcribe.captions import parse_captions

    try:
        return parse_captions(data, "vtt")
    except ValueError:  # not a VTT after all: no free transcript, a transcription engine is asked
        log.warning("Zoom's transcript file is not WebVTT; ignoring it")
        return []


class ZoomSource:
    """Zoom recordings behind the one MediaSource protocol."""

    kind = "zoom"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: ZoomClient | None = None,
        lookup: Callable[[str], KnownMeeting] | None = None,
        window_days: int | None = None,
    ):
        self.settings = settings or get_settings()
        self._client = client
        self._lookup = lookup or self._lookup_in_db
        self.window_days = window_days or self.settings.zoom_sync_days

    @property
    def client(self) -> ZoomClient:
        if self._client is None:
            self._client = ZoomClient.from_settings(self.settings)
        return self._client

    # -- where a meeting's files are -----------------------------------------------------------

    @staticmethod
    def _lookup_in_db(uuid: str) -> KnownMeeting:
        from sqlalchemy import select

        from core.db import session_scope
        from core.models import MediaItem, Source

        with session_scope() as session:
            row = session.execute(
                select(MediaItem.extra, MediaItem.media_path)
                .join(Source)
                .where(Source.kind == "zoom", MediaItem.external_id == uuid)
            ).first()
        return known_meeting(row[0], media_path=row[1]) if row else known_meeting(None)

    def _meeting(self, uuid: str) -> KnownMeeting:
        known = self._lookup(uuid)
        if known.meeting is not None and known.meeting.files:
            return known
        if not self.client.configured:
            return known
        return known._replace(meeting=self.client.get_meeting(uuid))

    # -- MediaSource -----------------------------------------------------------------------------

    def list_items(self) -> Iterator[ItemInfo]:
        today = datetime.now(timezone.utc).date()
        for meeting in self.client.list_recordings(today - timedelta(days=self.window_days), today):
            if pick_audio_file(meeting) or pick_transcript_file(meeting):
                yield meeting_info(meeting)

    def fetch_metadata(self, external_id: str) -> ItemInfo:
        known = self._meeting(external_id)
        if known.meeting is None:
            raise Unavailable(f"no Zoom recording {external_id}", external_id=external_id)
        return meeting_info(known.meeting)

    def fetch_captions(self, external_id: str) -> Transcript | None:
        """Zoom's own transcript (free, with speaker names), or None so a paid engine is asked."""
        known = self._meeting(external_id)
        if known.transcript_path is not None and known.transcript_path.is_file():
            segments, model = parse_vtt(known.transcript_path.read_bytes()), "zoom:uploaded-vtt"
        else:
            file = pick_transcript_file(known.meeting) if known.meeting else None
            if file is None:
                return None
            data = self.client.download_bytes(file.download_url, download_token=known.download_token)
            segments, model = parse_vtt(data), f"zoom:{file.recording_type or file.file_type.lower()}"
        if not segments:
            return None
        self._keep_recording_for_playback(external_id, known)
        return Transcript(segments=segments, engine="captions", model=model,
                          audio_seconds=max(s.end for s in segments))

    def _keep_recording_for_playback(self, external_id: str, known: KnownMeeting) -> None:
        """With Zoom's transcript the pipeline never asks for the audio, yet the app's player
        plays meeting hits from our copy: fetch it now, unless hits open in Zoom instead."""
        if known.media_path is not None and known.media_path.is_file():
            return
        if self.settings.zoom_share_links and known.meeting is not None and known.meeting.share_url:
            return
        try:
            self.fetch_audio(external_id, self.settings.media_dir / "zoom")
        except SourceError as exc:  # the transcript is still good; playback falls back to the share link
            log.warning("could not keep the Zoom recording for playback: %s", exc)

    def fetch_audio(self, external_id: str, dest_dir: Path) -> Path:
        """The audio-only M4A, else an MP4; kept (not deleted) because the player serves it."""
        known = self._meeting(external_id)
        file = pick_audio_file(known.meeting) if known.meeting else None
        if file is None:
            raise Unavailable(f"Zoom has no audio or video file for {external_id}", external_id=external_id)
        suffix = "m4a" if file.file_type == "M4A" else (file.file_extension or "mp4").lower()
        dest = dest_dir / f"{_safe_name(external_id)}.{suffix}"
        path = self.client.download(file.download_url, dest, download_token=known.download_token)
        _remember_media_path(external_id, path)
        return path


def _remember_media_path(uuid: str, path: Path) -> None:
    """Point the item at its downloaded file: the player serves it, deletion removes it."""
    from sqlalchemy import select, update

    from core.db import session_scope
    from core.models import MediaItem, Source

    try:
        with session_scope() as session:
            zoom_sources = select(Source.id).where(Source.kind == "zoom").scalar_subquery()
            session.execute(
                update(MediaItem)
                .where(MediaItem.source_id.in_(zoom_sources), MediaItem.external_id == uuid)
                .values(media_path=str(path))
            )
    except Exception:  # the file is downloaded either way; playback can fall back to the share link
        log.warning("could not record the downloaded file of a Zoom meeting", exc_info=True)
