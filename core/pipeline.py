"""One media item through fetch → transcribe → quality gates → chunk → embed → index.

Idempotent: the last step replaces the item's segments and chunks in one transaction,
so a re-run after a crash (or a re-transcription with another engine) never leaves a
duplicate or a half-indexed item. The queue, the budget and the ledger wrap this
module (core/backfill/worker.py); it never touches jobs or money itself, it only reports
the paid usage it caused (Usage, by ledger name from core.engines).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from core import quality
from core.chunking import chunk_segments
from core.config import get_settings
from core.db import session_scope
from core.embeddings import Embedder, embed_counted, ensure_space, get_embedder
from core.engines import embedding_engine
from core.engines import engine as engine_info
from core.models import Chunk, MediaItem, Source, TranscriptSegment
from core.records import Transcript
from core.search import cache
from core.search.moments import TimedLine
from core.sentence_index import SentenceVectors, embed_sentences
from core.sentence_index import write as write_sentence_vectors
from core.sources.base import SourceError
from core.sources.registry import source_for
from core.states import SEARCHABLE, FailureCause, ItemStatus, Stage
from core.transcribe.base import NoSpeech, ProgressFn, TranscriptionError
from core.transcribe.registry import get_engine

log = logging.getLogger(__name__)

Heartbeat = Callable[[Stage], None]


class Usage(NamedTuple):
    """One paid call's size, for the ledger (the worker prices it)."""

    engine: str  # a ledger name (core.engines): "openai-transcribe" | "openai-embed" | …
    audio_minutes: float = 0.0
    tokens: int = 0


class ProcessResult(NamedTuple):
    item_id: int
    status: str  # "indexed" | "review"
    engine: str
    model: str | None
    route_reason: str
    audio_seconds: float | None
    chunk_count: int
    usage: list[Usage]
    review_reasons: list[str] = []


class NoUsableTranscript(TranscriptionError):
    """None of the allowed engines could give a transcript (e.g. captions only, and none exist)."""

    failure_cause = FailureCause.NO_TRANSCRIPT


# ---------------------------------------------------------------------------------------------
# Already indexed? (registering items is core.catalog's job)
# ---------------------------------------------------------------------------------------------


INDEXED_STATUSES = SEARCHABLE


def indexed_item(session: Session, source_kind: str, external_id: str) -> MediaItem | None:
    """The item of that kind and id if it is already searchable (indexed, or held for review).

    Any source of the kind counts: a video is the same video whether the channel sync, an
    `ingest URL` or a transcript import registered it. A second ingest of it is a no-op.
    """
    return session.scalars(
        select(MediaItem)
        .join(Source, Source.id == MediaItem.source_id)
        .where(Source.kind == source_kind, MediaItem.external_id == external_id, MediaItem.status.in_(INDEXED_STATUSES))
        .order_by(MediaItem.id)
    ).first()


# ---------------------------------------------------------------------------------------------
# Processing one item
# ---------------------------------------------------------------------------------------------


def _set_status(item_id: int, status: str, detail: str | None = None) -> None:
    with session_scope() as session:
        item = session.get(MediaItem, item_id)
        if item is not None:
            item.status = status
            item.status_detail = detail


def _audio_path(item: MediaItem, source, item_dir: Path) -> Path:
    if item.media_path and Path(item.media_path).exists():
        return Path(item.media_path)
    item_dir.mkdir(parents=True, exist_ok=True)
    return source.fetch_audio(item.external_id, item_dir)


def _transcribe(
    item: MediaItem, source_row: Source, engines: Sequence[str], heartbeat: Heartbeat, progress: ProgressFn | None
) -> tuple[Transcript, str, Path | None]:
    """The first transcript the allowed engines give, why that engine, and any downloaded file."""
    source = source_for(source_row)
    downloaded: Path | None = None
    skipped: list[str] = []
    for name in engines:
        if name == "captions":
            heartbeat(Stage.CAPTIONS)
            transcript = source.fetch_captions(item.external_id)
            if transcript is not None and transcript.segments:
                return transcript, f"{source_row.kind} has its own transcript ({transcript.model or 'captions'})", None
            skipped.append("no captions")
            continue
        heartbeat(Stage.FETCHING)
        _set_status(item.id, ItemStatus.FETCHING)
        audio = _audio_path(item, source, get_settings().media_dir / str(item.id))
        if not item.media_path:
            downloaded = audio
        heartbeat(Stage.TRANSCRIBING)
        _set_status(item.id, ItemStatus.TRANSCRIBING)
        transcript = get_engine(name).transcribe(audio, progress=progress)
        reason = f"{name} engine" + (f" ({'; '.join(skipped)})" if skipped else "")
        return transcript, reason, downloaded
    raise NoUsableTranscript(
        f"no transcript: tried {', '.join(engines) or 'no engines'} ({'; '.join(skipped) or 'nothing to try'})"
    )


def _write_index(
    session: Session,
    item_id: int,
    transcript: Transcript,
    chunks: list,
    vectors: np.ndarray,
    embedder: Embedder,
    status: str,
    route_reason: str,
    detail: str | None,
) -> None:
    """Replace the item's segments and chunks: all or nothing, in the caller's transaction."""
    space = ensure_space(session, embedder)
    session.execute(delete(Chunk).where(Chunk.media_item_id == item_id))
    session.execute(delete(TranscriptSegment).where(TranscriptSegment.media_item_id == item_id))
    session.execute(
        insert(TranscriptSegment),
        [
            {
                "media_item_id": item_id,
                "idx": i,
                "start_s": float(s.start),
                "end_s": float(s.end),
                "text": s.text,
                "speaker": s.speaker,
                "engine": transcript.engine,
            }
            for i, s in enumerate(transcript.segments)
        ],
    )
    session.execute(
        insert(Chunk),
        [
            {
                "media_item_id": item_id,
                "idx": c.index,
                "start_s": float(c.start),
                "end_s": float(c.end),
                "text": c.text,
                "speakers": ", ".join(c.speakers) or None,
                "embedding": vectors[i],
                "embedding_space_id": space.id,
            }
            for i, c in enumerate(chunks)
        ],
    )
    item = session.get_one(MediaItem, item_id)  # the item being indexed: a missing row is a real error
    item.status = status
    item.status_detail = detail
    item.engine = transcript.engine
    item.route_reason = route_reason
    item.chunk_count = len(chunks)
    item.indexed_at = datetime.now(timezone.utc)
    if item.duration_s is None and transcript.audio_seconds:
        item.duration_s = float(transcript.audio_seconds)


def process_item(
    item_id: int,
    *,
    engines: Sequence[str] | None = None,
    heartbeat: Heartbeat | None = None,
    progress: ProgressFn | None = None,
) -> ProcessResult:
    """Make the item searchable with the first of `engines` that works (settings order by default).

    Raises SourceError / TranscriptionError subclasses (each says whether a retry may
    help); on failure the item's previous index, if any, is left untouched.
    """
    settings = get_settings()
    engines = list(engines or settings.transcription_engines)
    beat = heartbeat or (lambda _stage: None)

    with session_scope() as session:
        item = session.get(MediaItem, item_id)
        if item is None:
            raise LookupError(f"no media item {item_id}")
        source_row = item.source
        session.expunge_all()

    transcript, reason, downloaded = _transcribe(item, source_row, engines, beat, progress)
    indexed_ok = False
    try:
        indexed = index_transcript(item_id, transcript, reason, heartbeat=beat)
        indexed_ok = True
    finally:
        # YouTube audio is only a means to a transcript; uploads and Zoom files are kept for playback.
        # With the speakers extra it waits for the item's speaker pass instead (core/speakers/stage.py).
        if downloaded is not None and source_row.kind == "youtube" and not (
            indexed_ok and _kept_for_speakers(item_id, downloaded)
        ):
            downloaded.unlink(missing_ok=True)

    usage: list[Usage] = []
    transcriber = engine_info(transcript.engine)
    if transcriber.paid:  # engines whose calls cost money, by their ledger name
        usage.append(Usage(transcriber.ledger, audio_minutes=(transcript.audio_seconds or 0) / 60))
    embedder = embedding_engine(indexed.embed_provider)
    if indexed.embed_tokens and embedder is not None:
        usage.append(Usage(embedder.ledger, tokens=int(indexed.embed_tokens)))
    return ProcessResult(
        item_id=item_id,
        status=indexed.status,
        engine=transcript.engine,
        model=transcript.model,
        route_reason=reason,
        audio_seconds=transcript.audio_seconds,
        chunk_count=indexed.chunk_count,
        usage=usage,
        review_reasons=indexed.review_reasons,
    )


def _kept_for_speakers(item_id: int, audio: Path) -> bool:
    from core.speakers.stage import keep_audio

    try:
        return keep_audio(item_id, audio)
    except OSError:  # a full disk must not fail a transcription that succeeded
        return False


class Indexed(NamedTuple):
    status: str  # "indexed" | "review"
    chunk_count: int
    review_reasons: list[str]
    embed_provider: str
    embed_tokens: int


def index_transcript(item_id: int, transcript: Transcript, reason: str, *, heartbeat: Heartbeat | None = None) -> Indexed:
    """Chunk → embed → quality gates → replace the item's index, for a transcript in hand.

    The second half of process_item, and all of a transcript import: a file the user brings
    (SRT, VTT, json3) goes through the same gates and the same all-or-nothing replacement, so
    a later caption or whisper run of that item replaces it instead of adding to it.
    """
    beat = heartbeat or (lambda _stage: None)
    chunks = list(chunk_segments(transcript.segments))
    if not chunks:
        raise NoSpeech("the transcript is empty (no speech found)")
    beat(Stage.EMBEDDING)
    embedder = get_embedder()
    texts = [c.text for c in chunks]
    vectors, embed_tokens = embed_counted(embedder, texts)
    # Each sentence's vector too (the locator opens links at the sentence nearest the query in
    # meaning); local models only, so the budget's token count stays the chunks'.
    sentences = embed_sentences(embedder, [TimedLine(float(s.start), float(s.end), s.text, s.speaker)
                                           for s in transcript.segments])

    beat(Stage.INDEXING)
    with session_scope() as session:
        reasons = quality.check(session, item_id, transcript, texts, vectors)
        status = ItemStatus.REVIEW if reasons else ItemStatus.INDEXED
        _write_index(session, item_id, transcript, chunks, vectors, embedder, status, reason, "; ".join(reasons) or None)
        # Replaced with the segments, in their transaction: vectors of old segments never survive them.
        write_sentence_vectors(session, item_id, ensure_space(session, embedder).id,
                               sentences or SentenceVectors([], np.zeros((0, 0), dtype=np.float32)))
    cache.invalidate()
    return Indexed(status, len(chunks), reasons, embedder.provider, int(embed_tokens))


__all__ = [
    "NoUsableTranscript",
    "ProcessResult",
    "SourceError",
    "TranscriptionError",
    "Usage",
    "index_transcript",
    "indexed_item",
    "process_item",
]
