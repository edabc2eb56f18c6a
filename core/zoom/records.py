"""Zoom's documented recording JSON → typed records, and the calendar helpers its API needs.

Pure: no network, no database. A recordings list entry, a `GET /meetings/{id}/recordings`
answer and a webhook's `object` all read through `parse_meeting`.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple
from urllib.parse import quote

from core.records import ItemInfo

# Video layouts to fall back to when there is no audio-only file, best for speech first.
MP4_PREFERENCE = (
    "shared_screen_with_speaker_view",
    "active_speaker",
    "speaker_view",
    "shared_screen_with_gallery_view",
    "gallery_view",
    "shared_screen",
)


class ZoomFile(NamedTuple):
    id: str
    file_type: str  # M4A | MP4 | TRANSCRIPT | CC | CHAT | TIMELINE | CSV | SUMMARY …
    recording_type: str  # audio_only | shared_screen_with_speaker_view | audio_transcript | closed_caption …
    download_url: str
    status: str  # completed | processing
    file_extension: str
    file_size: int | None = None
    play_url: str | None = None
    recording_start: datetime | None = None
    recording_end: datetime | None = None

    @property
    def ready(self) -> bool:
        return bool(self.download_url) and self.status.lower() in ("", "completed")


class ZoomMeeting(NamedTuple):
    uuid: str  # one occurrence of a meeting; our external_id
    meeting_id: str  # the (reusable) numeric meeting id
    topic: str
    start_time: datetime | None
    duration_s: float | None
    host_email: str | None
    host_id: str | None
    share_url: str | None
    files: tuple[ZoomFile, ...]


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_file(obj: Mapping[str, Any]) -> ZoomFile:
    size = obj.get("file_size")
    return ZoomFile(
        id=str(obj.get("id") or ""),
        file_type=str(obj.get("file_type") or "").upper(),
        recording_type=str(obj.get("recording_type") or "").lower(),
        download_url=str(obj.get("download_url") or ""),
        status=str(obj.get("status") or ""),
        file_extension=str(obj.get("file_extension") or obj.get("file_type") or "").upper(),
        file_size=int(size) if isinstance(size, (int, float)) else None,
        play_url=obj.get("play_url") or None,
        recording_start=parse_time(obj.get("recording_start")),
        recording_end=parse_time(obj.get("recording_end")),
    )


def parse_meeting(obj: Mapping[str, Any]) -> ZoomMeeting:
    """One meeting of a recordings list, a `GET /meetings/{id}/recordings` answer or a webhook's `object`."""
    uuid = obj.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise ValueError("a Zoom recording object without a uuid")
    files = tuple(parse_file(f) for f in obj.get("recording_files") or () if isinstance(f, Mapping))
    duration_s: float | None = None
    spans = [(f.recording_start, f.recording_end) for f in files if f.recording_start and f.recording_end]
    if spans:  # the recording's own length, to the second; `duration` is whole minutes of meeting
        duration_s = max(e for _, e in spans).timestamp() - min(s for s, _ in spans).timestamp()
    elif isinstance(obj.get("duration"), (int, float)):
        duration_s = float(obj["duration"]) * 60.0
    return ZoomMeeting(
        uuid=uuid,
        meeting_id=str(obj.get("id") or ""),
        topic=str(obj.get("topic") or "Zoom meeting"),
        start_time=parse_time(obj.get("start_time")),
        duration_s=duration_s,
        host_email=obj.get("host_email") or None,
        host_id=obj.get("host_id") or None,
        share_url=obj.get("share_url") or None,
        files=files,
    )


def meeting_to_json(meeting: ZoomMeeting) -> dict[str, Any]:
    """The fields we keep, in Zoom's own shape (so `parse_meeting` reads them back).

    Passwords and passcodes in Zoom's payload are deliberately not kept.
    """

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "uuid": meeting.uuid,
        "id": meeting.meeting_id,
        "topic": meeting.topic,
        "start_time": iso(meeting.start_time),
        "duration": round(meeting.duration_s / 60) if meeting.duration_s else None,
        "host_email": meeting.host_email,
        "host_id": meeting.host_id,
        "share_url": meeting.share_url,
        "recording_files": [
            {
                "id": f.id,
                "file_type": f.file_type,
                "recording_type": f.recording_type,
                "download_url": f.download_url,
                "status": f.status,
                "file_extension": f.file_extension,
                "file_size": f.file_size,
                "play_url": f.play_url,
                "recording_start": iso(f.recording_start),
                "recording_end": iso(f.recording_end),
            }
            for f in meeting.files
        ],
    }


def pick_audio_file(meeting: ZoomMeeting) -> ZoomFile | None:
    """The audio-only M4A (smallest, all we need), else the best MP4 layout, else None."""
    ready = [f for f in meeting.files if f.ready]
    for f in ready:
        if f.file_type == "M4A" or f.recording_type == "audio_only":
            return f
    mp4s = [f for f in ready if f.file_type == "MP4"]
    for layout in MP4_PREFERENCE:
        for f in mp4s:
            if f.recording_type == layout:
                return f
    return mp4s[0] if mp4s else None


def pick_transcript_file(meeting: ZoomMeeting) -> ZoomFile | None:
    """Zoom's audio transcript (VTT with speaker names), else the meeting's closed captions."""
    ready = [f for f in meeting.files if f.ready]
    for f in ready:
        if f.file_type == "TRANSCRIPT" or f.recording_type == "audio_transcript":
            return f
    for f in ready:
        if f.file_type == "CC" or f.recording_type == "closed_caption":
            return f
    return None


def meeting_info(meeting: ZoomMeeting) -> ItemInfo:
    return ItemInfo(
        external_id=meeting.uuid,
        title=meeting.topic,
        url=meeting.share_url or "",  # no public page: hits open in the app's own player
        published_at=meeting.start_time,
        duration_s=meeting.duration_s,
        host=meeting.host_email or meeting.host_id,
    )


def month_windows(start: date, end: date) -> Iterator[tuple[date, date]]:
    """Split [start, end] (inclusive days) at calendar months: Zoom allows one month per request."""
    if end < start:
        return
    cursor = start
    while cursor <= end:
        next_month = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1)
        window_end = min(end, next_month - timedelta(days=1))
        yield cursor, window_end
        cursor = window_end + timedelta(days=1)


def parse_month(value: str) -> date:
    """'YYYY-MM' → the first day of that month (the back-fill CLI's unit)."""
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"{value!r} is not a month like 2024-03") from None


def month_end(first_day: date) -> date:
    return (first_day.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def encode_meeting_uuid(uuid: str) -> str:
    """Path form of a meeting uuid. Zoom: a uuid starting with '/' or holding '//' is double-encoded."""
    once = quote(uuid, safe="")
    return quote(once, safe="") if uuid.startswith("/") or "//" in uuid else once


