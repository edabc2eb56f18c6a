"""After a pass: the item's chunks cut again at speaker changes, so no chunk joins two speakers.

Chunks are the unit search returns, filters and quotes. A 45 s window across a question and
its answer would make "only the host speaking" either drop the host's answer or return the
guest's question with it. So after the voice names the segments, the item's windows are
rebuilt inside each speaker's run (the same chunker, core/chunking.py, over each run) and
embedded again with the configured model. Local embedding only: it is free and takes about
a second per ten minutes of speech. With a paid embedding provider the chunks are kept as
they are (their speaker lists are refreshed): re-embedding would spend money outside the budget.
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, text
from sqlalchemy.orm import Session

from core.chunking import chunk_segments
from core.embeddings import embed_counted, ensure_space, get_embedder
from core.models import Chunk, MediaItem
from core.records import Segment, TimedChunk
from core.speakers.store import refresh_chunk_speakers


def speaker_runs(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Consecutive segments of one speaker (an unnamed segment joins the run it sits in)."""
    runs: list[list[Segment]] = []
    current: str | None = None
    for seg in segments:
        who = seg.speaker or current
        if runs and who == current:
            runs[-1].append(seg)
        else:
            runs.append([seg])
            current = who
    return runs


def chunks_by_speaker(segments: Sequence[Segment]) -> list[TimedChunk]:
    out: list[TimedChunk] = []
    for run in speaker_runs(segments):
        for c in chunk_segments(run):
            out.append(c._replace(index=len(out)))
    return out


def rechunk(session: Session, item_id: int) -> int | None:
    """Rebuild the item's chunks per speaker turn; the new chunk count, or None when kept."""
    embedder = get_embedder()
    if embedder.provider != "local":
        refresh_chunk_speakers(session, item_id)
        return None
    rows = session.execute(
        text("SELECT start_s, end_s, text, speaker FROM transcript_segments WHERE media_item_id = :i ORDER BY idx"),
        {"i": int(item_id)},
    ).all()
    chunks = chunks_by_speaker([Segment(r.start_s, r.end_s, r.text, r.speaker) for r in rows])
    if not chunks:
        return None
    vectors, _tokens = embed_counted(embedder, [c.text for c in chunks])  # local: no tokens billed
    space = ensure_space(session, embedder)
    session.execute(delete(Chunk).where(Chunk.media_item_id == item_id))
    session.execute(
        insert(Chunk),
        [
            {
                "media_item_id": item_id, "idx": c.index, "start_s": float(c.start), "end_s": float(c.end),
                "text": c.text, "speakers": ", ".join(c.speakers) or None, "embedding": vectors[i],
                "embedding_space_id": space.id,
            }
            for i, c in enumerate(chunks)
        ],
    )
    session.get_one(MediaItem, item_id).chunk_count = len(chunks)
    return len(chunks)
