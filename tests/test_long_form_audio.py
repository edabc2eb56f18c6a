"""No lost speech: on a long-form call (real speakers, pauses, a long break) the default
decoding keeps every passage, each at its own time."""
from __future__ import annotations

import pytest

from core.config import load_settings
from core.transcribe.local import LocalWhisperEngine
from tests import longform
from tests.conftest import shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def call(tmp_path_factory) -> longform.LongForm:
    return longform.build(shared_path("audio"), tmp_path_factory.mktemp("longform") / "call.wav")


def test_the_fixture_is_a_long_form_call(call):
    assert 120 <= call.duration_s <= 300
    assert len(call.passages) == 8
    gaps = [b.start - a.end for a, b in zip(call.passages, call.passages[1:])]
    assert min(gaps) >= 2.0 and max(gaps) >= longform.SILENCE_S


def test_the_default_decoding_keeps_every_passage(call):
    # The engine exactly as a worker builds it from default settings.
    engine = LocalWhisperEngine.from_settings(load_settings())
    transcript = engine.transcribe(call.path)
    recalls = longform.passage_recalls(call, transcript.segments)
    lost = {name: round(r, 2) for name, r in recalls.items() if r < 0.5}
    assert not lost, f"passages missing from the transcript (word recall in their time span): {lost}"
    heard = " ".join(s.text for s in transcript.segments)
    assert longform.word_recall(call.reference, heard) >= 0.9  # tiny.en mishears ~5 % of words ...
    assert longform.words_lost(call.reference, heard) < 0.02  # ... but loses almost none
    # Nothing is invented in the 30 s break.
    brk = (call.passages[3].end + 1.0, call.passages[4].start - 1.0)
    assert not [s for s in transcript.segments if s.start >= brk[0] and s.end <= brk[1]]


def test_word_recall_counts_a_dropped_passage():
    ref = "one two three four five six seven eight"
    assert longform.word_recall(ref, ref) == 1.0
    assert longform.word_recall(ref, "one two three four") == 0.5
    assert longform.word_recall(ref, "five six seven eight one two") == 0.5  # in order only
    assert longform.words_lost(ref, "one two three four") == 0.5
    assert longform.words_lost(ref, "one too three for five six seven ate") == 0.0  # misheard, not lost
