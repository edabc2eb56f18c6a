"""The search page in headless Chromium: a real `streamlit run`, the real database, real embeddings.

Screenshots go to artifacts/screenshots/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.config import PROJECT_ROOT
from core.db import session_scope
from core.search import cache, log_query
from tests.test_query_handling import TMJ_ID
from tests.test_search_seed import seed_archive

pytestmark = pytest.mark.slow
SHOTS = PROJECT_ROOT / "artifacts" / "screenshots" / "search"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(engine, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian chromium at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright package (requirements-dev.txt)")
    app = tmp_path_factory.mktemp("app") / "app.py"
    app.write_text(
        "import streamlit as st\n"
        "st.set_page_config(page_title='Chaffee Search', layout='wide')\n"
        f"st.navigation([st.Page({str(PROJECT_ROOT / 'pages' / 'search.py')!r}, title='Search', default=True)]).run()\n"
    )
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}  # DATA_DIR etc.: the tests' own database
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.ui_server", "run", str(app), "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


@pytest.fixture()
def archive(db):
    cache.clear()
    with session_scope() as s:
        items = seed_archive(s)
        for q, n in (("calcium supplements", 3), ("crohn's disease remission", 2)):
            for _ in range(n):
                log_query(s, q, 3, 20.0, verdict="answered")
        return {k: v.id for k, v in items.items()}


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _settle(page) -> None:
    """Wait until the app's script run has finished (Streamlit shows a status widget while running)."""
    page.wait_for_timeout(300)
    # The status widget shows only some time after a run starts, so a run still rendering its
    # results can look finished; Streamlit's root element carries the run state itself.
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]")
    page.wait_for_selector("[data-testid=stStatusWidget]", state="detached")
    page.wait_for_selector("[data-stale=true]", state="detached")


def _results(page, url: str):
    page.goto(url)
    page.wait_for_selector(".video-title")
    _settle(page)


def _wait_for_titles(page, n: int) -> None:
    """Until the page lists at least n videos (twice in CI a finished run showed one of three;
    the assertion that follows says what the page shows when it never gets there)."""
    try:
        page.wait_for_function(f"document.querySelectorAll('.video-title').length >= {int(n)}", timeout=15_000)
    except PlaywrightTimeout:
        pass


def _moment_seconds(page) -> list[tuple[int, int]]:
    """(second on the ▶ label, second the moment's link opens at) for every moment shown."""
    out = []
    for moment in page.locator("[class*=st-key-moment-]").all():
        label = moment.get_by_role("button", name=re.compile(r"^▶ \d")).inner_text().split("▶")[-1].strip()
        shown = sum(int(p) * 60 ** i for i, p in enumerate(reversed(label.split(":"))))
        href = moment.locator("a.moment-link").get_attribute("href")
        # YouTube opens at the second; a Zoom recording (a local file) opens in the app's player.
        m = re.fullmatch(r"https://www\.youtube\.com/watch\?v=[\w-]{11}&t=(\d+)s", href) or re.fullmatch(
            r"/\?play=\d+&t=(\d+)", href)
        assert m, href
        out.append((shown, int(m.group(1))))
    return out


def test_results_are_grouped_with_working_timestamp_links_and_play_in_the_page(app_url, archive, page):
    _results(page, f"{app_url}/?q=" + quote("Crohn's disease remission on a meat diet"))
    titles = page.locator(".video-title").all_inner_texts()
    assert titles[0] == "Carnivore Q&A with Dr. Anthony Chaffee and Richard Smith"
    assert "Private coaching call (unpublished)" not in titles
    seconds = _moment_seconds(page)
    assert len(seconds) >= 3 and all(shown == link for shown, link in seconds)  # one time per moment, in full
    _shot(page, "search_results.png")

    first = page.locator("[class*=st-key-moment-]").first
    first.get_by_role("button", name=re.compile(r"^▶ \d")).click()
    page.wait_for_function(f"window.location.search.includes('t={seconds[0][0]}')")
    page.wait_for_selector(".st-key-player-panel iframe")
    assert "play=" in page.evaluate("window.location.search")  # the playing moment is in the shareable URL
    _shot(page, "search_playing.png")


def test_suggestions_appear_while_typing(app_url, archive, page):
    page.goto(app_url)
    box = page.frame_locator("iframe[title*=chaffee_viewer]").first.locator("form.sb input")
    box.click()
    box.type("calc", delay=60)
    frame = page.frame_locator("iframe[title*=chaffee_viewer]").first
    frame.locator("li.suggestion", has_text="calcium supplements").wait_for()
    for _ in range(4):
        box.press("Backspace")
    box.type("athl", delay=60)
    option = frame.locator("li.suggestion", has_text="Carnivore for athletes and youth")
    option.wait_for()
    assert box.input_value() == "athl"  # a suggestion never replaces what was typed
    _shot(page, "search_autocomplete.png")
    option.click()
    page.wait_for_selector(".video-title")
    _settle(page)
    assert page.locator(".video-title").first.inner_text() == "Carnivore for athletes and youth"
    assert "q=Carnivore" in page.evaluate("window.location.search")


def test_filters_change_the_results(app_url, archive, page):
    _results(page, f"{app_url}/?q={quote('diet and autoimmune disease')}")
    _wait_for_titles(page, 2)
    before = page.locator(".video-title").all_inner_texts()
    zoom_call = "Members Zoom call: lectins and autoimmunity"  # 30 minutes long
    assert zoom_call in before and len(before) >= 2
    page.get_by_role("button", name="Filters & sort").click()
    page.get_by_text("Over 1 hour").click()
    page.wait_for_function("window.location.search.includes('len=long')")
    _settle(page)
    after = page.locator(".video-title").all_inner_texts()
    assert after and zoom_call not in after and set(after) < set(before), after
    _shot(page, "search_filtered.png")
    # The filter lives in the URL: opening it again gives the same results (a shareable search).
    _results(page, f"{app_url}/?q={quote('diet and autoimmune disease')}&src=zoom")
    assert page.locator(".video-title").all_inner_texts() == ["Members Zoom call: lectins and autoimmunity"]
    assert "Steven Bowen" in page.inner_text("body")


def test_a_cited_answer_renders_with_clickable_citations(app_url, archive, page):
    _results(page, f"{app_url}/?q={quote('should I take calcium supplements')}&answer=1")
    page.wait_for_selector("a.cite")
    cites = page.locator("a.cite")
    assert cites.count() >= 1
    for i in range(cites.count()):
        assert re.search(r"youtube\.com/watch\?v=[\w-]{11}&t=\d+s", cites.nth(i).get_attribute("href"))
        assert re.fullmatch(r"\[\d\]", cites.nth(i).inner_text())
    _shot(page, "search_answer.png")
    # Offline here: answer YouTube with a stub page so the opened tab keeps the clip's URL.
    page.context.route("https://www.youtube.com/**", lambda route: route.fulfill(status=200, body="<p>clip</p>"))
    with page.context.expect_page() as opened:  # a citation opens the clip (in a new tab)
        cites.first.click()
    opened.value.wait_for_load_state()
    assert opened.value.url == cites.first.get_attribute("href")


def test_an_empty_archive_explains_how_to_add_content_and_bad_input_is_refused(app_url, db, page):
    cache.clear()
    page.goto(app_url)
    page.wait_for_selector("text=python -m core ingest")
    assert "python -m core sync-channel" in page.inner_text("body")
    _shot(page, "search_empty_archive.png")
    page.goto(f"{app_url}/?q={'x' * 600}")
    page.wait_for_selector("text=too long")


# ---------------------------------------------------------------------------------------------
# The page's script through streamlit's AppTest (no browser): search instead, title matches,
# typed words marked apart from synonyms. Real database, real embeddings, real search().
# ---------------------------------------------------------------------------------------------

SEARCH_PAGE = PROJECT_ROOT / "pages" / "search.py"
MISSPELT = "what does Dr. Chaffee say about electrolites and crmaps"


def _page(**params: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(SEARCH_PAGE), default_timeout=120)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown_html(at) -> str:
    """Every markdown/caption/warning the page rendered, in order (what a viewer reads, as HTML)."""
    return "\n".join(str(el.value) for el in (*at.markdown, *at.caption, *at.warning, *at.subheader))


def _moment_snippets(at) -> list[str]:
    return [str(m.value) for m in at.markdown if 'class="moment-text' in str(m.value)]


def test_search_instead_reruns_with_what_was_typed_and_the_choice_is_in_the_url(archive):
    at = _page(q=MISSPELT)
    shown = _shown_html(at)
    assert "Searched for <b>electrolytes" in shown and "electrolites → electrolytes" in shown
    button = at.button(key="search_instead")
    assert "Search instead for" in button.label and "electrolites and crmaps" in button.label
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    # The same query, searched as typed: no correction line, and the choice lives in the URL.
    assert at.query_params.get("exact") == "1" and at.query_params.get("q") == MISSPELT
    shown = _shown_html(at)
    assert "Searched for <b>" not in shown and "Searched exactly as typed" in shown
    assert not any(b.key == "search_instead" for b in at.button)
    # Shared as a link, ?q=…&exact=1 opens the same exact search.
    shared = _page(q=MISSPELT, exact="1")
    assert "Searched for <b>" not in _shown_html(shared) and "Searched exactly as typed" in _shown_html(shared)
    # Without exact=1 the corrected search comes back: the two are not confused by any cache.
    assert "Searched for <b>electrolytes" in _shown_html(_page(q=MISSPELT))


@pytest.fixture()
def listed(archive):
    """The seeded archive plus one real channel video that is listed but not transcribed yet."""
    from sqlalchemy import select

    from core.models import Source
    from tests.test_query_handling import TMJ_ID, _listed_item, _listing

    entry = _listing()[TMJ_ID]
    with session_scope() as s:
        youtube = s.scalars(select(Source).where(Source.kind == "youtube")).one()
        item = _listed_item(s, youtube, entry, status="queued")
        s.flush()
        cache.invalidate(s)
        return {**archive, "tmj": item.id, "tmj_title": entry["title"]}


def test_a_queued_video_whose_title_matches_shows_as_queued_for_transcription(listed):
    # "TMJ" is never said in the transcripts: the verdict is *nothing*, and the listed video
    # whose title holds it shows, with its status in words, instead of nothing at all.
    at = _page(q="TMJ")
    assert any("No passage in the archive mentions" in str(w.value) for w in at.warning)
    assert "Videos whose title matches" in [str(h.value) for h in at.subheader]
    titles = next(str(m.value) for m in at.markdown if "title-match" in str(m.value))
    assert html.escape(listed["tmj_title"]) in titles
    assert "queued for transcription" in titles
    assert f"youtube.com/watch?v={TMJ_ID}" in titles


def test_typed_words_are_marked_apart_from_synonym_words(archive):
    from core.search import set_synonyms

    with session_scope() as s:
        set_synonyms(s, {"IBD": "Crohn's disease, colitis"})
    at = _page(q="IBD diet")
    snippets = _moment_snippets(at)
    assert snippets
    # "diet" was typed: a full mark. "Crohn's"/"disease" only came from the synonym: the lighter mark.
    both = next((sn for sn in snippets if "<mark>diet</mark>" in sn.lower() and 'class="syn"' in sn), None)
    assert both is not None, snippets
    assert re.search(r'<mark class="syn">crohn&#x27;s</mark>', both, re.IGNORECASE), both
    assert not re.search(r'<mark class="syn">diets?</mark>', both, re.IGNORECASE)
    assert not re.search(r"<mark>(crohn&#x27;s|disease|colitis)</mark>", both, re.IGNORECASE)
    assert "mark.syn{" in "".join(str(h.value) for h in at.html)  # styled lighter on the page


def test_in_the_browser_search_instead_title_matches_and_synonym_marks_look_as_intended(app_url, listed, page):
    from core.search import set_synonyms

    page.goto(f"{app_url}/?q={quote(MISSPELT)}")
    instead = page.get_by_role("button", name=re.compile("Search instead for"))
    instead.wait_for()
    _settle(page)
    assert "electrolites and crmaps" in instead.inner_text()
    _shot(page, "search_instead.png")
    instead.click()
    page.wait_for_function("window.location.search.includes('exact=1')")
    page.wait_for_selector("text=Searched exactly as typed")
    _settle(page)
    assert "Searched for electrolytes" not in page.inner_text("body")

    page.goto(f"{app_url}/?q=TMJ")
    page.wait_for_selector("text=queued for transcription")
    _settle(page)
    item = page.locator("li.title-match").filter(has_text="queued for transcription").first
    assert item.locator("a").get_attribute("href") == f"https://www.youtube.com/watch?v={TMJ_ID}&t=0s"
    _shot(page, "search_title_queued.png")

    with session_scope() as s:
        set_synonyms(s, {"IBD": "Crohn's disease, colitis"})
    page.goto(f"{app_url}/?q={quote('IBD diet')}")
    page.wait_for_selector("mark.syn")
    _settle(page)
    typed_bg = page.locator("mark:not(.syn)").first.evaluate("e => getComputedStyle(e).backgroundColor")
    syn_bg = page.locator("mark.syn").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert typed_bg != syn_bg  # a viewer tells their own words from the synonyms' at a glance
    _shot(page, "search_synonym_marks.png")
