"""Quality gates an item passes before it is indexed; a failing item goes to review with the reasons.

`check(...)` is called by the pipeline just before it writes the index and returns plain
sentences for the admin (empty list = pass):

- speech rate: words per minute of audio within WPM_RANGE (talks run ≈ 130–190), and a
  transcript that covers most of the audio — far too few words means most speech was lost,
  far too many means a wrong duration or text from elsewhere;
- repeated phrases: the same line many times in a row, or a stretch whose word 3-grams
  are mostly repeats — the signature of a speech model's hallucination loop;
- near-duplicates: most of the words already indexed, in the same order, under one other
  item (a re-upload, or a clip of a longer talk);
- embeddings: one finite, unit-length vector per passage, and not all the same.

The thresholds were measured on the real transcripts in ../shared/data/transcripts
(see tests/test_quality.py): real talks pass with a wide margin.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.models import Chunk, EmbeddingSpace, MediaItem
from core.records import Segment, Transcript
from core.states import ItemStatus

WPM_RANGE = (40.0, 300.0)
MIN_MINUTES_FOR_RATE = 2.0  # short clips (an intro, a jingle) have no meaningful rate
MIN_COVERAGE = 0.5  # the transcript should reach at least half way through the audio
REPEAT_RUN = 4  # this many identical lines in a row is a loop
REPEAT_WINDOW_WORDS = 120
MIN_DISTINCT_TRIGRAMS = 0.5  # share of distinct word 3-grams in a window; real speech ≈ 0.9+
CANDIDATE_SIMILARITY = 0.7  # a neighbouring passage (cosine) makes its item a duplicate candidate …
CANDIDATE_SHARE = 0.4  # … when it neighbours this share of our sampled passages
DUP_SAMPLE = 24  # passages sampled per item (each is one index lookup)
SHINGLE_WORDS = 4
DUP_CONTAINMENT = 0.3  # share of our word 4-grams found in the other item
NORM_TOLERANCE = 1e-3

_WORD = re.compile(r"[\w']+")


def _words(text_: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text_)]


# ---------------------------------------------------------------------------------------------
# The gates (pure functions, each returns reasons)
# ---------------------------------------------------------------------------------------------


def speech_rate_reasons(segments: Sequence[Segment], duration_s: float | None) -> list[str]:
    if not segments:
        return ["the transcript is empty"]
    spoken_until = max(s.end for s in segments)
    duration = duration_s or spoken_until
    minutes = duration / 60.0
    if minutes < MIN_MINUTES_FOR_RATE:
        return []
    words = sum(len(_words(s.text)) for s in segments)
    wpm = words / minutes
    low, high = WPM_RANGE
    reasons = []
    if wpm < low:
        reasons.append(
            f"only {wpm:.0f} words a minute over {minutes:.0f} min (a talk has {low:.0f}–{high:.0f}): "
            "most of the speech is missing"
        )
    elif wpm > high:
        reasons.append(f"{wpm:.0f} words a minute over {minutes:.0f} min is faster than anyone speaks (≤ {high:.0f})")
    if duration_s and spoken_until < MIN_COVERAGE * duration_s:
        reasons.append(
            f"the transcript stops at {spoken_until / 60:.0f} min of {duration_s / 60:.0f} min "
            f"({spoken_until / duration_s:.0%} of the audio)"
        )
    return reasons


def repetition_reasons(segments: Sequence[Segment]) -> list[str]:
    reasons = []
    # 1. The same line again and again.
    run, longest, longest_text = 1, 1, ""
    previous = None
    for seg in segments:
        norm = " ".join(_words(seg.text))
        if norm and norm == previous:
            run += 1
            if run > longest:
                longest, longest_text = run, seg.text.strip()
        else:
            run = 1
        previous = norm
    if longest >= REPEAT_RUN:
        reasons.append(f"the line “{longest_text[:60]}” repeats {longest} times in a row (a transcription loop)")
    # 2. A stretch made of the same few words (loops inside long segments).
    words = [w for s in segments for w in _words(s.text)]
    step = REPEAT_WINDOW_WORDS // 2
    for start in range(0, max(1, len(words) - REPEAT_WINDOW_WORDS + 1), step):
        window = words[start : start + REPEAT_WINDOW_WORDS]
        if len(window) < REPEAT_WINDOW_WORDS:
            break
        grams = list(zip(window, window[1:], window[2:]))
        distinct = len(set(grams)) / len(grams)
        if distinct < MIN_DISTINCT_TRIGRAMS:
            gram = Counter(grams).most_common(1)[0][0]
            top = " ".join(gram)
            at = _time_of_word(segments, start + grams.index(gram))
            reasons.append(
                f"repeated phrase “{top} …” around {at // 60:.0f}:{at % 60:02.0f} "
                f"(only {distinct:.0%} of its word triples are distinct): likely a transcription loop"
            )
            break
    return reasons


def _time_of_word(segments: Sequence[Segment], index: int) -> float:
    seen = 0
    for seg in segments:
        seen += len(_words(seg.text))
        if seen > index:
            return seg.start
    return segments[-1].start if segments else 0.0


def embedding_reasons(vectors: np.ndarray, n_chunks: int) -> list[str]:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != n_chunks:
        return [f"{vectors.shape[0] if vectors.ndim else 0} vectors for {n_chunks} passages"]
    if n_chunks == 0:
        return []
    if not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors)).any(axis=1).sum())
        return [f"{bad} passage vector(s) hold NaN or infinity"]
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        return [f"{int(off.sum())} passage vector(s) are not unit length (norms {norms.min():.3f}–{norms.max():.3f})"]
    if n_chunks >= 3 and float(np.ptp(vectors, axis=0).max()) < 1e-6:
        return ["every passage got the same vector: the embedding model is not reading the text"]
    return []


# ---------------------------------------------------------------------------------------------
# Near-duplicates (needs the database)
# ---------------------------------------------------------------------------------------------


def _spaces_for(session: Session, dim: int) -> list[int]:
    return [int(s) for s in session.scalars(select(EmbeddingSpace.id).where(EmbeddingSpace.dim == dim))]


def shingles(texts: Sequence[str], n: int = SHINGLE_WORDS) -> set[tuple[str, ...]]:
    words = [w for t in texts for w in _words(t)]
    return set(zip(*(words[i:] for i in range(n))))


def _candidates(session: Session, item_id: int, vectors: np.ndarray) -> list[int]:
    """Other items whose passages sit next to many of ours in vector space (cheap, index-backed)."""
    dim = int(vectors.shape[1])
    spaces = _spaces_for(session, dim)
    if not spaces:
        return []  # nothing indexed in this vector space yet
    picks = np.unique(np.linspace(0, len(vectors) - 1, min(DUP_SAMPLE, len(vectors))).round().astype(int))
    # dim and space ids are integers from our own table: inlined so the partial HNSW index applies.
    queries = [
        text(
            f"SELECT media_item_id, 1 - (embedding::vector({dim}) <=> CAST(:v AS vector({dim}))) AS sim "
            f"FROM chunks WHERE embedding_space_id = {sid} AND media_item_id <> :item "
            f"ORDER BY embedding::vector({dim}) <=> CAST(:v AS vector({dim})) LIMIT 3"
        )
        for sid in spaces
    ]
    votes: Counter[int] = Counter()
    for i in picks:
        near: set[int] = set()
        for q in queries:
            near.update(int(o) for o, sim in session.execute(q, {"v": vectors[i], "item": item_id}) if sim >= CANDIDATE_SIMILARITY)
        votes.update(near)
    return [other for other, n in votes.most_common(3) if n >= CANDIDATE_SHARE * len(picks)]


def duplicate_reasons(session: Session, item_id: int, chunk_texts: Sequence[str], vectors: np.ndarray) -> list[str]:
    """Is most of this item already indexed as one other item (a re-upload, or a clip of a longer talk)?

    Vectors find candidates; the words decide. Measured on the real transcripts: a clip
    shares 100% of its word 4-grams with its source, a re-transcription with 20% of the
    words changed still ≈ 45%, two different talks ≈ 2%. Passage vectors alone do not
    separate these (a clip's passages are cut at other seconds: cosine 0.67–0.97 to the
    source, while unrelated talks reach 0.77).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    ours = shingles(chunk_texts)
    if vectors.ndim != 2 or len(vectors) == 0 or not ours:
        return []
    for other in _candidates(session, item_id, vectors):
        item = session.get(MediaItem, other)
        if item is None or item.status != ItemStatus.INDEXED:
            continue
        theirs = shingles(session.scalars(select(Chunk.text).where(Chunk.media_item_id == other).order_by(Chunk.idx)).all())
        share = len(ours & theirs) / len(ours)
        if share >= DUP_CONTAINMENT:
            return [
                f"near-duplicate of item {other} “{item.title[:80]}”: "
                f"{share:.0%} of its word sequences are already indexed there (a re-upload or a clip)"
            ]
    return []


# ---------------------------------------------------------------------------------------------
# The pipeline's entry point
# ---------------------------------------------------------------------------------------------


def check(session: Session, item_id: int, transcript: Transcript, chunk_texts: list[str], vectors: np.ndarray) -> list[str]:
    """Every gate's reasons for holding the item for review; [] = index it."""
    item = session.get(MediaItem, item_id)
    duration = (item.duration_s if item is not None else None) or transcript.audio_seconds
    reasons = speech_rate_reasons(transcript.segments, duration)
    reasons += repetition_reasons(transcript.segments)
    vector_problems = embedding_reasons(vectors, len(chunk_texts))
    reasons += vector_problems
    if not vector_problems:
        reasons += duplicate_reasons(session, item_id, chunk_texts, vectors)
    return reasons
