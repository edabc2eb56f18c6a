"""Result shaping: fused chunk ranks → videos with up to three moments each.

Per video, the matching chunks that touch (consecutive chunk numbers, which overlap by
design) are merged into one moment, so a user sees one passage instead of three
near-identical ones; moments are ordered best first; snippets are HTML-escaped with the
matched words wrapped in <mark>.
"""
from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.links import deep_link
from core.search.records import Moment, VideoGroup

MOMENTS_PER_VIDEO = 3
MAX_MERGED_CHUNKS = 3  # a moment never spans more than this many chunks (≈ 2 minutes)
SNIPPET_WORDS = 80


@dataclass
class ChunkRow:
    id: int
    media_item_id: int
    idx: int
    start_s: float
    end_s: float
    text: str
    speakers: str | None
    title: str
    url: str
    published_at: datetime | None
    duration_s: float | None
    media_path: str | None
    visible: bool
    source_kind: str


def load_chunks(session: Session, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
    if not chunk_ids:
        return {}
    rows = session.execute(
        text(
            """
            SELECT c.id, c.media_item_id, c.idx, c.start_s, c.end_s, c.text, c.speakers,
                   m.title, m.url, m.published_at, m.duration_s, m.media_path, m.visible, s.kind
            FROM chunks c
            JOIN media_items m ON m.id = c.media_item_id
            JOIN sources s ON s.id = m.source_id
            WHERE c.id = ANY(:ids)
            """
        ),
        {"ids": list(chunk_ids)},
    ).all()
    return {r[0]: ChunkRow(*r) for r in rows}


# ---------------------------------------------------------------------------------------------
# Highlighting
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9']*")
_SUFFIXES = ("ational", "ization", "iveness", "fulness", "ations", "ation", "ings", "ing", "edly", "ies", "ied",
             "ers", "er", "ed", "es", "ly", "s")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude suffix stripper: enough to mark 'eggs' for 'egg' and 'fasting' for 'fast'."""
    w = word.lower().replace("'s", "").replace("'", "")
    for suffix in _SUFFIXES:
        if len(w) - len(suffix) >= 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def highlight(snippet: str, terms: Sequence[str]) -> str:
    """HTML-escaped snippet with every word that matches a term wrapped in <mark>."""
    stems = {stem(t) for t in terms if t}
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(snippet):
        out.append(html.escape(snippet[pos : match.start()]))
        word = match.group(0)
        if stems and stem(word) in stems:
            out.append(f"<mark>{html.escape(word)}</mark>")
        else:
            out.append(html.escape(word))
        pos = match.end()
    out.append(html.escape(snippet[pos:]))
    return "".join(out)


def snippet_window(text_: str, terms: Sequence[str], words: int = SNIPPET_WORDS) -> str:
    """About `words` words of text, starting a little before the first matched word."""
    parts = text_.split()
    if len(parts) <= words:
        return text_
    stems = {stem(t) for t in terms}
    first = next((i for i, p in enumerate(parts) if _TOKEN.search(p) and stem(_TOKEN.search(p).group(0)) in stems), 0)
    start = max(0, min(first - 15, len(parts) - words))
    piece = " ".join(parts[start : start + words])
    return ("… " if start > 0 else "") + piece + (" …" if start + words < len(parts) else "")


def merge_texts(a: str, b: str, max_overlap_words: int = 80) -> str:
    """a + b without the words b repeats from a's end (chunks overlap by design)."""
    aw, bw = a.split(), b.split()
    for n in range(min(max_overlap_words, len(aw), len(bw)), 0, -1):
        if aw[-n:] == bw[:n]:
            return " ".join(aw + bw[n:])
    return " ".join(aw + bw)


# ---------------------------------------------------------------------------------------------
# Grouping
# ---------------------------------------------------------------------------------------------


def _runs(rows: list[ChunkRow], score: dict[int, float]) -> list[list[ChunkRow]]:
    """Consecutive matching chunks (by number) form one passage. A passage longer than
    MAX_MERGED_CHUNKS is cut to the window around its best chunk: the rest is the same
    passage continuing, not another moment worth a separate line."""
    rows = sorted(rows, key=lambda r: r.idx)
    runs: list[list[ChunkRow]] = []
    for row in rows:
        if runs and row.idx == runs[-1][-1].idx + 1:
            runs[-1].append(row)
        else:
            runs.append([row])
    out = []
    for run in runs:
        if len(run) > MAX_MERGED_CHUNKS:
            best = max(range(len(run)), key=lambda i: score[run[i].id])
            start = max(0, min(best - MAX_MERGED_CHUNKS // 2, len(run) - MAX_MERGED_CHUNKS))
            run = run[start : start + MAX_MERGED_CHUNKS]
        out.append(run)
    return out


def shape(
    session: Session,
    fused: Sequence[tuple[int, float]],
    *,
    terms: Sequence[str],
    k: int,
    sort: str = "relevance",
    moments_per_video: int = MOMENTS_PER_VIDEO,
    link_base: str = "/",
    rows: dict[int, ChunkRow] | None = None,
) -> list[VideoGroup]:
    """Fused (chunk id, score) best first → at most k videos, each with its best moments."""
    if rows is None:
        rows = load_chunks(session, [cid for cid, _ in fused])
    score = dict(fused)
    per_item: dict[int, list[ChunkRow]] = {}
    order: list[int] = []
    for cid, _ in fused:
        row = rows.get(cid)
        if row is None:
            continue
        if row.media_item_id not in per_item:
            order.append(row.media_item_id)
            per_item[row.media_item_id] = []
        per_item[row.media_item_id].append(row)

    # Score every video first (cheap), keep the best k, and only then build their snippets.
    scored: list[tuple[float, int, list[tuple[float, list[ChunkRow]]]]] = []
    for item_id in order:
        runs = [(max(score[r.id] for r in run), run) for run in _runs(per_item[item_id], score)]
        runs.sort(key=lambda sr: (-sr[0], sr[1][0].start_s))
        scored.append((runs[0][0], item_id, runs[:moments_per_video]))
    scored.sort(key=lambda s: -s[0])

    groups: list[VideoGroup] = []
    for best_score, item_id, runs in scored[:k]:
        first = per_item[item_id][0]
        moments = [_moment(run, first, score, terms, link_base) for _, run in runs]
        groups.append(
            VideoGroup(
                media_item_id=item_id,
                title=first.title,
                url=first.url,
                source_kind=first.source_kind,
                published_at=first.published_at,
                duration_s=first.duration_s,
                media_path=first.media_path,
                visible=first.visible,
                score=best_score,
                moments=moments,
            )
        )
    if sort == "date":
        oldest = datetime.min.replace(tzinfo=timezone.utc)
        # Newest first; items with no known date go last, in relevance order.
        groups.sort(key=lambda g: g.published_at or oldest, reverse=True)
    return groups


def _moment(run: list[ChunkRow], first: ChunkRow, score: dict[int, float], terms: Sequence[str], link_base: str) -> Moment:
    best = max(run, key=lambda r: score[r.id])
    merged = run[0].text
    for nxt in run[1:]:
        merged = merge_texts(merged, nxt.text)
    speakers = tuple(dict.fromkeys(s.strip() for r in run for s in (r.speakers or "").split(",") if s.strip()))
    return Moment(
        chunk_id=best.id,
        # Open at the best chunk, not the first of the run: merged neighbours widen the
        # snippet, but the link must land where the answer is said.
        start_s=best.start_s,
        end_s=run[-1].end_s,
        text=merged,
        snippet_html=highlight(snippet_window(merged, terms), terms),
        score=score[best.id],
        link=deep_link(_ItemRef(first), best.start_s, base=link_base),
        speakers=speakers,
    )


class _ItemRef:
    """The three attributes deep_link() reads, from a joined chunk row."""

    __slots__ = ("id", "url", "media_path")

    def __init__(self, row: ChunkRow):
        self.id, self.url, self.media_path = row.media_item_id, row.url, row.media_path
