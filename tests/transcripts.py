"""Short cuts of the real transcripts in ../shared/data, for tests that need a real file's shape, not its hour.

Ingesting a whole hour embeds every chunk and sentence of it: tens of seconds a test on two cores. A
test that checks what an import does (speakers, links, dedup, a cancelled job) gets the same answer
from a few minutes of the same file, so it ingests a cut made here.
"""
from __future__ import annotations

import re
from pathlib import Path

_TIMES = re.compile(r"^(\d+):(\d\d):(\d\d)[,.](\d{3}) --> (\d+):(\d\d):(\d\d)[,.](\d{3})", re.MULTILINE)


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _stamp(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def srt_cues(src: Path, dest: Path, lo_s: float, hi_s: float) -> Path:
    """Copy the SubRip cues of `src` that start in [lo_s, hi_s) to `dest` as a clip that starts at 0 s.

    The cue text is kept as written, `Chaffee: …` speaker labels included, so the importer's own speaker
    rule runs on it (tests/test_search_replicas._srt_slice parses and rewrites the text instead). Times
    move back by `lo_s`: the import's quality gate reads words a minute over the file's span, and a cut
    that kept its place in the hour would look like a talk with most of its speech missing.
    """
    blocks = [b for b in re.split(r"\n\s*\n", src.read_text(encoding="utf-8-sig").strip()) if b.strip()]
    kept = []
    for block in blocks:
        m = _TIMES.search(block)
        if m is None:
            raise ValueError(f"{src.name}: a cue without a time line: {block[:60]!r}")
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        if lo_s <= start < hi_s:
            kept.append(block[: m.start()] + f"{_stamp(start - lo_s)} --> {_stamp(end - lo_s)}" + block[m.end():])
    if not kept:
        raise ValueError(f"{src.name} has no cue between {lo_s} s and {hi_s} s")
    dest.write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    return dest


def labelled_lines(path: Path, name: str) -> int:
    """How many payload lines of a SubRip file start with the speaker label `name: `."""
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.startswith(f"{name}: "))
