"""Seed data for the search tests: real Chaffee transcript passages with real embeddings.

Not a test module of its own (it holds no tests); test_search*.py import `seed_archive`.
Passages come from the real SRTs in ../shared/data/transcripts, cut to a few topics so
embedding them stays fast (≈ 60 chunks), and stored the way the pipeline stores them:
media item + chunks (chunk_segments) + transcript segments + vectors of get_embedder().
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from core.chunking import chunk_segments
from core.embeddings import ensure_space, get_embedder
from core.models import Chunk, MediaItem, Source, TranscriptSegment
from core.records import Segment
from tests.conftest import shared_path

A, B = "48fTLPbE5JA", "RcBwvdVEAr8"


@dataclass(frozen=True)
class Passage:
    key: str
    srt: str
    spans: tuple[tuple[float, float], ...]  # seconds of the SRT to keep
    kind: str  # youtube | zoom | upload
    title: str
    published: datetime
    duration_s: float
    visible: bool = True
    speakers: tuple[str, ...] = ()  # assigned in turn to segments (a Zoom transcript has names)
    media_path: str | None = None


PASSAGES = (
    Passage("crohns", A, ((300, 765), (1590, 2040)), "youtube",
            "Carnivore Q&A with Dr. Anthony Chaffee and Richard Smith", datetime(2024, 3, 17, tzinfo=timezone.utc), 7150),
    Passage("athletes", B, ((740, 1050), (2248, 2555)), "youtube",
            "Carnivore for athletes and youth", datetime(2023, 9, 10, tzinfo=timezone.utc), 4400),
    Passage("lectins", A, ((3179, 3437),), "zoom",
            "Members Zoom call: lectins and autoimmunity", datetime(2025, 1, 10, tzinfo=timezone.utc), 1800,
            speakers=("Anthony Chaffee", "Steven Bowen"), media_path="/srv/zoom/members-call.m4a"),
    Passage("hidden", B, ((1240, 1493),), "zoom",
            "Private coaching call (unpublished)", datetime(2025, 2, 1, tzinfo=timezone.utc), 1500,
            visible=False, speakers=("Anthony Chaffee", "Jeff Prosperi"), media_path="/srv/zoom/private-call.m4a"),
)


def _segments(passage: Passage) -> list[Segment]:
    from core.transcribe.captions import parse_caption_file

    path = shared_path("transcripts", f"{passage.srt}.srt")
    segs = [s for s in parse_caption_file(path) if any(a <= s.start < b for a, b in passage.spans)]
    if passage.speakers:
        segs = [s._replace(speaker=passage.speakers[i % len(passage.speakers)]) for i, s in enumerate(segs)]
    return segs


_VECTORS: dict[str, object] = {}  # text → vector, kept across tests (the model is deterministic)


def embed(texts: list[str]):
    missing = [t for t in dict.fromkeys(texts) if t not in _VECTORS]
    if missing:
        for t, v in zip(missing, get_embedder().embed_documents(missing)):
            _VECTORS[t] = v
    return [_VECTORS[t] for t in texts]


def seed_archive(session: Session, passages=PASSAGES) -> dict[str, MediaItem]:
    """Insert the passages as indexed media items; returns them by key."""
    embedder = get_embedder()
    space = ensure_space(session, embedder)
    sources: dict[str, Source] = {}
    items: dict[str, MediaItem] = {}
    for p in passages:
        if p.kind not in sources:
            sources[p.kind] = Source(kind=p.kind, name=f"test {p.kind}", url=f"test://{p.kind}")
            session.add(sources[p.kind])
            session.flush()
        url = f"https://www.youtube.com/watch?v={p.srt}" if p.kind == "youtube" else f"https://zoom.example/rec/{p.key}"
        item = MediaItem(
            source_id=sources[p.kind].id, external_id=p.key if p.kind != "youtube" else p.srt, title=p.title,
            url=url, published_at=p.published, duration_s=p.duration_s, status="indexed", visible=p.visible,
            media_path=p.media_path, indexed_at=datetime.now(timezone.utc),
        )
        session.add(item)
        session.flush()
        segs = _segments(p)
        for i, s in enumerate(segs):
            session.add(TranscriptSegment(media_item_id=item.id, idx=i, start_s=s.start, end_s=s.end, text=s.text,
                                          speaker=s.speaker, engine="captions"))
        # Chunk each kept span on its own: a gap in the source must not become one window.
        chunks = []
        for span_no, (a, b) in enumerate(p.spans):
            part = [s for s in segs if a <= s.start < b]
            # Numbering jumps between spans, as chunks that do not touch (never merged into one moment).
            chunks += [c._replace(index=100 * span_no + c.index) for c in chunk_segments(part)]
        vectors = embed([c.text for c in chunks])
        for c, v in zip(chunks, vectors):
            session.add(Chunk(media_item_id=item.id, idx=c.index, start_s=c.start, end_s=c.end, text=c.text,
                              speakers=", ".join(c.speakers) or None, embedding=v, embedding_space_id=space.id))
        item.chunk_count = len(chunks)
        items[p.key] = item
    session.flush()
    return items
