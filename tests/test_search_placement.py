"""Every moment a viewer is shown has its link and snippet placed, answered or only related.

search() judges the grouped moments before it places their links and snippets (the sentence
locator and the highlighting run only for the moments the verdict keeps: bench/search_profile.py
measures it). Real Postgres, real embeddings, the seeded Chaffee passages with their timed
segments.
"""
from __future__ import annotations

import re

import pytest

from core.db import session_scope
from core.search import Verdict, cache, search
from core.search.moments import link_second
from tests.test_search_seed import seed_archive

pytestmark = pytest.mark.slow

# Questions the archive answers, and ones it does not (their moments are shown as related).
QUERIES = ["oxalate dumping", "carnivore diet and sleep", "knitting patterns", "autism in kids on carnivore",
           "vitiligo autoimmune carnivore results", "how do I prepare liver"]


@pytest.fixture()
def archive(db):
    cache.clear()
    with session_scope() as s:
        return {k: v.id for k, v in seed_archive(s).items()}


def test_every_shown_moment_opens_at_its_sentence_with_a_snippet_whatever_the_verdict(archive):
    verdicts, related = set(), 0
    with session_scope() as s:
        for q in QUERIES:
            r = search(s, q, log=False, use_cache=False)
            verdicts.add(r.verdict.verdict)
            for _, m in r.hits():
                related += not m.answers
                assert m.link and m.snippet_html, (q, m)
                # The seeded items have timed segments: the link opens at the answer sentence.
                assert m.sentence and m.sentence_start_s is not None, (q, m)
                assert m.start_s == link_second(m.sentence_start_s), (q, m)
                assert re.search(rf"[?&]t={int(m.start_s)}s?(&|$)", m.link), (q, m)  # YouTube or the app's player
    assert Verdict.ANSWERED in verdicts and verdicts - {Verdict.ANSWERED}, verdicts
    assert related > 0  # some moments were shown as related only: they are placed too
