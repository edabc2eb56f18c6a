"""Quality gates: real talks pass; loops, lost speech, broken vectors and re-uploads are held for review."""
from __future__ import annotations

import random

import numpy as np
from sqlalchemy import insert

from core import quality
from core.catalog import get_or_create_source, register_item
from core.chunking import chunk_segments
from core.db import session_scope
from core.embeddings import ensure_space
from core.models import Chunk, MediaItem
from core.records import ItemInfo, Segment, Transcript
from tests.conftest import shared_path
from tests.fakes.fake_speech import speech_like
from tests.fakes.openai_server import fake_embedding

DIM = 256


class HashedWords:
    """A deterministic embedder (hashed bag of words): enough for nearest-neighbour lookups."""

    provider, model, dim = "test", "hashed-words", DIM

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.array([fake_embedding(t, DIM) for t in texts], dtype=np.float32)


def real_transcript(name: str) -> list[Segment]:
    from core.transcribe.captions import parse_caption_file

    return parse_caption_file(shared_path("transcripts", name))


def test_real_talks_pass_every_text_gate():
    for name in ("48fTLPbE5JA.srt", "RcBwvdVEAr8.srt"):
        segments = real_transcript(name)
        duration = max(s.end for s in segments) + 30
        assert quality.speech_rate_reasons(segments, duration) == []
        assert quality.repetition_reasons(segments) == []


def test_lost_speech_and_a_truncated_transcript_are_reported():
    segments = real_transcript("RcBwvdVEAr8.srt")
    duration = max(s.end for s in segments)
    sparse = segments[::6]  # five of six lines missing: ≈ 30 words a minute
    (reason,) = quality.speech_rate_reasons(sparse, duration)
    assert "words a minute" in reason and "missing" in reason
    head = [s for s in segments if s.end < 0.3 * duration]
    assert any("stops at" in r and "of the audio" in r for r in quality.speech_rate_reasons(head, duration))


def test_hallucination_loops_are_caught():
    talk = speech_like("talk", 600)
    looped = talk[:20] + [Segment(120 + i, 121 + i, "Thank you for watching.") for i in range(6)] + talk[20:]
    (reason,) = quality.repetition_reasons(looped)
    assert "repeats 6 times in a row" in reason
    # A loop inside one long segment (no two lines alike).
    inner = talk[:10] + [Segment(60, 90, " ".join(["and then we went back to the"] * 20))] + talk[10:]
    (reason,) = quality.repetition_reasons(inner)
    assert "repeated phrase" in reason and "1:00" in reason
    assert quality.repetition_reasons(talk) == []


def test_broken_embeddings_are_caught():
    good = np.array([fake_embedding(f"text {i} words", DIM) for i in range(4)], dtype=np.float32)
    assert quality.embedding_reasons(good, 4) == []
    nan = good.copy()
    nan[2, 5] = np.nan
    assert "NaN" in quality.embedding_reasons(nan, 4)[0]
    assert "unit length" in quality.embedding_reasons(good * 3, 4)[0]
    assert "same vector" in quality.embedding_reasons(np.repeat(good[:1], 4, axis=0), 4)[0]
    assert "3 vectors for 4 passages" in quality.embedding_reasons(good[:3], 4)[0]


def _index(segments: list[Segment], external_id: str, title: str) -> int:
    """Index an item the way the pipeline leaves it: chunks with vectors, status indexed."""
    chunks = list(chunk_segments(segments))
    vectors = HashedWords().embed_documents([c.text for c in chunks])
    with session_scope() as s:
        src = get_or_create_source(s, "upload", "Uploads", None)
        item = register_item(s, src, ItemInfo(external_id, title, f"file://{external_id}"))
        space = ensure_space(s, HashedWords())
        s.execute(insert(Chunk), [
            {"media_item_id": item.id, "idx": c.index, "start_s": c.start, "end_s": c.end, "text": c.text,
             "embedding": vectors[i], "embedding_space_id": space.id}
            for i, c in enumerate(chunks)
        ])
        item.status = "indexed"
        return item.id


def _check(segments: list[Segment], external_id: str, duration: float) -> list[str]:
    chunks = list(chunk_segments(segments))
    texts = [c.text for c in chunks]
    with session_scope() as s:
        src = get_or_create_source(s, "upload", "Uploads", None)
        item = register_item(s, src, ItemInfo(external_id, external_id, f"file://{external_id}", duration_s=duration))
        return quality.check(s, item.id, Transcript(segments, "local"), texts, HashedWords().embed_documents(texts))


def test_re_uploads_and_clips_are_near_duplicates_but_other_talks_are_not(db):
    talk = speech_like("the long talk", 3600)
    original = _index(talk, "original", "The long talk")
    # A clip: minutes 20–30, cut mid-line so its passages start at other seconds.
    clip = [Segment(s.start - 1203, s.end - 1203, s.text) for s in talk if 1203 <= s.start < 1800]
    (reason,) = _check(clip, "clip", 597)
    assert f"near-duplicate of item {original}" in reason and "The long talk" in reason
    # A re-upload transcribed by another engine: one word in six heard differently.
    rng = random.Random(3)
    retold = [Segment(s.start, s.end, " ".join(w if rng.random() > 0.17 else w + "s" for w in s.text.split())) for s in talk]
    assert any("near-duplicate" in r for r in _check(retold, "reupload", 3600))
    # A different talk on the same topics, by the same speaker's vocabulary: fine.
    assert _check(speech_like("another talk", 1800), "other", 1800) == []
    with session_scope() as s:
        assert s.get(MediaItem, original).status == "indexed"
