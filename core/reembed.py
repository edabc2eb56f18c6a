"""Moving indexed chunks into the configured embedding model's vector space.

A chunk holds one vector and names the space it lies in (core/models.py). When
EMBEDDING_MODEL changes — a new default after an upgrade, or an admin's choice — the
chunks indexed before stay in the old space, where search (which only compares vectors of
the configured model) no longer sees them; keyword search still does. This module finds
them and re-embeds their stored text with the configured model, item by item: transcripts
are never fetched or transcribed again.

- The scheduler runs `reembed_pending()` a bounded batch at a time (scheduler.jobs.reembed_tick,
  from its start and then every minute), so `make run` after an upgrade heals the archive by
  itself; `python -m core reembed` runs it to the end in the foreground, with progress.
- Safe beside the pipeline and other schedulers: each item's vectors are written in one
  statement that only touches chunks still outside the target space, and a chunk the pipeline
  replaced meanwhile (new ids) is simply not found. Two processes re-embedding the same item
  do the same work twice, never a wrong write.
- Paid embedding providers are not re-embedded here: that spend belongs to the budget, so
  with EMBEDDING_PROVIDER=openai the command says so and changes nothing.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple, cast

from sqlalchemy import Table, bindparam, text, update
from sqlalchemy.orm import Session

from core.db import session_scope
from core.embeddings import Embedder, ensure_space, get_embedder
from core.models import Chunk

log = logging.getLogger(__name__)

BATCH_ITEMS = 20  # items a scheduler tick re-embeds (≈ 80 chunks each: well under a minute)


class PaidReembedRefused(RuntimeError):
    """Re-embedding with a paid provider would spend money outside the budget."""


class ReembedReport(NamedTuple):
    model: str
    items: int  # items whose chunks were re-embedded now
    chunks: int
    remaining: int  # items still holding chunks outside the model's space
    seconds: float

    def line(self) -> str:
        if not self.items and not self.remaining:
            return f"every indexed chunk is in the {self.model} vector space"
        rate = f" ({self.chunks / self.seconds:.0f} chunks/s)" if self.seconds > 0 and self.chunks else ""
        left = f"; {self.remaining} item(s) still to do" if self.remaining else "; none left"
        return f"re-embedded {self.items} item(s), {self.chunks} chunks, into {self.model}{rate}{left}"


def _outside(space_id: int) -> str:
    # `= ANY(other spaces) OR IS NULL` rather than `<>`: both halves use ix_chunks_space, so
    # the check stays cheap at 100k chunks when (as usually) nothing is left to do.
    return (
        "(c.embedding_space_id IS NULL OR c.embedding_space_id IN "
        f"(SELECT id FROM embedding_spaces WHERE id <> {int(space_id)}))"
    )


def pending_items(session: Session, space_id: int, *, limit: int | None = None) -> list[int]:
    """Items with at least one chunk whose vector is missing or in another space, oldest first."""
    sql = f"SELECT DISTINCT c.media_item_id FROM chunks c WHERE {_outside(space_id)} ORDER BY 1"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [int(i) for i in session.scalars(text(sql))]


def pending_count(session: Session, space_id: int) -> int:
    return int(session.scalar(text(f"SELECT count(DISTINCT c.media_item_id) FROM chunks c WHERE {_outside(space_id)}")))


def reembed_item(item_id: int, embedder: Embedder, space_id: int) -> int:
    """Re-embed the item's chunks that lie outside `space_id`; returns how many were written."""
    with session_scope() as s:
        rows = s.execute(
            text(f"SELECT c.id, c.text FROM chunks c WHERE c.media_item_id = :item AND {_outside(space_id)} ORDER BY c.idx"),
            {"item": item_id},
        ).all()
    if not rows:
        return 0
    vectors = embedder.embed_documents([t for _, t in rows])  # outside any transaction: it takes seconds
    table = cast(Table, Chunk.__table__)  # a mapped class's table; the stubs type __table__ as FromClause
    stmt = (
        update(table)
        .where(table.c.id == bindparam("cid"), table.c.embedding_space_id.is_distinct_from(space_id))
        .values(embedding=bindparam("vec"), embedding_space_id=space_id)
    )
    with session_scope() as s:
        s.execute(stmt, [{"cid": int(cid), "vec": vec} for (cid, _), vec in zip(rows, vectors)])
    return len(rows)


def reembed_pending(
    *,
    embedder: Embedder | None = None,
    max_items: int | None = None,
    progress: Callable[[ReembedReport], None] | None = None,
) -> ReembedReport:
    """Re-embed up to `max_items` items (all when None) into the configured model's space."""
    embedder = embedder or get_embedder()
    if embedder.provider != "local":
        raise PaidReembedRefused(
            f"re-embedding with {embedder.provider}/{embedder.model} is paid; it is not done automatically "
            "(re-ingest the items so their embeddings go through the budget)"
        )
    start = time.monotonic()
    with session_scope() as s:
        space = ensure_space(s, embedder)
    items = chunks = 0
    with session_scope() as s:
        todo = pending_items(s, space.id, limit=max_items)
    for item_id in todo:
        chunks += reembed_item(item_id, embedder, space.id)
        items += 1
        if progress is not None:
            progress(ReembedReport(embedder.model, items, chunks, len(todo) - items, time.monotonic() - start))
    if items:
        _invalidate_search_cache()
    with session_scope() as s:
        remaining = pending_count(s, space.id)
    report = ReembedReport(embedder.model, items, chunks, remaining, time.monotonic() - start)
    if items:
        log.info(report.line())
    return report


def _invalidate_search_cache() -> None:
    # Cached responses (and search's per-version lookup of the model's space) predate the new vectors.
    from core.search import cache

    cache.invalidate()
