"""The verdict on every search, as a viewer meets it: real Postgres, real embeddings, real Chaffee passages.

Out-of-archive questions (their key word occurs nowhere in the transcripts) are told so in
words, get no cited answer and never teach autocomplete or trending; in-archive questions are
answered. Through the real CLI, the verdict is the first line printed.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.config import PROJECT_ROOT
from core.db import session_scope
from core.search import (
    FusionConfig,
    Verdict,
    answer,
    autocomplete,
    cache,
    fusion_config,
    search,
    set_fusion_config,
    trending,
)
from tests.test_search_seed import seed_archive

pytestmark = pytest.mark.slow


@pytest.fixture()
def archive(db):
    cache.clear()
    with session_scope() as s:
        return {k: v.id for k, v in seed_archive(s).items()}


@pytest.mark.parametrize("query,term", [("knitting", "knitting"), ("autism", "autism"), ("knitting patterns", "knitting")])
def test_an_out_of_archive_question_is_told_nothing_in_words_and_gets_no_answer(archive, query, term):
    with session_scope() as s:
        r = search(s, query, log=False)
        ans = answer(s, r, use_chat=False)
    v = r.verdict
    assert v.verdict is Verdict.NOTHING and not v.answered
    assert v.message.startswith("No passage in the archive mentions") and term in v.message
    assert term in v.missing_terms
    shown = [m for _, m in r.hits()]
    assert len(shown) <= 3 and not any(m.answers for m in shown)  # only a few, none presented as an answer
    assert ans.sentences == [] and ans.clips == [] and ans.engine == "none"
    assert ans.notes == [v.message]


@pytest.mark.parametrize("query,term", [("can i stop taking metformin if i go carnivore", "metformin"),
                                        ("does carnivore help with autism in kids?", "autism"),
                                        ("vitiligo autoimmune carnivore results", "vitiligo")])
def test_a_health_question_whose_term_is_nowhere_gets_no_answer_however_near_the_diet_talk(archive, query, term):
    # "carnivore" and "kids" are everywhere here: only the missing term tells these apart from real questions.
    with session_scope() as s:
        r = search(s, query, log=False)
        ans = answer(s, r, use_chat=False)
    assert not r.verdict.answered and term in r.verdict.missing_terms, r.verdict
    assert not any(m.answers for _, m in r.hits()) and ans.sentences == []


def test_only_a_missing_term_costs_the_answer_score_not_a_missing_everyday_word(archive):
    # "farmer" and "grandmother" are said nowhere in the seeded talks, but they are everyday words,
    # not the question's subject; "metformin" is a term.
    cfg = fusion_config(None)
    with session_scope() as s:
        for query, word, penalised in (("should a farmer take calcium supplements if he only eats meat", "farmer", False),
                                       ("my grandmother takes calcium supplements, should she stop", "grandmother", False),
                                       ("should I stop metformin and take calcium supplements", "metformin", True)):
            v = search(s, query, log=False).verdict
            assert word in v.missing_terms, (query, v.missing_terms)
            for e in v.evidence:
                expected = e.cosine + cfg.verdict_coverage_weight * e.coverage - (cfg.verdict_absent_penalty if penalised else 0)
                assert e.score == pytest.approx(expected, abs=1e-3), (query, e)


def test_no_chat_call_and_no_spend_for_an_out_of_archive_question(archive):
    from sqlalchemy import func, select

    from core.config import load_settings
    from core.models import LedgerEntry, Reservation
    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI(chat_reply="Autism improves on carnivore [1].") as fake:
        settings = load_settings(openai_base_url=fake.base_url, openai_api_key="k", openai_chat_model="gpt-test")
        with session_scope() as s:
            ans = answer(s, search(s, "autism", log=False), settings=settings)
        assert fake.requests_to("/v1/chat/completions", status=None) == []
    assert ans.sentences == [] and "autism" in ans.notes[0]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        assert s.scalar(select(func.count()).select_from(Reservation)) == 0


def test_an_in_archive_question_is_answered_by_the_moment_that_holds_it(archive):
    with session_scope() as s:
        r = search(s, "should I take calcium supplements if I only eat meat", log=False)
    assert r.verdict.verdict is Verdict.ANSWERED, r.verdict
    assert r.verdict.message.startswith("Answered in")
    answering = [m for _, m in r.hits() if m.answers]
    assert answering and "calcium" in answering[0].text.lower()
    assert r.verdict.cosine is not None and r.verdict.coverage > 0 and not r.verdict.missing_terms


def test_a_sibling_in_a_synonym_group_never_answers_for_the_word_asked(archive):
    # "plant toxins" groups oxalates and lectins: the keyword side widens to both, but a passage
    # on lectins does not answer a question on oxalates (one of the seeded passages names them).
    with session_scope() as s:
        r = search(s, "what does he say about oxalates", log=False)
    answering = [m for _, m in r.hits() if m.answers]
    assert answering, r.verdict
    assert all("oxalat" in m.text.lower() for m in answering), [m.text[:80] for m in answering]


def test_the_verdict_is_cached_with_the_response_and_the_thresholds_are_part_of_its_key(archive):
    query = "should I take calcium supplements if I only eat meat"
    with session_scope() as s:
        first = search(s, query, log=False)
        again = search(s, query, log=False)
    assert again.cached and again.verdict == first.verdict and first.verdict.answered
    with session_scope() as s:
        # An admin asks for more before a passage counts as an answer: nothing cached survives.
        set_fusion_config(s, verdict_min_score=1.99)
    with session_scope() as s:
        strict = search(s, query, log=False)
    assert not strict.cached and strict.verdict.verdict is Verdict.RELATED
    assert len(list(strict.hits())) <= fusion_config(None).verdict_related_moments
    assert strict.verdict.message == f"No passage in the archive answers “{query}”. The passages below are " \
                                     "related, but not an answer."


def test_autocomplete_and_trending_learn_from_the_verdict_not_the_number_of_moments(archive):
    with session_scope() as s:
        for _ in range(3):
            assert not search(s, "knitting patterns", use_cache=False).verdict.answered
            assert search(s, "calcium supplements", use_cache=False).verdict.answered
    with session_scope() as s:
        assert [x.text for x in autocomplete(s, "knit") if x.kind == "query"] == []
        assert "calcium supplements" in [x.text for x in autocomplete(s, "calc")]
        topics = [t.query for t in trending(s)]
    assert "calcium supplements" in topics and "knitting patterns" not in topics


def test_bad_thresholds_are_refused_in_words(db):
    with session_scope() as s:
        with pytest.raises(ValueError, match="answer score a passage needs' must be a number between 0 and 2"):
            set_fusion_config(s, verdict_min_score=2.5)
        with pytest.raises(ValueError, match="between 0 and 1"):
            set_fusion_config(s, verdict_absent_penalty=-0.1)
        with pytest.raises(ValueError, match="whole number from 0 to 10"):
            set_fusion_config(s, verdict_related_moments=50)
        s.rollback()
    with session_scope() as s:
        assert fusion_config(s) == FusionConfig()  # nothing was stored


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m core …` in a child process sharing the test's embedded database."""
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)


def test_the_cli_prints_the_verdict_on_its_first_line(archive):
    nothing = _cli("search", "knitting")
    assert nothing.returncode == 0, nothing.stderr
    lines = nothing.stdout.splitlines()
    assert lines[0] == "No passage in the archive mentions knitting."
    assert "Related, but not an answer" not in nothing.stdout or lines.index("Related, but not an answer:") > 0

    answered = _cli("search", "should I take calcium supplements if I only eat meat")
    assert answered.returncode == 0, answered.stderr
    first, rest = answered.stdout.splitlines()[0], answered.stdout
    assert first.startswith("Answered in") and "youtube.com/watch?v=" in rest
    assert "Related, but not an answer" not in rest


def test_the_admin_edits_the_verdict_thresholds_in_the_ranking_form_and_each_change_is_audited(db):
    from streamlit.testing.v1 import AppTest

    from core import audit

    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "admin_settings.py"), default_timeout=60)
    at.session_state["admin_user"] = "admin"
    at.run()
    score = next(n for n in at.number_input if n.label == "Answer score needed")
    assert score.value == pytest.approx(FusionConfig().verdict_min_score)  # the fitted default
    score.set_value(0.8)
    next(b for b in at.button if b.label == "Save ranking").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with session_scope() as s:
        assert fusion_config(s).verdict_min_score == pytest.approx(0.8)
        row = audit.list_entries(s, action="search.ranking")[0]
    assert row.before["verdict_min_score"] == pytest.approx(FusionConfig().verdict_min_score)
    assert row.after["verdict_min_score"] == pytest.approx(0.8)
