"""The viewer page's logic without a browser: the count line, the URL state, transcript files
(SRT/VTT read back by the project's own caption parser), trending that one person cannot fill,
and votes that toggle once per browser session. Real PostgreSQL where the rule lives in SQL."""
from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import text

from core.db import session_scope
from core.search import log_query, search, trending
from core.search.feedback import TabVotes, Vote, feedback_summary, session_votes, set_vote, toggled
from core.search.records import Moment, VideoGroup, format_timestamp
from core.search.suggest import autocomplete, looks_like_code
from core.search.transcript import (
    ExportFormat,
    TranscriptLine,
    answer_index,
    around,
    export,
    file_name,
    load_transcript,
)
from core.search.trending import hidden_terms, hide_term, unhide_term
from core.search.viewer import ViewState, count_line, thumbnail_url
from core.transcribe.captions import parse_captions


def _group(n_moments: int) -> VideoGroup:
    moments = [Moment(i, 0, 1, "", "", 0.5, "") for i in range(n_moments)]
    return VideoGroup(1, "t", "", "youtube", None, None, None, True, 0.5, moments)


def test_timestamps_and_the_count_read_as_people_say_them():
    assert format_timestamp(3872) == "1:04:32" and format_timestamp(65) == "1:05" and format_timestamp(7) == "0:07"
    assert count_line([_group(3), _group(3), _group(1)]) == "7 moments in 3 videos"
    assert count_line([_group(1)]) == "1 moment in 1 video"
    assert thumbnail_url("https://www.youtube.com/watch?v=48fTLPbE5JA") == "https://i.ytimg.com/vi/48fTLPbE5JA/mqdefault.jpg"
    assert thumbnail_url("/srv/zoom/call.m4a") is None


def test_the_url_is_the_view_and_a_new_question_drops_what_belonged_to_the_old_one():
    params = {"q": "seed oils", "exact": "1", "sort": "date", "from": "2024-01-01", "src": "youtube,bogus",
              "len": "long", "n": "20", "play": "7", "t": "3872", "item": "7"}
    view = ViewState.from_params(params)
    assert view.sources == ("youtube",) and view.date_from == date(2024, 1, 1) and view.videos == 20
    assert view.filters().media_item_id == 7 and view.filters().min_duration_s == 3600
    assert ViewState.from_params(view.to_params()) == view
    fresh = view.new_search("seed oils and acne")
    assert fresh.to_params() == {"q": "seed oils and acne", "sort": "date", "from": "2024-01-01", "src": "youtube",
                                 "len": "long", "item": "7"}
    assert ViewState.from_params({"n": "9999", "t": "-5", "play": "x"}).videos == 100
    assert view.closed().to_params().get("play") is None and view.more().videos == 30


LINES = [
    TranscriptLine(0.0, 4.2, "Welcome back, everyone.", "Anthony Chaffee"),
    TranscriptLine(4.2, 9.0, "Is fiber necessary for gut health?", "Steven Bowen"),
    TranscriptLine(9.0, 15.5, "No. Fiber is not essential & the gut does fine <without> it.", "Anthony Chaffee"),
    TranscriptLine(15.5, 18.0, "Thank you.", "Steven Bowen"),
    TranscriptLine(3725.0, 3731.0, "An hour in, a line with no speaker.", None),
]


@pytest.mark.parametrize("fmt", [ExportFormat.SRT, ExportFormat.VTT])
def test_srt_and_vtt_downloads_are_valid_and_keep_times_text_and_speakers(fmt):
    body = export(LINES, fmt)
    if fmt is ExportFormat.VTT:
        assert body.startswith("WEBVTT\n") and "01:02:05.000 --> 01:02:11.000" in body
        assert "<v Steven Bowen>" in body and "&lt;without&gt;" in body and "&amp;" in body
    else:
        assert re.search(r"^5\n01:02:05,000 --> 01:02:11,000\n", body, re.M)
    back = parse_captions(body, fmt.value)
    assert [(round(s.start, 3), round(s.end, 3)) for s in back] == [(ln.start_s, ln.end_s) for ln in LINES]
    shown = [ln.text if fmt is ExportFormat.VTT else ln.text.replace("<", "‹").replace(">", "›") for ln in LINES]
    assert [s.text for s in back] == shown  # SRT has no escapes: ‹without› stays visible, never a tag
    assert [s.speaker for s in back] == [ln.speaker for ln in LINES]


def test_the_text_download_and_its_name():
    txt = export(LINES, ExportFormat.TXT, "Q&A: fiber?")
    assert txt.splitlines()[0] == "Q&A: fiber?"
    assert "[0:04] Steven Bowen: Is fiber necessary for gut health?" in txt and "[1:02:05] An hour in" in txt
    assert file_name("Q&A: fiber / gut?", ExportFormat.SRT) == "Q-A-fiber-gut.srt"


def test_the_panel_window_and_the_answer_line():
    assert around(LINES, 10, before=5, after=5) == LINES[1:3]
    # A link opens 0.5 s before the answer sentence, floored: at 8 s for a sentence at 9.0 s.
    assert answer_index(LINES, 8) == 2 and answer_index(LINES, 4) == 1 and answer_index(LINES, 0) == 0


def test_markup_and_sql_looking_text_is_recognised_and_questions_are_not():
    for bad in ("<script>alert(1)</script>", "' or 1=1 --", "select * from users", "x'); drop table query_log",
                "[click](javascript:alert(1))", "a &amp; b", "1 union select password"):
        assert looks_like_code(bad), bad
    for fine in ("is fiber necessary for gut health", "what does he select for breakfast from the shop",
                 "crohn's disease", "omega-3 vs omega 6", "b12 and 5-mthf"):
        assert not looks_like_code(fine), fine


# ---------------------------------------------------------------------------------------------
# Real database
# ---------------------------------------------------------------------------------------------


def _ask(s, query: str, sessions: int, verdict: str = "answered", times: int = 1) -> None:
    for n in range(sessions):
        for _ in range(times):
            log_query(s, query, 3, 10.0, verdict=verdict, session_key=f"tab-{query}-{n}")


def test_trending_needs_three_sessions_an_answer_and_plain_words_and_the_admin_can_hide_a_term(db):
    with session_scope() as s:
        _ask(s, "gout and uric acid", sessions=1, times=20)  # one visitor, twenty searches
        _ask(s, "fiber and gut health", sessions=3)
        _ask(s, "oxalates in spinach", sessions=4)
        _ask(s, "knitting patterns", sessions=5, verdict="nothing")
        _ask(s, "fasting and muscle", sessions=5, verdict="related")
        _ask(s, "<img src=x onerror=alert(1)>", sessions=5)
        _ask(s, "' or 1=1 --", sessions=5)
        top = trending(s)
        assert [(t.query, t.count) for t in top] == [("oxalates in spinach", 4), ("fiber and gut health", 3)]
        assert not any(looks_like_code(x.text) for x in autocomplete(s, ""))

        assert hide_term(s, "  Oxalates ", actor="admin") == "oxalates"
        assert hidden_terms(s) == ["oxalates"]
        assert [t.query for t in trending(s)] == ["fiber and gut health"]
        assert unhide_term(s, "oxalates")
        assert [t.query for t in trending(s)] == ["oxalates in spinach", "fiber and gut health"]
        with pytest.raises(ValueError, match="Type the word"):
            hide_term(s, "   ", actor="admin")


def test_a_vote_toggles_up_down_none_and_counts_once_per_browser_session(archive_for_votes):
    query, chunk = archive_for_votes
    with session_scope() as s:
        mine = Vote.NONE
        for pressed in (Vote.UP, Vote.DOWN):  # up, then down on the same moment
            mine = set_vote(s, query, chunk, "tab-a", toggled(mine, pressed))
        assert mine is Vote.DOWN and session_votes(s, "tab-a", query) == {chunk: Vote.DOWN}
        summary = [r for r in feedback_summary(s) if r.query == query]
        assert [(r.up, r.down) for r in summary] == [(0, 1)]  # one vote, not one of each
        set_vote(s, query, chunk, "tab-b", Vote.UP)  # another visitor
        mine = set_vote(s, query, chunk, "tab-a", toggled(mine, Vote.DOWN))  # down again: taken back
        assert mine is Vote.NONE and session_votes(s, "tab-a", query) == {}
        assert [(r.up, r.down) for r in feedback_summary(s) if r.query == query] == [(1, 0)]
        assert s.execute(text("SELECT count(*) FROM feedback")).scalar() == 1
        with pytest.raises(ValueError):
            set_vote(s, query, chunk, "", Vote.UP)


@pytest.fixture()
def archive_for_votes(db):
    from tests.test_search_seed import seed_archive

    with session_scope() as s:
        seed_archive(s)
        r = search(s, "calcium supplements", log=False)
        return r.query, r.groups[0].moments[0].chunk_id


def test_one_video_narrowing_and_a_hidden_items_transcript(db):
    from tests.test_search_seed import seed_archive

    with session_scope() as s:
        items = seed_archive(s)
        crohns = items["crohns"].id
        narrowed = search(s, "diet and autoimmune disease", log=False, moments_per_video=10,
                          filters=ViewState(item=crohns).filters())
        assert {g.media_item_id for g in narrowed.groups} == {crohns}
        assert load_transcript(s, items["hidden"].id) is None  # an unpublished meeting: not for viewers
        assert load_transcript(s, items["hidden"].id, include_hidden=True)
        lines = load_transcript(s, items["lectins"].id)
        assert lines and {ln.speaker for ln in lines} == {"Anthony Chaffee", "Steven Bowen"}


def test_the_admin_hides_a_trending_term_in_audit_and_feedback(db):
    from streamlit.testing.v1 import AppTest

    from core.config import PROJECT_ROOT

    with session_scope() as s:
        _ask(s, "seed oils and acne", sessions=3)
        _ask(s, "salt and blood pressure", sessions=3)
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "admin_audit.py"), default_timeout=60)
    at.session_state["admin_user"] = "admin"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("seed oils and acne" in str(m.value) for m in at.markdown)
    at.text_input[-1].input("Seed oils")
    next(b for b in at.button if b.label == "Hide").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with session_scope() as s:
        assert [t.query for t in trending(s)] == ["salt and blood pressure"]
        action, actor = s.execute(text("SELECT action, actor FROM audit_log ORDER BY id DESC LIMIT 1")).one()
    assert (action, actor) == ("trending.hide", "admin")
    assert any("Hidden: **seed oils**" in str(m.value) for m in at.markdown)


def test_a_tab_shows_and_toggles_its_own_votes_over_what_a_lagging_replica_read_back():
    tab = TabVotes()
    stored: dict[int, Vote] = {}  # the replica has not replayed anything of this tab yet
    assert tab.press("Calcium supplements?", 7, Vote.UP, stored) is Vote.UP
    assert tab.shown("calcium supplements", stored) == {7: Vote.UP}  # the same question, normalised
    # Pressed again before the replica caught up: taken back, not "up" a second time.
    assert tab.press("calcium supplements", 7, Vote.UP, stored) is Vote.NONE
    assert tab.shown("calcium supplements", {7: Vote.UP}) == {}  # the replica's older "up" is not shown
    assert tab.press("calcium supplements", 8, Vote.DOWN, {8: Vote.DOWN}) is Vote.NONE  # toggles from what is stored
    assert tab.shown("other question", {3: Vote.DOWN}) == {3: Vote.DOWN}


def test_the_page_logs_a_search_once_per_browser_session_even_when_the_write_is_retried(db):
    with session_scope() as s:
        assert log_query(s, "Calcium supplements", 3, 10.0, verdict="answered", session_key="tab-a")
        # The same row again (a reload, or the write queue retrying after an ambiguous failure).
        assert not log_query(s, "calcium supplements?", 3, 12.0, verdict="answered", session_key="tab-a")
        assert log_query(s, "calcium supplements", 3, 10.0, verdict="answered", session_key="tab-b")
        for _ in range(2):  # outside the page (CLI, benchmarks) every search is a row
            assert log_query(s, "calcium supplements", 3, 10.0, verdict="answered")
        rows = s.execute(text("SELECT session_key FROM query_log ORDER BY id")).scalars().all()
    assert rows == ["tab-a", "tab-b", None, None]


def test_a_term_the_admin_hides_leaves_the_pages_cached_trending_at_once(db):
    from core import search_db

    search_db.reset()
    with session_scope() as s:
        _ask(s, "seed oils and acne", sessions=3)
    assert [t.query for t in search_db.trending()] == ["seed oils and acne"]  # read, and cached for 60 s
    with session_scope() as s:
        hide_term(s, "acne", actor="admin")
    assert search_db.trending() == []  # not after the cache's minute: the content version moved
    with session_scope() as s:
        assert unhide_term(s, "acne")
    assert [t.query for t in search_db.trending()] == ["seed oils and acne"]
