"""Search as a user meets it: real Postgres + pgvector, real MiniLM embeddings, real Chaffee transcripts."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select, text

from core.db import session_scope
from core.models import Feedback, LedgerEntry, MediaItem
from core.search import (
    QueryError,
    SearchFilters,
    answer,
    autocomplete,
    cache,
    deep_link,
    feedback_summary,
    get_synonyms,
    judgments,
    log_query,
    record_feedback,
    search,
    set_synonyms,
    trending,
)
from core.search.engine import player_item, speakers_list
from core.search.retrieval import vector_candidates
from tests.test_search_seed import A, Passage, seed_archive

pytestmark = pytest.mark.slow
MAY_2024 = datetime(2024, 5, 1, tzinfo=timezone.utc)


@pytest.fixture()
def archive(db):
    cache.clear()
    with session_scope() as s:
        items = seed_archive(s)
        ids = {k: v.id for k, v in items.items()}
    return ids


def _titles(response) -> list[str]:
    return [g.title for g in response.groups]


def test_a_question_finds_the_moment_that_answers_it(archive):
    with session_scope() as s:
        r = search(s, "what does he say about Crohn's disease going into remission?")
    top = r.groups[0]
    assert top.media_item_id == archive["crohns"]
    best = top.moments[0]
    assert 300 <= best.start_s <= 765, best  # inside the Crohn's answer, not the start of the video
    assert best.link == f"https://www.youtube.com/watch?v={A}&t={int(best.start_s)}s"
    assert re.fullmatch(r"\d+:\d\d", best.timestamp)
    # The CLI's way through the results: (video, moment) pairs in display order.
    pairs = list(r.hits())
    assert pairs[0] == (top, best) and len(pairs) == sum(len(g.moments) for g in r.groups)


def test_hits_are_grouped_per_video_with_up_to_three_merged_moments(archive):
    with session_scope() as s:
        r = search(s, "electrolytes magnesium cramps and drinking water", k=10)
    ids = [g.media_item_id for g in r.groups]
    assert len(ids) == len(set(ids))
    for g in r.groups:
        assert 1 <= len(g.moments) <= 3
        assert [m.score for m in g.moments] == sorted((m.score for m in g.moments), reverse=True)
        spans = sorted((m.start_s, m.end_s) for m in g.moments)
        # Touching chunks were merged: no two moments of one video overlap.
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    assert r.groups[0].media_item_id == archive["crohns"]


def test_hidden_items_never_reach_viewers(archive):
    query = "muscle soreness after workouts and plant toxins"
    with session_scope() as s:
        admin = search(s, query, include_hidden=True)  # cached first, as an admin
        assert archive["hidden"] in [g.media_item_id for g in admin.groups]
        viewer = search(s, query)
        assert archive["hidden"] not in [g.media_item_id for g in viewer.groups]
        for mode in ("keyword", "vector", "hybrid"):
            assert "Private coaching call (unpublished)" not in _titles(search(s, "private coaching call", mode=mode))
        assert player_item(s, archive["hidden"]) is None
        assert player_item(s, archive["hidden"], include_hidden=True) is not None
        assert "Jeff Prosperi" not in speakers_list(s)
        for _ in range(3):
            log_query(s, "private coaching call", 1, 5.0, verdict="answered")
        assert not any("private" in x.text.lower() for x in autocomplete(s, "priv"))
        assert not any("private" in t.query for t in trending(s))
        assert any("private" in t.query for t in trending(s, include_hidden=True))
        resp = search(s, query)
        assert all(c.media_item_id != archive["hidden"] for c in answer(s, resp, use_chat=False).clips)


def test_hiding_an_item_removes_it_from_cached_results(archive):
    query = "lectins and Hashimoto's antibodies"
    with session_scope() as s:
        first = search(s, query)
        assert archive["lectins"] in [g.media_item_id for g in first.groups]
        assert search(s, query).cached  # the same search again comes from the cache
    with session_scope() as s:
        s.get(MediaItem, archive["lectins"]).visible = False
    with session_scope() as s:
        again = search(s, query)
    assert not again.cached
    assert archive["lectins"] not in [g.media_item_id for g in again.groups]


def test_new_content_is_found_once_indexed(archive):
    query = "deuterium"
    with session_scope() as s:
        before = search(s, query, mode="keyword")
    assert before.groups == []
    extra = Passage("deuterium", A, ((4768, 4895),), "upload", "Deuterium special", MAY_2024, 600)
    with session_scope() as s:
        seed_archive(s, [extra])
        cache.invalidate(s)  # what the pipeline calls after indexing an item
    with session_scope() as s:
        after = search(s, query, mode="keyword")
    assert _titles(after) == ["Deuterium special"]


def test_filters_change_the_results(archive):
    q = "diet and autoimmune disease"
    with session_scope() as s:
        everything = search(s, q)
        assert len(everything.groups) >= 2
        zoom = search(s, q, filters=SearchFilters(sources=("zoom",)))
        assert [g.source_kind for g in zoom.groups] == ["zoom"] and zoom.groups[0].moments
        in_2024 = search(s, q, filters=SearchFilters(date_from=date(2024, 1, 1), date_to=date(2024, 12, 31)))
        assert [g.media_item_id for g in in_2024.groups] == [archive["crohns"]]
        long_only = search(s, q, filters=SearchFilters(min_duration_s=1.5 * 3600))
        assert [g.media_item_id for g in long_only.groups] == [archive["crohns"]]
        short_only = search(s, q, filters=SearchFilters(max_duration_s=3600))
        assert [g.media_item_id for g in short_only.groups] == [archive["lectins"]]
        steven = search(s, q, filters=SearchFilters(speaker="steven"))
        assert [g.media_item_id for g in steven.groups] == [archive["lectins"]]
        assert "Steven Bowen" in steven.groups[0].moments[0].speakers


def test_sort_by_date_puts_the_newest_video_first(archive):
    with session_scope() as s:
        r = search(s, "carnivore diet", sort="date")
    dates = [g.published_at for g in r.groups]
    assert dates == sorted(dates, reverse=True) and len(dates) >= 2


def test_misspellings_and_filler_are_handled(archive):
    with session_scope() as s:
        r = search(s, "what does Dr. Chaffee say about electrolites and crmaps")
    assert r.prepared.cleaned.lower().startswith("electrolytes and")
    assert ("electrolites", "electrolytes") in r.prepared.corrections
    assert r.corrected_query
    assert r.groups[0].media_item_id == archive["crohns"]
    with session_scope() as s:  # real words the archive lacks are left alone
        assert search(s, "seed oils").prepared.corrections == ()


def test_admin_synonyms_widen_keyword_search(archive):
    with session_scope() as s:
        assert "seed oils" in get_synonyms(s)  # the built-in domain list
        assert search(s, "IBD", mode="keyword").groups == []
        saved = set_synonyms(s, {"IBD": "Crohn's disease, colitis"})
        assert saved == {"ibd": ["crohn's disease", "colitis"]}
    with session_scope() as s:
        r = search(s, "IBD", mode="keyword")
    assert r.groups and r.groups[0].media_item_id == archive["crohns"]
    # Found through the synonym only: its words are marked, with the lighter synonym mark.
    assert '<mark class="syn">' in r.groups[0].moments[0].snippet_html


def test_bad_queries_get_clear_messages(archive):
    with session_scope() as s:
        with pytest.raises(QueryError, match="empty"):
            search(s, "   ")
        with pytest.raises(QueryError, match="long"):
            search(s, "x" * 5000)


def test_snippets_mark_matches_and_escape_html(db):
    evil = Passage("evil", A, ((300, 400),), "upload", "<b>Upload</b>", MAY_2024, 100)
    with session_scope() as s:
        item = seed_archive(s, [evil])["evil"]
        s.execute(text("UPDATE chunks SET text = '<script>alert(1)</script> ' || text WHERE media_item_id = :i"), {"i": item.id})
        # Snippets are cut from the timed segments around the answer sentence: poison those too.
        s.execute(text("UPDATE transcript_segments SET text = '<script>alert(1)</script> ' || text WHERE media_item_id = :i"),
                  {"i": item.id})
        item.media_path = "/media/evil.mp4"
        cache.invalidate(s)
    with session_scope() as s:
        r = search(s, "script alert Crohn's", mode="keyword")
    html_ = r.groups[0].moments[0].snippet_html
    assert "<script>" not in html_ and "&lt;" in html_ and "<mark>" in html_
    # A local file opens in the app's own player at the second.
    assert r.groups[0].moments[0].link.startswith(f"/?play={item.id}&t=")


def test_typed_words_get_the_strong_mark_and_synonym_words_the_light_one_all_escaped():
    from core.search.shaping import highlight, snippet_window

    out = highlight("<b>Seed</b> oils & canola oil", ["seed", "oils"], ["canola", "oil", "vegetable"])
    # "oil" is also a typed word's stem (oils): typed wins; only "canola" came from the synonym alone.
    assert out == '&lt;b&gt;<mark>Seed</mark>&lt;/b&gt; <mark>oils</mark> &amp; <mark class="syn">canola</mark> <mark>oil</mark>'
    # The snippet starts near the first typed word, even when a synonym is said earlier.
    text_ = " ".join(["canola"] + ["filler"] * 100 + ["seed"] + ["filler"] * 100)
    assert snippet_window(text_, ["seed"], 40, synonyms=["canola"]).split().index("seed") == 16
    assert snippet_window(text_, ["absent"], 40, synonyms=["canola"]).startswith("canola")


def test_deep_links():
    yt = MediaItem(id=1, url="https://youtu.be/48fTLPbE5JA", media_path=None)
    assert deep_link(yt, 123.9) == "https://www.youtube.com/watch?v=48fTLPbE5JA&t=123s"
    local = MediaItem(id=7, url="file:///x.mp4", media_path="/media/x.mp4")
    assert deep_link(local, 61) == "/?play=7&t=61"


def test_filtered_vector_search_still_fills_k(archive):
    """With a filter, the iterative HNSW scan keeps walking until k rows pass it."""
    from core.embeddings import get_embedder
    from core.models import EmbeddingSpace

    with session_scope() as s:
        space = s.scalars(select(EmbeddingSpace)).one()
        n_lectins = s.execute(text("SELECT count(*) FROM chunks WHERE media_item_id = :i"), {"i": archive["lectins"]}).scalar()
        qv = get_embedder().embed_query("carnivore diet for athletes")
        # A table this small would otherwise be scanned (or its space index bitmap-scanned).
        s.execute(text("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off"))
        plan = "\n".join(r[0] for r in s.execute(
            text(f"EXPLAIN SELECT id FROM chunks c WHERE c.embedding_space_id = {space.id} "
                 f"ORDER BY c.embedding::vector({space.dim}) <=> CAST(:q AS vector({space.dim})) LIMIT 5"), {"q": qv}))
        assert f"ix_chunks_hnsw_space_{space.id}" in plan
        got = vector_candidates(s, qv, space_id=space.id, dim=space.dim, limit=20, ef_search=5,
                                filters=SearchFilters(sources=("zoom",)))
        assert len(got) == n_lectins  # every visible Zoom chunk, though none is near the query


def test_autocomplete_suggests_titles_and_popular_queries(archive):
    with session_scope() as s:
        for q, n in (("calcium supplements", 3), ("calcium and bones", 2), ("calcification of arteries", 1)):
            for _ in range(n):
                log_query(s, q, 4, 10.0, verdict="answered")
        texts = [x.text for x in autocomplete(s, "calc")]
        assert texts[:2] == ["calcium supplements", "calcium and bones"]
        assert "calcification of arteries" not in texts  # asked once: may be personal, never suggested
        assert "Carnivore for athletes and youth" in [x.text for x in autocomplete(s, "athl")]


def test_trending_keeps_no_personal_data(archive):
    with session_scope() as s:
        for _ in range(3):
            log_query(s, "Email me at jane.doe@example.com about GOUT, call +1 555 123 4567", 2, 12.0, verdict="answered")
        log_query(s, "gout", 2, 8.0, verdict="answered")
        stored = s.execute(text("SELECT DISTINCT query FROM query_log")).scalars().all()
        assert all("@" not in q and "555" not in q for q in stored)
        top = trending(s)
    assert top[0].count == 3 and "gout" in top[0].query


def test_votes_are_stored_and_summarised(archive):
    with session_scope() as s:
        r = search(s, "Crohn's disease remission")
        moment = r.groups[0].moments[0]
        record_feedback(s, r.query, moment.chunk_id, +1)
        record_feedback(s, r.query, moment.chunk_id, +1)
        record_feedback(s, r.query, r.groups[-1].moments[-1].chunk_id, -1)
    with session_scope() as s:
        rows = feedback_summary(s)
        assert rows[0].up == 2 and rows[0].title == r.groups[0].title
        j = {(x.external_id, x.relevant) for x in judgments(s)}
        assert (A, True) in j
        assert s.scalar(select(text("count(*)")).select_from(Feedback)) == 3


def test_extractive_answer_cites_clips_at_their_second(archive):
    with session_scope() as s:
        r = search(s, "should I take calcium supplements")
        ans = answer(s, r, use_chat=False)
    assert ans.engine == "extractive" and 1 <= len(ans.sentences) <= 3
    by_no = {c.number: c for c in ans.clips}
    for sent in ans.sentences:
        clip = by_no[sent.clip]
        assert clip.start_s - 1 <= sent.start_s <= clip.end_s
        assert sent.link.endswith(f"&t={int(sent.start_s)}s")
    assert "calcium" in " ".join(x.text for x in ans.sentences).lower()


def test_chat_answer_keeps_only_cited_sentences_and_books_its_cost(archive):
    from core.config import load_settings
    from tests.fakes.openai_server import FakeOpenAI

    reply = "Diet can put Crohn's disease into remission [1]. This sentence cites nothing. Made up [9]."
    with FakeOpenAI(chat_reply=reply) as fake:
        settings = load_settings(openai_base_url=fake.base_url, openai_api_key="k", openai_chat_model="gpt-test")
        with session_scope() as s:
            r = search(s, "Crohn's disease remission")
            ans = answer(s, r, settings=settings)
        sent = fake.requests_to("/v1/chat/completions")[0].json
    assert ans.engine == "chat" and [x.text for x in ans.sentences] == ["Diet can put Crohn's disease into remission."]
    assert ans.sentences[0].link == ans.clips[0].link
    assert "[1]" in sent["messages"][1]["content"]  # the model saw numbered clips
    with session_scope() as s:
        row = s.scalars(select(LedgerEntry).where(LedgerEntry.engine == "chat")).one()
    assert row.tokens == ans.tokens > 0 and float(row.usd) > 0


def test_chat_failure_falls_back_to_quoted_sentences(archive):
    from core.config import load_settings
    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as fake:
        fake.fail_next(5, status=500)
        settings = load_settings(openai_base_url=fake.base_url, openai_api_key="k", openai_chat_model="gpt-test")
        with session_scope() as s:
            ans = answer(s, search(s, "Crohn's disease remission"), settings=settings)
    assert ans.engine == "extractive" and ans.sentences and any("failed" in n for n in ans.notes)


def test_fusion_ranks_by_weighted_reciprocal_rank():
    from core.search.fusion import rrf
    from core.search.records import Candidate

    vector = [Candidate(1, 1, 0.9), Candidate(2, 2, 0.8)]
    keyword = [Candidate(2, 1, 7.0), Candidate(3, 2, 5.0)]
    both = rrf({"vector": vector, "keyword": keyword}, {"vector": 1.0, "keyword": 1.0}, 30)
    assert [cid for cid, _ in both][0] == 2  # found by both retrievers beats first place in one
    only_vector = rrf({"vector": vector, "keyword": keyword}, {"vector": 1.0, "keyword": 0.0}, 30)
    assert [cid for cid, _ in only_vector] == [1, 2]


def test_convex_fusion_keeps_how_strongly_each_side_matched():
    from core.search.fusion import convex

    # (cosine, keyword share): a near-miss on meaning alone, a chunk with every query word, a weak one.
    scores = {1: (0.62, 0.0), 2: (0.45, 1.0), 3: (0.30, 0.2)}
    assert [cid for cid, _ in convex(scores, 0.6)] == [2, 1, 3]
    assert [cid for cid, _ in convex(scores, 1.0)] == [1, 2, 3]  # all vector: cosine order
    assert [cid for cid, _ in convex(scores, 0.0)] == [2, 3, 1]  # all keyword
    # A negative cosine means "unrelated", no worse than 0; equal scores keep a stable order.
    assert convex({5: (0.0, 0.5), 4: (-0.3, 0.5)}, 0.6) == [(4, 0.2), (5, 0.2)]


@pytest.mark.parametrize("term", ["epilepsy", "exponential"])
def test_a_rare_word_leads_to_the_moment_that_says_it(archive, term):
    """One rare word carries little meaning for the embedding model (its nearest chunk is about
    something else); hybrid search still opens first at the moment where the word is said."""
    with session_scope() as s:
        r = search(s, term, log=False)
        first = r.groups[0].moments[0]
        said = s.execute(
            text("SELECT text FROM chunks WHERE media_item_id = :m AND start_s < :e AND end_s > :s"),
            {"m": r.groups[0].media_item_id, "s": first.start_s, "e": first.end_s},
        ).scalars().all()
    assert any(term in t.lower() for t in said), (first.start_s, first.end_s)


def test_hybrid_scores_each_candidate_on_both_sides(archive):
    """A chunk only one retriever returned is still scored by the other (real cosine, real keyword share)."""
    import numpy as np

    from core.embeddings import get_embedder
    from core.search.engine import _space
    from core.search.retrieval import keyword_candidates, keyword_query, keyword_stats, rescore

    query = "epilepsy"
    emb = get_embedder()
    with session_scope() as s:
        sid, dim = _space(s, emb)
        qv = np.asarray(emb.embed_query(query), dtype=np.float32)
        kq = keyword_query(s, query, stats=keyword_stats(s, cache.content_version(s)))
        kw = [c.chunk_id for c in keyword_candidates(s, kq, limit=5)]
        vec = [c.chunk_id for c in vector_candidates(s, qv, space_id=sid, dim=dim, limit=5)]
        scores = rescore(s, sorted(set(kw) | set(vec)), kq, qv, space_id=sid, dim=dim)
        stored = {cid: (np.asarray(e.to_list(), dtype=np.float32), t) for cid, e, t in
                  s.execute(text("SELECT id, embedding, text FROM chunks WHERE id = ANY(:ids)"), {"ids": list(scores)})}
    assert set(scores) == set(kw) | set(vec)
    for cid, (cos, share) in scores.items():
        e, body = stored[cid]
        assert cos == pytest.approx(float(e @ qv / np.linalg.norm(e) / np.linalg.norm(qv)), abs=1e-4)
        assert (share > 0) == ("epilep" in body.lower())  # only chunks holding the word get a keyword share
        assert 0.0 <= share <= 1.0


def test_default_search_reranks_and_survives_a_missing_model(archive, tmp_path):
    from core.search.fusion import FusionConfig

    query = "what does he say about Crohn's disease going into remission?"
    with session_scope() as s:
        on = search(s, query, log=False, use_cache=False)  # the default: the cross-encoder over the top 3
        off = search(s, query, config=FusionConfig(rerank=False), log=False, use_cache=False)
        missing = search(s, query, config=FusionConfig(rerank=True, reranker=str(tmp_path)), log=False, use_cache=False)
    assert on.reranked and "rerank" in on.timings_ms
    assert not off.reranked and "rerank" not in off.timings_ms
    assert on.groups[0].media_item_id == archive["crohns"] and 300 <= on.groups[0].moments[0].start_s <= 765
    # A reranker folder without its model: results in fused order instead of an error page.
    assert not missing.reranked and missing.groups[0].media_item_id == archive["crohns"]


def test_invalidate_without_a_session_reaches_other_processes(archive):
    with session_scope() as s:
        before = cache.content_version(s)
    cache.invalidate()  # commits on its own, e.g. from the pipeline after an item is indexed
    with session_scope() as s:
        assert cache.content_version(s) != before
