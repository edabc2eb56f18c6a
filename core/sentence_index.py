"""Sentence vectors: one embedding per transcript sentence, stored at index time.

The sentence locator (core/search/moments.py) opens a moment's link at the sentence most
similar in meaning to the query (with the query's words as a tie-breaker); embedding the ~600
sentences of a results page at query time would cost seconds on 2 CPUs, so they are embedded
once, when the item is indexed, and stored in `sentence_vectors` keyed by the sentence's start
second. The sentences are cut exactly as the locator cuts a window's segments
(moments.split_sentences over the segments in (start, idx) order), so every source that stores
timed segments — captions, imported SRT/VTT/json3, local whisper, Zoom VTT — gets them the same way.

- New transcripts: the pipeline embeds them beside the chunks (index_transcript) and writes them
  in the same transaction as the segments they come from.
- Existing archives, and items whose vectors are in another model's space: the scheduler's
  re-embed tick fills them a batch at a time (backfill()), as does `python -m core reembed`.
  Until then the item's links are placed by the query's words alone.
- Paid providers are skipped (their tokens belong to the budget): those archives keep the
  word-based locator.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from sqlalchemy import delete, insert, text
from sqlalchemy.orm import Session

from core.db import session_scope
from core.embeddings import Embedder, ensure_space, get_embedder
from core.models import SentenceVector
from core.search.moments import Sentence, TimedLine, split_sentences

log = logging.getLogger(__name__)

BATCH_ITEMS = 10  # items a scheduler tick fills (≈ 1,200 sentences each for a two-hour talk)


class SentenceVectors(NamedTuple):
    starts: list[float]
    vectors: np.ndarray


def item_sentences(lines: Sequence[TimedLine]) -> list[Sentence]:
    """An item's sentences, cut as the locator cuts them (lines in (start, idx) order)."""
    return split_sentences(sorted(lines, key=lambda ln: ln.start_s))


def embed_sentences(embedder: Embedder, lines: Sequence[TimedLine]) -> SentenceVectors | None:
    """The vectors of an item's sentences; None for a paid provider (never billed outside the budget)."""
    if embedder.provider != "local":
        return None
    sentences = item_sentences(lines)
    if not sentences:
        return SentenceVectors([], np.zeros((0, 0), dtype=np.float32))
    vectors = np.asarray(embedder.embed_documents([s.text for s in sentences]), dtype=np.float32)
    return SentenceVectors([float(s.start_s) for s in sentences], vectors)


def write(session: Session, item_id: int, space_id: int, found: SentenceVectors) -> int:
    """Replace the item's sentence vectors (in the caller's transaction)."""
    session.execute(delete(SentenceVector).where(SentenceVector.media_item_id == item_id))
    if found.starts:
        session.execute(
            insert(SentenceVector),
            [{"media_item_id": item_id, "start_s": s, "embedding": v, "embedding_space_id": space_id}
             for s, v in zip(found.starts, found.vectors)],
        )
    return len(found.starts)


def _segments(session: Session, item_id: int) -> tuple[list[TimedLine], int | None]:
    """The item's stored segments, and the newest segment id (it changes whenever the pipeline
    replaces them: the backfill never writes vectors of segments that are gone)."""
    rows = session.execute(
        text("SELECT id, start_s, end_s, text, speaker FROM transcript_segments WHERE media_item_id = :i "
             "ORDER BY start_s, idx"),
        {"i": int(item_id)},
    ).all()
    return [TimedLine(float(r.start_s), float(r.end_s), r.text, r.speaker) for r in rows], max((r.id for r in rows), default=None)


def pending_items(session: Session, space_id: int, *, limit: int | None = None) -> list[int]:
    """Items with stored segments but no sentence vector in `space_id`, oldest first."""
    sql = ("SELECT m.id FROM media_items m WHERE EXISTS (SELECT 1 FROM transcript_segments s WHERE s.media_item_id = m.id) "
           "AND NOT EXISTS (SELECT 1 FROM sentence_vectors v WHERE v.media_item_id = m.id AND v.embedding_space_id = :sp) "
           "ORDER BY m.id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [int(i) for i in session.scalars(text(sql), {"sp": int(space_id)})]


def index_item(item_id: int, embedder: Embedder, space_id: int) -> int:
    """Embed and store one item's sentence vectors; the number written (0 when its segments
    changed meanwhile: the pipeline's own run writes them then)."""
    with session_scope() as s:
        lines, newest = _segments(s, item_id)
    found = embed_sentences(embedder, lines)  # outside any transaction: seconds per item
    if found is None or newest is None:
        return 0
    with session_scope() as s:
        _, now = _segments(s, item_id)
        if now != newest:
            return 0
        return write(s, item_id, space_id, found)


class BackfillReport(NamedTuple):
    items: int
    sentences: int
    remaining: int


def backfill(*, embedder: Embedder | None = None, max_items: int | None = None) -> BackfillReport:
    """Fill the sentence vectors of up to `max_items` items that lack them (all when None)."""
    embedder = embedder or get_embedder()
    if embedder.provider != "local":
        return BackfillReport(0, 0, 0)
    with session_scope() as s:
        space = ensure_space(s, embedder)
        todo = pending_items(s, space.id, limit=max_items)
    written = sum(index_item(item_id, embedder, space.id) for item_id in todo)
    with session_scope() as s:
        remaining = len(pending_items(s, space.id))
    if todo:
        from core.search import cache

        cache.invalidate()  # cached responses placed these items' links without the vectors
        log.info("sentence vectors: %d item(s), %d sentences; %d item(s) left", len(todo), written, remaining)
    return BackfillReport(len(todo), written, remaining)
