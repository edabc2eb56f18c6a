"""Turns → names, and names → the item's timed segments.

Naming: each speaker (cluster) of a recording is compared with every enrolled profile by
cosine similarity of the cluster's centroid and the profile's vector; at MATCH_THRESHOLD or
above it takes the best profile's name (the threshold is measured by bench/speakers.py:
enrolled from one part of a speaker's audio, tested on another part among other speakers).
Every other speaker is "Guest 1", "Guest 2"… in order of first appearance in that item.

Segments: a segment whose transcript named its speaker (Zoom VTT, an inline "Name:" label)
keeps it. Every other segment takes the speaker whose turns overlap it most; a segment that
overlaps no turn (silence by the voice detector's ear) takes the nearest turn's speaker
within NEAREST_S, else stays unnamed. Whisper often runs one segment across a change of
voice when nobody pauses; such a segment is cut at the change (each side at least MIN_PIECE_S
long), its words shared by time, the way core/transcribe/captions.py shares a cue between the
speakers who say it: the link of each side then opens at that speaker's second.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from core.speakers.turns import Diarization, Turn

MATCH_THRESHOLD = 0.80  # cosine, centroid vs profile (bench/speakers.py)
NEAREST_S = 2.0
MIN_PIECE_S = 1.0
GUEST = "Guest {n}"
_GUEST_RE = re.compile(r"^Guest \d+$")


def is_guest_label(name: str) -> bool:
    """A per-item placeholder name ("Guest 2"): the same label means different people in two items."""
    return bool(_GUEST_RE.match(name.strip()))


class NamedProfile(NamedTuple):
    name: str
    vector: np.ndarray


class SpeakerName(NamedTuple):
    name: str
    similarity: float | None  # to the matched profile; None for a guest
    profile: str | None  # the matched profile's name


def name_speakers(
    diarization: Diarization, profiles: Sequence[NamedProfile], *, threshold: float = MATCH_THRESHOLD
) -> list[SpeakerName]:
    """A name for each speaker of the diarization (index = speaker number)."""
    names: list[SpeakerName] = []
    guests = 0
    mat = np.stack([p.vector for p in profiles]) if profiles else None
    for centroid in diarization.centroids:
        if mat is not None:
            sims = mat @ centroid
            best = int(np.argmax(sims))
            if float(sims[best]) >= threshold:
                names.append(SpeakerName(profiles[best].name, round(float(sims[best]), 3), profiles[best].name))
                continue
        guests += 1
        names.append(SpeakerName(GUEST.format(n=guests), None, None))
    return names


class SegmentSpan(NamedTuple):
    start: float
    end: float
    speaker: str | None  # as the transcript has it
    by: str | None  # who set it: None (the transcript), "voice", "admin"
    text: str = ""

    @property
    def transcript_named(self) -> bool:
        return bool(self.speaker) and self.by is None


def split_at_turns(segments: Sequence[SegmentSpan], turns: Sequence[Turn]) -> list[SegmentSpan]:
    """Segments cut where the voice changes inside them (transcript-named ones are kept whole)."""
    changes = [b.start for a, b in zip(turns, turns[1:]) if a.speaker != b.speaker]
    out: list[SegmentSpan] = []
    for seg in segments:
        cuts = [c for c in changes if seg.start + MIN_PIECE_S <= c <= seg.end - MIN_PIECE_S]
        words = seg.text.split()
        if seg.transcript_named or not cuts or len(words) < 2:
            out.append(seg)
            continue
        bounds = [seg.start, *cuts, seg.end]
        span = seg.end - seg.start
        taken = 0
        for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
            last = i == len(bounds) - 2
            n = len(words) - taken if last else max(1, round(len(words) * (b - seg.start) / span) - taken)
            piece = words[taken:taken + n]
            taken += len(piece)
            if piece:
                out.append(SegmentSpan(a, b, seg.speaker, seg.by, " ".join(piece)))
    return out


def segment_speakers(segments: Sequence[SegmentSpan], turns: Sequence[Turn], names: Sequence[str]) -> list[str | None]:
    """The speaker each segment gets: its transcript's own when it has one, else the voice's."""
    out: list[str | None] = []
    for seg in segments:
        if seg.transcript_named:
            out.append(seg.speaker)  # Zoom names and inline labels win over the voice
            continue
        out.append(_voice_speaker(seg.start, seg.end, turns, names))
    return out


def _voice_speaker(start: float, end: float, turns: Sequence[Turn], names: Sequence[str]) -> str | None:
    overlap: dict[int, float] = {}
    for t in turns:
        o = min(end, t.end) - max(start, t.start)
        if o > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
    if overlap:
        return names[max(overlap, key=lambda k: overlap[k])]
    near = [(min(abs(t.start - end), abs(start - t.end)), t.speaker) for t in turns]
    if near:
        gap, who = min(near)
        if gap <= NEAREST_S:
            return names[who]
    return None
