"""Values derived from the archive are built once per content version and rebuilt when it moves."""
from __future__ import annotations

from core.db import session_scope
from core.search import cache
from core.search.preprocess import vocabulary
from core.search.retrieval import keyword_stats


def test_a_value_is_built_once_per_version_and_rebuilt_when_the_version_changes():
    builds: list[str] = []
    latest = cache.per_version(lambda session: builds.append(session) or len(builds))
    assert latest("s", ("v", 1)) == 1
    assert latest("s", ("v", 1)) == 1  # same version: no second build
    assert latest("s", ("v", 2)) == 2
    assert latest("s", ("v", 1)) == 3  # one version kept at a time: going back rebuilds
    latest.clear()
    assert latest("s", ("v", 1)) == 4 and len(builds) == 4


def test_the_search_rebuilds_its_vocabulary_and_keyword_statistics_after_the_content_changes(db):
    with session_scope() as s:
        before = cache.content_version(s)
        stats, vocab = keyword_stats(s, before), vocabulary(s, before)
        assert keyword_stats(s, before) is stats and vocabulary(s, before) is vocab
        cache.invalidate(s)  # what indexing, deleting or an admin's edit does
        after = cache.content_version(s)
        assert after != before
        assert keyword_stats(s, after) is not stats and vocabulary(s, after) is not vocab
