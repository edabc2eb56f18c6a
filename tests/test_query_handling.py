"""Queries as people type them, through the real search() over a real embedded Postgres with real
transcripts: spelling that never replaces a real word, "Search instead for …", typed words before
synonyms, titles and descriptions (also of videos not transcribed yet), control characters."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text

from core.db import session_scope
from core.models import Feedback, MediaItem, QueryLogEntry, Source
from core.search import QueryError, autocomplete, cache, log_query, record_feedback, search, set_synonyms
from core.search.preprocess import vocabulary
from core.search.titles import TitleStatus
from tests.conftest import shared_path
from tests.test_search_seed import PASSAGES, A, Passage, seed_archive

pytestmark = pytest.mark.slow

# Real titles of the channel listing (../shared/data/youtube), used for items the test adds.
TMJ_ID, PREMIERE_ID, PASCAL_ID = "NZ6947ZwhYk", "E1Yk-o8xwjw", "He TRIPLED His Testosterone"


def _listing() -> dict[str, dict]:
    path = shared_path("youtube", "anthonychaffeemd_flat_playlist.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def _listed_item(session, source: Source, entry: dict, *, status: str, visible: bool = True) -> MediaItem:
    """A channel video as sync-channel lists it: title and description, no transcript yet."""
    item = MediaItem(
        source_id=source.id, external_id=entry["id"], title=entry["title"], description=entry.get("description"),
        url=f"https://www.youtube.com/watch?v={entry['id']}", duration_s=entry.get("duration"), status=status,
        visible=visible,
    )
    session.add(item)
    return item


@pytest.fixture()
def archive(db):
    cache.clear()
    listing = _listing()
    pascal = next(r for r in listing.values() if r["title"].startswith(PASCAL_ID))
    # An indexed video whose transcript (a real passage of another talk, where "risk" is said)
    # never says its title's words.
    titled = Passage("pascal", A, ((1060, 1200),), "upload", pascal["title"],
                     datetime(2024, 6, 1, tzinfo=timezone.utc), 3600, media_path="/media/pascal.mp4")
    with session_scope() as s:
        items = seed_archive(s, [*PASSAGES, titled])
        youtube = s.scalars(select(Source).where(Source.kind == "youtube")).one()
        # The rest of the real channel, listed by sync and waiting for transcription: 570 titles
        # whose common words ("carnivore", "diet") must not list them all.
        for vid, entry in listing.items():
            if vid not in (TMJ_ID, PREMIERE_ID, pascal["id"]):
                _listed_item(s, youtube, entry, status="queued")
        items["tmj"] = _listed_item(s, youtube, listing[TMJ_ID], status="queued")
        items["premiere"] = _listed_item(s, youtube, listing[PREMIERE_ID], status="queued", visible=False)
        s.flush()
        return {k: v.id for k, v in items.items()}


# ---------------------------------------------------------------------------------------------
# 1. Spelling correction never replaces a real word, and always offers the query as typed
# ---------------------------------------------------------------------------------------------


def test_a_real_english_word_is_never_corrected(archive):
    with session_scope() as s:
        vocab = vocabulary(s, cache.content_version(s))
        # The archive's own words alone would turn "rigs" into "risk" (said in the transcripts):
        # the bug this guards against.
        assert "risk" in vocab and "rigs" not in vocab and vocab.correct("rigs") == "risk"
        r = search(s, "bitcoin mining rigs")
        assert r.prepared.corrections == () and r.search_instead is None
        assert r.prepared.cleaned == "bitcoin mining rigs" and "risk" not in r.prepared.keyword
        for word in ("knitting", "autism", "seed", "jawbone", "satin", "grits"):  # real words, none of them said
            assert search(s, f"{word} and carnivore").prepared.corrections == (), word


def test_an_acronym_typed_in_capitals_is_never_corrected(archive):
    with session_scope() as s:
        vocab = vocabulary(s, cache.content_version(s))
        # What the archive's words alone would do ("ADHD" became "add" the same way, and the verdict
        # then read a question on ADHD as answered).
        assert vocab.correct("mtor") == "more" and vocab.correct("egcg") == "egg"
        r = search(s, "does meat raise MTOR, and is EGCG any good", log=False)
        assert r.prepared.corrections == () and r.search_instead is None
        assert "MTOR" in r.prepared.cleaned and "EGCG" in r.prepared.cleaned
        # A query typed all in capitals is still corrected: there, capitals say nothing.
        assert ("ELECTROLITES", "electrolytes") in search(s, "ELECTROLITES AND CRAMPS", log=False).prepared.corrections


def test_a_correction_offers_search_instead_for_what_was_typed(archive):
    typed = "what does Dr. Chaffee say about electrolites and crmaps"
    with session_scope() as s:
        r = search(s, typed)
        assert ("electrolites", "electrolytes") in r.prepared.corrections
        assert r.prepared.cleaned.startswith("electrolytes")
        assert r.search_instead == typed  # the page's "Search instead for …" link
        assert r.groups[0].media_item_id == archive["crohns"]
        exact = search(s, r.search_instead, correct=False)
        assert exact.prepared.corrections == () and exact.search_instead is None
        assert "electrolites" in exact.prepared.cleaned and "electrolytes" not in exact.prepared.keyword
        # The corrected and the exact search are cached apart.
        assert search(s, typed).prepared.corrections and not search(s, typed, correct=False).prepared.corrections


# ---------------------------------------------------------------------------------------------
# 2. The query's own words come before synonym expansions
# ---------------------------------------------------------------------------------------------


def test_typed_words_are_kept_apart_from_synonyms(archive):
    with session_scope() as s:
        set_synonyms(s, {"IBD": "Crohn's disease, colitis"})
    with session_scope() as s:
        r = search(s, "IBD remission")
    p = r.prepared
    assert p.typed_terms == ("ibd", "remission")
    assert p.terms[: len(p.typed_terms)] == p.typed_terms  # typed first: highlighted before synonyms
    assert {"crohn's", "disease", "colitis"} <= set(p.synonym_terms)
    assert not set(p.synonym_terms) & set(p.typed_terms)
    assert r.groups[0].media_item_id == archive["crohns"]


# ---------------------------------------------------------------------------------------------
# 3. Titles and descriptions are searchable
# ---------------------------------------------------------------------------------------------


def test_a_title_finds_its_video_even_when_the_transcript_never_says_it(archive):
    with session_scope() as s:
        said = s.execute(
            text("SELECT count(*) FROM chunks WHERE tsv @@ to_tsquery('english', 'pascal | johns | tripled')")
        ).scalar()
        assert said == 0
        for mode in ("hybrid", "keyword"):
            r = search(s, "Pascal Johns tripled his testosterone", mode=mode)
            assert r.titles and r.titles[0].media_item_id == archive["pascal"], mode
            assert r.titles[0].status is TitleStatus.TRANSCRIBED and r.titles[0].link.startswith("/?play=")


def test_a_listed_video_not_transcribed_yet_shows_as_queued(archive):
    with session_scope() as s:
        r = search(s, "how to fix TMJ jaw pain")
        match = next(t for t in r.titles if t.media_item_id == archive["tmj"])
        assert match.status is TitleStatus.QUEUED and match.status.label == "queued for transcription"
        assert match.link == f"https://www.youtube.com/watch?v={TMJ_ID}&t=0s" and not match.has_moments
        assert archive["tmj"] not in [g.media_item_id for g in r.groups]
        s.get(MediaItem, archive["tmj"]).status = "transcribing"  # as the worker sets it (a new content version)
        s.flush()
        r = search(s, "how to fix TMJ jaw pain")
        assert r.titles[0].status.label == "being transcribed"
        # Words common to most titles of the channel do not list every video.
        assert search(s, "carnivore diet").titles == []


def test_hidden_items_never_appear_among_title_matches(archive):
    with session_scope() as s:
        viewer = search(s, "healing humanity trailer world premiere")
        assert archive["premiere"] not in [t.media_item_id for t in viewer.titles]
        assert not any("premiere" in x.text.lower() for x in autocomplete(s, "my role"))
        admin = search(s, "healing humanity trailer world premiere", include_hidden=True, log=False)
        assert archive["premiere"] in [t.media_item_id for t in admin.titles]
        # A hidden transcribed item neither (its title is the whole query).
        assert search(s, "Private coaching call (unpublished)").titles == []


def test_every_title_autocomplete_suggests_is_found_by_search(archive):
    with session_scope() as s:
        suggested = [x for prefix in ("3 ways", "he tripled", "carnivore", "members") for x in autocomplete(s, prefix)
                     if x.kind == "title"]
        assert {"3 Ways To Fix Your TMJ (Jaw Pain) With Diet & Why You Have It In The First Place",
                "Carnivore for athletes and youth"} <= {x.text for x in suggested}
        for suggestion in suggested:
            r = search(s, suggestion.text, log=False)
            found = [g.title for g in r.groups] + [t.title for t in r.titles]
            assert suggestion.text in found, suggestion.text
            assert r.titles and r.titles[0].title == suggestion.text and r.titles[0].score == 1.0


# ---------------------------------------------------------------------------------------------
# 4. Autocomplete and trending learn from the verdict
# ---------------------------------------------------------------------------------------------


def test_only_answered_queries_are_suggested_and_trend(archive):
    from core.search import trending

    with session_scope() as s:
        for q, verdict in (("oxalates and kidney stones", "answered"), ("oxford study", "related"),
                           ("oxygen therapy", "nothing"), ("oxen", None)):
            for _ in range(3):
                log_query(s, q, 5, 10.0, verdict=verdict)
        assert [x.text for x in autocomplete(s, "ox") if x.kind == "query"] == ["oxalates and kidney stones"]
        assert [t.query for t in trending(s)] == ["oxalates and kidney stones"]
        stored = dict(s.execute(text("SELECT DISTINCT query, verdict FROM query_log")).all())
        assert stored["oxford study"] == "related" and stored["oxen"] is None
        with pytest.raises(ValueError, match="verdict"):
            log_query(s, "oxalates", 1, 1.0, verdict="maybe")


# ---------------------------------------------------------------------------------------------
# 5. Control characters never reach PostgreSQL
# ---------------------------------------------------------------------------------------------


def test_nul_and_control_characters_are_stripped_or_refused(archive):
    with session_scope() as s:
        r = search(s, "Crohn's\x00 disease\u200b remission\x1b")  # NUL: DataError in PostgreSQL text before
        assert r.query == "Crohn's disease remission" and r.prepared.original == r.query
        assert r.groups[0].media_item_id == archive["crohns"]
        logged = s.scalars(select(QueryLogEntry.query)).all()
        assert logged and all("\x00" not in q for q in logged) and "crohn's disease remission" in logged
        with pytest.raises(QueryError, match="control or invisible characters"):
            search(s, "\x00\x07\u200b")
        with pytest.raises(QueryError, match="empty"):
            search(s, " \t\n ")
        log_query(s, "gout\x00", 1, 1.0, verdict="answered")
        assert autocomplete(s, "go\x00u") is not None  # the prefix reaches LIKE without the NUL
        record_feedback(s, "crohn's\x00 remission", r.groups[0].moments[0].chunk_id, +1)
        assert s.scalars(select(Feedback.query)).one() == "crohn's remission"
        saved = set_synonyms(s, {"ibd\x00": "crohn's\x00 disease"})
        assert saved == {"ibd": ["crohn's disease"]}


# ---------------------------------------------------------------------------------------------
# 6. The same through the real CLI (`python -m core search`, a child process on the same database)
# ---------------------------------------------------------------------------------------------


def _cli(*args: str):
    import os
    import subprocess
    import sys

    from core.config import PROJECT_ROOT

    done = subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_cli_offers_search_instead_and_exact_searches_what_was_typed(archive):
    typed = "what does Dr. Chaffee say about electrolites and crmaps"
    corrected = _cli("search", typed)
    assert corrected[1].startswith("(searched for: electrolytes")
    assert corrected[1].endswith(f"— search instead for '{typed}' with --exact)")
    exact = _cli("search", typed, "--exact")
    assert not any(line.startswith("(searched for:") for line in exact)
    # Searched as typed, the misspelt word is what the verdict reads: nothing says "electrolites".
    assert "electrolites" in exact[0] and exact[0] != corrected[0], (exact[0], corrected[0])


def test_the_cli_lists_a_queued_video_whose_title_matches(archive):
    out = _cli("search", "TMJ")
    assert out[0].startswith("No passage in the archive mentions")
    at = out.index("Videos whose title matches:")
    title = next(line for line in out[at + 1:] if "TMJ" in line)
    assert title.strip().endswith("— queued for transcription")
    assert f"https://www.youtube.com/watch?v={TMJ_ID}&t=0s" in out[out.index(title) + 1]
    # An indexed video found by its title alone is listed without a status.
    found = _cli("search", "Pascal Johns tripled his testosterone")
    listed = found[found.index("Videos whose title matches:") + 1]
    assert listed.strip().startswith(PASCAL_ID) and "—" not in listed


def test_a_british_spelling_finds_the_archives_american_one(archive):
    """The transcripts say "fiber": a viewer typing "fibre" was told "No passage in the archive
    mentions fibre" (a real word is never corrected, so nothing bridged the two spellings)."""
    with session_scope() as s:
        vocab = vocabulary(s, cache.content_version(s))
        assert "fiber" in vocab and "fibre" not in vocab
        r = search(s, "is fibre necessary for gut health", log=False)
        assert ("fibre", "fiber") in r.prepared.corrections and r.search_instead is not None
        assert r.verdict.answered, r.verdict
        assert any("fiber" in m.text.lower() for g in r.groups for m in g.moments)
