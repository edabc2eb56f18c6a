"""Search in a big archive reads what it needs, not every chunk: real Postgres, tens of thousands of
chunks written by SQL (the latency itself is printed by bench/search_latency.py, not asserted here).

The counters are PostgreSQL's own (pg_stat_user_tables): a sequential scan of chunks is what made a
question with a word the archive never says take 1.5 s at a million chunks.
"""
from __future__ import annotations

import pytest
from sqlalchemy import text

from core.catalog import get_or_create_source
from core.db import session_scope
from core.models import MediaItem
from core.search import cache
from core.search.retrieval import ROW_CAP, keyword_candidates, keyword_stats
from core.search.verdict import missing_lexemes, query_terms

CHUNKS = 30_000


@pytest.fixture()
def big_archive(db):
    cache.clear()
    with session_scope() as s:
        src = get_or_create_source(s, "youtube", "scale", "scale://test")
        item = MediaItem(source_id=src.id, external_id="big", title="A long talk", status="indexed",
                         url="https://www.youtube.com/watch?v=aaaaaaaaaaa", visible=True)
        s.add(item)
        s.flush()
        # Every chunk says "energy"; "teenagers" is said in a few; "maggots" nowhere.
        # Rows as wide as real ones (a 384-d vector each): what makes reading them all dear.
        s.execute(text(
            "INSERT INTO chunks (media_item_id, idx, start_s, end_s, text, embedding) "
            "SELECT :item, g, g * 45, g * 45 + 45, 'red meat gives steady energy all day long, chunk ' || g || "
            "CASE WHEN g % 5000 = 0 THEN ' as the teenagers found' ELSE '' END, "
            "CAST(array_fill(CAST(g % 7 + 1 AS real), ARRAY[384]) AS vector) "
            "FROM generate_series(1, :n) AS g"), {"item": item.id, "n": CHUNKS})
    with session_scope() as s:
        s.execute(text("ANALYZE chunks"))
        s.execute(text("ANALYZE media_items"))
    return item.id


def _chunk_reads(session) -> tuple[int, int]:
    """(sequential scans of chunks, rows fetched from chunks through indexes) so far."""
    session.execute(text("SELECT pg_stat_force_next_flush()"))
    session.commit()
    session.execute(text("SELECT pg_stat_clear_snapshot()"))
    row = session.execute(text(
        "SELECT seq_scan, coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'chunks'")).one()
    return int(row[0]), int(row[1])


def test_a_word_the_archive_never_says_is_found_missing_without_reading_every_chunk(big_archive):
    with session_scope() as s:
        terms = query_terms(s, "maggots teens", keyword_stats(s, cache.content_version(s)))
        seq_before, _ = _chunk_reads(s)
        gone = missing_lexemes(s, terms, filters=None, include_hidden=False, query="maggots teens")
        seq_after, _ = _chunk_reads(s)
    assert gone == ["maggot"]  # "teens" is said as "teenagers" (the prefix probe found it)
    assert seq_after == seq_before, "the probes scanned the chunks table instead of its full-text index"


def test_a_word_in_every_chunk_scores_a_bounded_number_of_them(big_archive):
    with session_scope() as s:
        stats = keyword_stats(s, cache.content_version(s))
        _, fetched_before = _chunk_reads(s)
        got = keyword_candidates(s, "energy", limit=100, stats=stats)
        _, fetched_after = _chunk_reads(s)
    assert len(got) == 100 and len({c.chunk_id for c in got}) == 100
    assert fetched_after - fetched_before <= ROW_CAP + 100, f"scored {fetched_after - fetched_before} of {CHUNKS} chunks"
