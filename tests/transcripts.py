"""Short cuts of the real transcripts in ../shared/data, for tests that need a real file's shape, not its hour.

Ingesting a whole hour embeds every chunk and sentence of it: tens of seconds a test on two cores. A
test that checks what an import does (speakers, links, dedup, a cancelled job) gets the same answer
from a few minutes of the same file, so it ingests a cut made here.
"""
from __future__ import annotations

import re
from pathlib import Path

_CUE_START = re.compile(r"^(\d+):(\d\d):(\d\d)[,.](\d{3}) -->", re.MULTILINE)


def srt_cues(src: Path, dest: Path, lo_s: float, hi_s: float) -> Path:
    """Copy the SubRip cues of `src` that start in [lo_s, hi_s) to `dest`, byte for byte.

    Unlike a parse-and-rewrite (tests/test_search_replicas._srt_slice), the cues keep their text as
    written, `Chaffee: …` speaker labels included, so the importer's own speaker rule runs on them.
    """
    blocks = [b for b in re.split(r"\n\s*\n", src.read_text(encoding="utf-8-sig").strip()) if b.strip()]
    kept = []
    for block in blocks:
        m = _CUE_START.search(block)
        if m is None:
            raise ValueError(f"{src.name}: a cue without a time line: {block[:60]!r}")
        h, mi, s, ms = map(int, m.groups())
        if lo_s <= h * 3600 + mi * 60 + s + ms / 1000 < hi_s:
            kept.append(block)
    if not kept:
        raise ValueError(f"{src.name} has no cue between {lo_s} s and {hi_s} s")
    dest.write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    return dest


def labelled_lines(path: Path, name: str) -> int:
    """How many payload lines of a SubRip file start with the speaker label `name: `."""
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.startswith(f"{name}: "))
