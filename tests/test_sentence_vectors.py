"""Links placed by meaning: each transcript sentence's vector is stored at index time, and a
moment's link opens at the sentence that answers the question even when it shares no word with it.

The transcript goes through the real pipeline (core.pipeline.process_item with the real MiniLM
embedder, segments, chunks and sentence vectors written to the real embedded Postgres) and is
found through the real search(); the speech model is the only stand-in (tests/test_moments.py's
engine that hands over segments it was given).
"""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
from sqlalchemy import text

from core.db import session_scope
from core.records import Segment
from core.search import cache, search
from core.search.fusion import FusionConfig
from core.search.moments import AGREE_S, Sentence, choose_by_meaning
from core.sentence_index import backfill
from tests.test_moments import engine_with  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow

FILLER = [
    "Thanks everyone for being here on the call tonight.",
    "We have a long list of questions from the members this week.",
    "The weather has been cold and grey for most of the month.",
    "I spent the weekend fixing the fence behind the house.",
    "Let me share my screen so everyone can follow along.",
]
DECOY = "My neighbour sells meat at the farmers market on Saturdays."  # the question's word, not its answer
ANSWER = "Her Crohn's disease went into remission after three months on beef and water alone."
QUESTION = "can a meat diet calm an inflamed gut"
SHOW_ALL = replace(FusionConfig(), verdict_min_score=0.0, verdict_related_cosine=0.0)


def _segments() -> list[Segment]:
    lines = [FILLER[n % len(FILLER)] for n in range(24)]
    lines[10], lines[13] = DECOY, ANSWER  # 50 s and 65 s: one 45–60 s chunk holds both
    return [Segment(5.0 * n, 5.0 * n + 5.0, line) for n, line in enumerate(lines)]


def _link(item_id: int) -> tuple[int, str]:
    cache.clear()
    with session_scope() as s:
        # A one-passage archive of small talk: the verdict would call it "nothing", and the verdict is
        # not what this test is about (tests/test_verdict.py is): every moment is shown.
        r = search(s, QUESTION, log=False, use_cache=False, config=SHOW_ALL)
    moment = next(m for g, m in r.hits() if g.media_item_id == item_id)
    return int(re.search(r"[?&]t=(\d+)", moment.link).group(1)), moment.sentence


def test_a_paraphrased_question_opens_at_the_sentence_that_answers_it(engine_with, tmp_path):  # noqa: F811
    path = tmp_path / "members-call.wav"
    path.write_bytes(b"not read: the stand-in engine has the transcript")
    item = engine_with(path, "Members call", _segments())
    with session_scope() as s:
        stored = s.execute(text("SELECT count(*) FROM sentence_vectors WHERE media_item_id = :i"), {"i": item}).scalar()
    assert stored == 24  # one vector per sentence, written by the pipeline beside the chunks

    second, sentence = _link(item)
    assert 63 <= second <= 65, (second, sentence)  # the answer is said at 65 s
    assert sentence == ANSWER

    # An archive indexed before sentence vectors existed: its links go by the query's words
    # (the one sentence saying "meat") until the backfill has embedded its sentences.
    with session_scope() as s:
        s.execute(text("DELETE FROM sentence_vectors WHERE media_item_id = :i"), {"i": item})
    second, sentence = _link(item)
    assert sentence == DECOY and 48 <= second <= 50, (second, sentence)

    filled = backfill()
    assert (filled.items, filled.sentences, filled.remaining) == (1, 24, 0)
    second, sentence = _link(item)
    assert sentence == ANSWER and 63 <= second <= 65, (second, sentence)


def test_the_words_pick_wins_when_it_opens_the_same_answer_a_little_earlier():
    sents = [Sentence(0.0, 4.0, "a"), Sentence(4.0, 8.0, "b"), Sentence(8.0, 12.0, "c"), Sentence(30.0, 34.0, "d")]
    # The most similar sentence (c) is 4 s after the one where the query's words gather (b): b.
    assert choose_by_meaning(sents, [0.1, 0.2, 0.6, 0.3], 1) == 1
    # … but not when the words' pick is further than AGREE_S before it (d at 30 s), or after it.
    assert sents[3].start_s - sents[1].start_s > AGREE_S
    assert choose_by_meaning(sents, [0.1, 0.2, 0.3, 0.6], 1) == 3
    assert choose_by_meaning(sents, [0.6, 0.2, 0.3, 0.1], 1) == 0
    # Sentences without a stored vector never win; none at all: -1 (the words decide).
    assert choose_by_meaning(sents, [None, None, None, 0.1], -1) == 3
    assert choose_by_meaning(sents, [None] * 4, 1) == -1
