"""Timed segments → overlapping timed windows (the unit we embed and return as a hit).

A window collects whole segments until it spans `target_s` seconds (never more than
`max_s` unless one segment alone is longer), then the next window starts `overlap_s`
seconds before the previous one ended, again at a segment boundary, so a sentence
cut at a window edge is whole in the neighbouring window.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from core.records import Segment, TimedChunk


def chunk_segments(
    segments: Iterable[Segment], *, target_s: float = 45.0, max_s: float = 60.0, overlap_s: float = 10.0
) -> Iterator[TimedChunk]:
    if not 0 <= overlap_s < target_s <= max_s:
        raise ValueError("need 0 <= overlap_s < target_s <= max_s")
    segs = [s for s in segments if s.text.strip()]
    start_i, index = 0, 0
    while start_i < len(segs):
        end_i = start_i  # inclusive
        while end_i + 1 < len(segs):
            span = segs[end_i].end - segs[start_i].start
            if span >= target_s or segs[end_i + 1].end - segs[start_i].start > max_s:
                break
            end_i += 1
        window = segs[start_i : end_i + 1]
        speakers = tuple(dict.fromkeys(s.speaker for s in window if s.speaker))
        yield TimedChunk(
            index=index,
            start=window[0].start,
            end=window[-1].end,
            text=" ".join(s.text.strip() for s in window),
            speakers=speakers,
        )
        index += 1
        if end_i + 1 >= len(segs):
            break
        # Next window: the first segment that starts within the overlap, but always move on.
        next_i = end_i + 1
        while next_i - 1 > start_i and segs[next_i - 1].start >= window[-1].end - overlap_s:
            next_i -= 1
        start_i = next_i
