"""Plain typed records that flow between the stages: source → transcript → chunks → vectors.

Each stage takes and returns these (never ORM rows), so stages can be tested and
swapped on their own, the way faster-whisper returns `Segment` named tuples.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Segment(NamedTuple):
    """One timed piece of speech."""

    start: float  # seconds from the start of the media
    end: float
    text: str
    speaker: str | None = None


class Transcript(NamedTuple):
    """What a transcription engine produced for one media item."""

    segments: list[Segment]
    engine: str  # "captions", "local", "openai", "zoom" …
    model: str | None = None  # e.g. "tiny.en", "whisper-1", "youtube:en (uploaded)"
    audio_seconds: float | None = None  # audio length the engine processed (for cost)


class ItemInfo(NamedTuple):
    """Metadata of one media item as a source describes it."""

    external_id: str
    title: str
    url: str
    description: str | None = None
    published_at: datetime | None = None  # None when the source did not say (flat listings)
    duration_s: float | None = None
    view_count: int | None = None
    host: str | None = None  # uploader / meeting host


class TimedChunk(NamedTuple):
    """A window of consecutive segments: the unit we embed and return as a hit."""

    index: int  # type: ignore[assignment]  # shadows tuple.index (mypy objects); read by this name everywhere
    start: float
    end: float
    text: str
    speakers: tuple[str, ...] = ()
