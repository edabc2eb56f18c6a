"""Result shaping: fused chunk ranks → videos with up to three moments each.

Per video, the matching chunks that touch (consecutive chunk numbers, which overlap by
design) are merged into one moment, so a user sees one passage instead of three
near-identical ones; moments are ordered best first. Each moment's link opens at the
sentence where its answer starts, found in the window's timed segments (moments.py), and its
snippet is centred on that sentence, HTML-escaped with the matched words wrapped in <mark>.
"""
from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.links import deep_link
from core.search.moments import Located, Window, locate, snippet_around
from core.search.records import Moment, VideoGroup
from core.search.retrieval import KeywordQuery, query_lexemes

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
    # The item of each chunk by its primary key, one probe per chunk: a plain join lets the planner
    # hash every media item first (a sequential scan of the table, ≈ 2 ms at 3,600 items) to look
    # up the ≤ 100 that these chunks belong to. OFFSET 0 keeps the lateral subquery a subquery.
    rows = session.execute(
        text(
            """
            SELECT c.id, c.media_item_id, c.idx, c.start_s, c.end_s, c.text, c.speakers,
                   m.title, m.url, m.published_at, m.duration_s, m.media_path, m.visible, m.kind
            FROM chunks c
            CROSS JOIN LATERAL (
                SELECT m.title, m.url, m.published_at, m.duration_s, m.media_path, m.visible, s.kind
                FROM media_items m JOIN sources s ON s.id = m.source_id
                WHERE m.id = c.media_item_id
                OFFSET 0
            ) m
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


def highlight(snippet: str, terms: Sequence[str], synonyms: Sequence[str] = ()) -> str:
    """HTML-escaped snippet: words matching a typed term wrapped in <mark>, words that only a
    synonym expansion brought in wrapped in <mark class="syn"> (the page styles them lighter),
    so a viewer sees which words were theirs. A word matching both counts as typed."""
    typed = {stem(t) for t in terms if t}
    added = {stem(t) for t in synonyms if t} - typed
    if not typed and not added:
        return html.escape(snippet)
    # html.escape works character by character, so the text between two marked words is escaped
    # in one piece: one call per marked word instead of two per word (highlighting took about half
    # of the shape stage's time at 100k chunks under bench/search_profile.py --profile).
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(snippet):
        key = stem(match.group(0))
        if key in typed:
            tag = "<mark>"
        elif key in added:
            tag = '<mark class="syn">'
        else:
            continue
        out.append(html.escape(snippet[pos : match.start()]))
        out.append(f"{tag}{html.escape(match.group(0))}</mark>")
        pos = match.end()
    out.append(html.escape(snippet[pos:]))
    return "".join(out)


def _first_match(parts: Sequence[str], stems: set[str]) -> int | None:
    for i, p in enumerate(parts):
        m = _TOKEN.search(p)
        if m and stem(m.group(0)) in stems:
            return i
    return None


def snippet_window(text_: str, terms: Sequence[str], words: int = SNIPPET_WORDS, synonyms: Sequence[str] = ()) -> str:
    """About `words` words of text, starting a little before the first typed word (the first
    synonym-only word when the text holds none of the typed ones)."""
    parts = text_.split()
    if len(parts) <= words:
        return text_
    first = _first_match(parts, {stem(t) for t in terms if t})
    if first is None:
        first = _first_match(parts, {stem(t) for t in synonyms if t})
    start = max(0, min((first or 0) - 15, len(parts) - words))
    piece = " ".join(parts[start : start + words])
    return ("… " if start > 0 else "") + piece + (" …" if start + words < len(parts) else "")


def merge_texts(a: str, b: str, max_overlap_words: int = 80) -> str:
    """a + b without the words b repeats from a's end (chunks overlap by design)."""
    aw, bw = a.split(), b.split()
    for n in range(min(max_overlap_words, len(aw), len(bw)), 0, -1):
        if aw[-n:] == bw[:n]:
            return " ".join(aw + bw[n:])
    return " ".join(aw + bw)


def keyword_weights(kq: KeywordQuery | None) -> dict[str, float] | None:
    """Query lexeme → idf, exactly as the keyword side weighed them (its bound :lx<i>/:w<i>
    parameters); None when the keyword side did not run (vector mode) or had no words."""
    if kq is None or not kq.params:
        return None
    return {kq.params[f"lx{i}"]: float(kq.params[f"w{i}"]) for i in range(len(kq.params) // 2)}


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


@dataclass
class Unplaced:
    """Videos and their moments, grouped and scored, whose links and snippets are not placed yet.

    Placing (the sentence locator over each moment's window, the snippet around its sentence,
    the highlighting) is most of shaping's cost, and the verdict keeps only a few moments of a
    question the archive does not answer: search() judges first, then places the moments it
    shows (place()). A moment's placement depends on its own window alone, so placing fewer of
    them changes none of the others. Until placed, a moment's start_s is its best chunk's start
    and its link and snippet are empty.
    """

    groups: list[VideoGroup]
    pending: list[tuple[Moment, list[ChunkRow], ChunkRow]]  # (moment, its run of chunks, its item's first row)
    score: dict[int, float]
    terms: tuple[tuple[str, ...], tuple[str, ...]]  # (typed words, synonym-only words)
    all_terms: tuple[str, ...]
    link_base: str
    weights: Mapping[str, float] | None
    query_vector: object
    space: tuple[int, int] | None

    def place(self, session: Session, groups: Sequence[VideoGroup]) -> list[VideoGroup]:
        """Place the links and snippets of the moments `groups` hold (some of self.groups, their
        moments possibly trimmed); returns `groups`."""
        wanted = {id(m) for g in groups for m in g.moments}
        todo = [(m, run, first) for m, run, first in self.pending if id(m) in wanted]
        if not todo:
            return list(groups)
        weights = self.weights
        if weights is None:
            weights = {lx: 1.0 for lx in query_lexemes(session, " ".join(self.all_terms))} if self.all_terms else {}
        windows, prefer = [], []
        for m, run, first in todo:
            best = max(run, key=lambda r: self.score[r.id])
            windows.append(Window(first.media_item_id, run[0].start_s, run[-1].end_s))
            prefer.append((best.start_s, best.end_s))
        located = locate(session, windows, weights, prefer, query_vector=self.query_vector, space=self.space)
        for (m, run, first), where in zip(todo, located):
            _place(m, run, first, self.score, self.terms, self.link_base, where)
        self.pending = [p for p in self.pending if id(p[0]) not in wanted]
        return list(groups)


def group(
    session: Session,
    fused: Sequence[tuple[int, float]],
    *,
    terms: Sequence[str],
    k: int,
    sort: str = "relevance",
    moments_per_video: int = MOMENTS_PER_VIDEO,
    link_base: str = "/",
    rows: dict[int, ChunkRow] | None = None,
    weights: Mapping[str, float] | None = None,
    typed_terms: Sequence[str] | None = None,
    query_vector=None,
    space: tuple[int, int] | None = None,
) -> Unplaced:
    """Fused (chunk id, score) best first → at most k videos, each with its best moments, whose
    links and snippets Unplaced.place() then places.

    `weights` (query lexeme → idf, from the keyword side) place each moment's link on the
    sentence where its answer starts (core/search/moments.py); without them the query's
    words as Postgres stems them count equally. `typed_terms` (PreparedQuery.typed_terms) are
    the query's own words among `terms`; the rest came from synonyms and are marked lighter.
    None: every term counts as typed. `query_vector` and its embedding `space` (id, dim) let
    the locator choose each link's sentence by meaning where sentence vectors are stored.
    """
    typed = tuple(terms) if typed_terms is None else tuple(typed_terms)
    added = tuple(t for t in terms if t not in set(typed))
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

    # Score every video first (cheap), keep the best k, and only then build their moments.
    scored: list[tuple[float, int, list[tuple[float, list[ChunkRow]]]]] = []
    for item_id in order:
        runs = [(max(score[r.id] for r in run), run) for run in _runs(per_item[item_id], score)]
        runs.sort(key=lambda sr: (-sr[0], sr[1][0].start_s))
        scored.append((runs[0][0], item_id, runs[:moments_per_video]))
    scored.sort(key=lambda s: -s[0])

    groups: list[VideoGroup] = []
    pending: list[tuple[Moment, list[ChunkRow], ChunkRow]] = []
    for best_score, item_id, runs in scored[:k]:
        first = per_item[item_id][0]
        moments = []
        for _, run in runs:
            m = _moment(run, score)
            moments.append(m)
            pending.append((m, run, first))
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
    return Unplaced(groups, pending, score, (typed, added), tuple(terms), link_base, weights, query_vector, space)


def _moment(run: list[ChunkRow], score: dict[int, float]) -> Moment:
    """One moment, before its link and snippet are placed (_place)."""
    best = max(run, key=lambda r: score[r.id])
    merged = run[0].text
    for nxt in run[1:]:
        merged = merge_texts(merged, nxt.text)
    speakers = tuple(dict.fromkeys(s.strip() for r in run for s in (r.speakers or "").split(",") if s.strip()))
    return Moment(
        chunk_id=best.id,
        start_s=best.start_s,
        end_s=run[-1].end_s,
        text=merged,
        snippet_html="",
        score=score[best.id],
        link="",
        speakers=speakers,
        window_start_s=run[0].start_s,
    )


def _place(moment: Moment, run: list[ChunkRow], first: ChunkRow, score: dict[int, float],
           terms: tuple[Sequence[str], Sequence[str]], link_base: str, located: Located | None) -> None:
    """A moment's link, snippet and sentence; `terms` = (typed words, synonym-only words) for the
    snippet's highlighting."""
    typed, added = terms
    best = max(run, key=lambda r: score[r.id])
    if located is None:
        # No stored segments (an item indexed from bare chunks): the best chunk's own start.
        start, sentence, snippet = best.start_s, None, snippet_window(moment.text, typed, synonyms=added)
    else:
        # The sentence where the answer starts, over the whole run (a merged moment links to
        # its best sentence, wherever in the run it is), and the snippet centred on it.
        start, sentence = located.link_s, located.sentence
        piece, cut_before, cut_after = snippet_around(located, SNIPPET_WORDS)
        snippet = ("… " if cut_before else "") + piece + (" …" if cut_after else "")
    moment.start_s = start
    moment.snippet_html = highlight(snippet, typed, added)
    moment.snippet_text = snippet
    moment.link = deep_link(_ItemRef(first), start, base=link_base)
    moment.sentence_start_s = sentence.start_s if sentence else None
    moment.sentence = sentence.text if sentence else None


class _ItemRef:
    """The three attributes deep_link() reads, from a joined chunk row."""

    __slots__ = ("id", "url", "media_path")

    def __init__(self, row: ChunkRow):
        self.id, self.url, self.media_path = row.media_item_id, row.url, row.media_path
