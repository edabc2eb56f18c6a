"""The transcript panel beside the player, and the transcript as a file (TXT, SRT, VTT).

The panel shows the lines of one item around the second a moment opens at (±2 minutes), each
with its time and speaker, and marks the line where the answer sentence starts (the link
opens LEAD_IN_S before it, core/search/moments.py). The downloads hold the whole transcript,
with speakers where the source named them (Zoom VTT, "Name:" labels): SRT as "Name: text"
(what core/transcribe/captions.py reads back as a speaker), VTT as a <v Name> voice tag.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.engine import PlayerItem, player_item
from core.search.moments import LEAD_IN_S
from core.search.records import format_timestamp

PANEL_BEFORE_S = 120.0
PANEL_AFTER_S = 120.0
_SPACES = re.compile(r"\s+")


class TranscriptLine(NamedTuple):
    start_s: float
    end_s: float
    text: str
    speaker: str | None = None

    @property
    def timestamp(self) -> str:
        return format_timestamp(self.start_s)


class ExportFormat(StrEnum):
    TXT = "txt"
    SRT = "srt"
    VTT = "vtt"

    @property
    def mime(self) -> str:
        return {"txt": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}[self.value]


def load_transcript(session: Session, item_id: int, *, include_hidden: bool = False) -> list[TranscriptLine] | None:
    """Every stored segment of an item in time order; None for an unknown item, or a hidden one
    unless the reader is an admin (hidden meetings never reach viewers, transcripts included)."""
    visible = session.execute(text("SELECT visible FROM media_items WHERE id = :id"), {"id": int(item_id)}).scalar()
    if visible is None or (not visible and not include_hidden):
        return None
    rows = session.execute(
        text("SELECT start_s, end_s, text, speaker FROM transcript_segments WHERE media_item_id = :id "
             "ORDER BY start_s, idx"),
        {"id": int(item_id)},
    ).all()
    return [TranscriptLine(float(a), float(b), _SPACES.sub(" ", t).strip(), (w or "").strip() or None)
            for a, b, t, w in rows if t and t.strip()]


class Panel(NamedTuple):
    """What the player beside the results shows: the item and its whole transcript."""

    item: PlayerItem
    lines: list[TranscriptLine]


def panel(session: Session, item_id: int, *, include_hidden: bool = False) -> Panel | None:
    """The player's item and transcript, read together (one snapshot on a replica: the item's
    visibility and its lines agree); None for an unknown item, or a hidden one unless admin."""
    item = player_item(session, item_id, include_hidden=include_hidden)
    if item is None:
        return None
    return Panel(item, load_transcript(session, item_id, include_hidden=include_hidden) or [])


def around(lines: Sequence[TranscriptLine], second: float, before: float = PANEL_BEFORE_S,
           after: float = PANEL_AFTER_S) -> list[TranscriptLine]:
    """The lines that overlap [second − before, second + after]."""
    lo, hi = second - before, second + after
    return [ln for ln in lines if ln.end_s > lo and ln.start_s < hi]


def answer_index(lines: Sequence[TranscriptLine], link_s: float) -> int | None:
    """The line where the answer sentence starts: a moment's link opens LEAD_IN_S (floored to the
    second) before it, so it is the first line still running a little after the link's second."""
    target = link_s + LEAD_IN_S + 0.5
    for i, ln in enumerate(lines):
        if ln.end_s > target or ln.start_s >= link_s:
            return i
    return None


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _clock(seconds: float, sep: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _times(line: TranscriptLine) -> tuple[float, float]:
    # A cue must end after it starts (some sources store zero-length segments).
    return line.start_s, max(line.end_s, line.start_s + 0.001)


def to_txt(lines: Sequence[TranscriptLine], title: str = "") -> str:
    head = f"{title}\n\n" if title else ""
    return head + "".join(f"[{ln.timestamp}] {ln.speaker + ': ' if ln.speaker else ''}{ln.text}\n" for ln in lines)


def _srt_text(value: str) -> str:
    # SRT has no escapes and players drop anything that looks like a tag: keep the words visible.
    return value.replace("<", "‹").replace(">", "›")


def to_srt(lines: Sequence[TranscriptLine]) -> str:
    cues = []
    for n, ln in enumerate(lines, 1):
        a, b = _times(ln)
        body = _srt_text(f"{ln.speaker}: {ln.text}" if ln.speaker else ln.text)
        cues.append(f"{n}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{body}\n")
    return "\n".join(cues)


def _vtt_text(value: str) -> str:
    # WebVTT cue text: & and < start entities and tags, and "-->" may not appear at all.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(lines: Sequence[TranscriptLine]) -> str:
    cues = ["WEBVTT\n"]
    for ln in lines:
        a, b = _times(ln)
        voice = f"<v {_vtt_text(ln.speaker)}>" if ln.speaker else ""
        cues.append(f"{_clock(a, '.')} --> {_clock(b, '.')}\n{voice}{_vtt_text(ln.text)}\n")
    return "\n".join(cues)


def export(lines: Sequence[TranscriptLine], fmt: ExportFormat, title: str = "") -> str:
    if fmt is ExportFormat.TXT:
        return to_txt(lines, title)
    return to_srt(lines) if fmt is ExportFormat.SRT else to_vtt(lines)


def file_name(title: str, fmt: ExportFormat) -> str:
    """A download name from the title: letters, digits and dashes only."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:80] or "transcript"
    return f"{slug}.{fmt.value}"
