"""The viewer's search page in headless Chromium at 1400×1000 and 390×844 (issue #17): a real
`streamlit run` of pages/search.py, the real database and embeddings, one server and one seeded
archive for the whole module.

Offline here: YouTube's iframe API is answered by a stub that implements the calls the player
makes (YT.Player, seekTo, playVideo, getCurrentTime) and records them; thumbnails and embeds get
empty answers. Each step saves a screenshot named by its state under
artifacts/screenshots/viewer/ (git-ignored).
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlparse

import pytest
from sqlalchemy import text

from core.db import session_scope
from core.search import cache, log_query
from core.transcribe.captions import parse_captions
from tests.conftest import APP_TABLES
from tests.test_search_page import CHROMIUM_ARGS, _wait_for_titles, app_url, browser  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
SHOTS = __import__("core.config", fromlist=["PROJECT_ROOT"]).PROJECT_ROOT / "artifacts" / "screenshots" / "viewer"
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
YT_STUB = """
window.__yt = { created: [], seeks: [] };
window.YT = { Player: function (id, opts) {
  let t = opts.playerVars.start;
  window.__yt.created.push({ videoId: opts.videoId, start: t });
  const f = document.createElement("iframe");
  f.src = "https://www.youtube.com/embed/" + opts.videoId + "?start=" + t + "&enablejsapi=1";
  document.getElementById(id).replaceWith(f);
  this.seekTo = (s) => { t = s; window.__yt.seeks.push(s); };
  this.playVideo = () => {};
  this.getCurrentTime = () => t;
} };
setTimeout(() => window.onYouTubeIframeAPIReady && window.onYouTubeIframeAPIReady(), 0);
"""


@pytest.fixture(scope="module")
def seeded(engine):
    """One archive for the module: the seeded transcripts, and two questions several viewers asked."""
    from tests.test_search_seed import seed_archive

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {APP_TABLES} RESTART IDENTITY CASCADE"))
    cache.clear()
    with session_scope() as s:
        items = {k: v.id for k, v in seed_archive(s).items()}
        for q in ("crohn's disease remission", "calcium supplements"):
            for n in range(3):
                log_query(s, q, 3, 20.0, verdict="answered", session_key=f"seed-{n}")
    return items


def _context(browser, viewport, **kw):  # noqa: F811
    ctx = browser.new_context(viewport=viewport, **kw)
    ctx.route("https://www.youtube.com/iframe_api", lambda r: r.fulfill(status=200, body=YT_STUB,
                                                                       content_type="text/javascript"))
    ctx.route("https://www.youtube.com/embed/**", lambda r: r.fulfill(status=200, body="<p>video</p>",
                                                                     content_type="text/html"))
    ctx.route("https://i.ytimg.com/**", lambda r: r.fulfill(status=404, body=""))
    ctx.set_default_timeout(60_000)
    return ctx


@pytest.fixture()
def desktop(browser):  # noqa: F811
    ctx = _context(browser, DESKTOP)
    yield ctx.new_page()
    ctx.close()


@pytest.fixture()
def phone(browser):  # noqa: F811
    ctx = _context(browser, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    yield ctx.new_page()
    ctx.close()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


SHOWS_URL_SEARCH = """() => {
  const params = new URLSearchParams(location.search);
  const q = params.get('q'), n = params.get('n');
  if (!q) return true;
  const marker = [...document.querySelectorAll('.count-line')].find(e => e.dataset.q === q && (!n || e.dataset.n === n));
  return marker && !marker.closest('[data-stale=true]');
}"""


def _settle(page) -> None:
    """The page shows the search its URL holds, and its script run has finished."""
    page.wait_for_timeout(250)
    page.wait_for_function(SHOWS_URL_SEARCH)
    # The status widget shows only some time after a run starts; the root element carries the run state.
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]")
    page.wait_for_selector("[data-testid=stStatusWidget]", state="detached")
    page.wait_for_selector("[data-stale=true]", state="detached")


def _box(page):
    """The search box inside the component's frame."""
    return page.frame_locator("iframe[title*=chaffee_viewer]").first.locator("form.sb input")


def _player_frame(page):
    return page.frame_locator(".st-key-player-panel iframe[title*=chaffee_viewer]")


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".video-title")
    _settle(page)


def _q(page) -> str:
    return parse_qs(urlparse(page.url).query).get("q", [""])[0]


def _titles(page) -> list[str]:
    return page.locator("[class*=st-key-video-] .video-title").all_inner_texts()


def _moments(page):
    return page.locator("[class*=st-key-moment-]")


def _in_view(page, locator) -> bool:
    box = locator.bounding_box()
    vp = page.viewport_size
    return box is not None and box["y"] >= -1 and box["y"] + box["height"] <= vp["height"] + 1


def _search(page, query: str) -> None:
    box = _box(page)
    box.click()
    box.press("Control+a")
    box.type(query, delay=15)
    box.press("Enter")
    page.wait_for_function(f"new URLSearchParams(location.search).get('q') === {query!r}")
    _settle(page)


# ---------------------------------------------------------------------------------------------


def test_refining_a_query_suggestions_and_back_forward(app_url, seeded, desktop):  # noqa: F811
    page = desktop
    _open(page, f"{app_url}/?q={quote('calcium')}")
    box = _box(page)
    assert box.input_value() == "calcium"  # the box holds the current query, as text
    box.click()
    box.press("End")
    box.type(" supplements", delay=15)  # refine it: the words typed are added to the query
    box.press("Enter")
    page.wait_for_function("new URLSearchParams(location.search).get('q') === 'calcium supplements'")
    _settle(page)
    assert box.input_value() == "calcium supplements" and _titles(page)
    _shot(page, "desktop_refined_query.png")

    # Suggestions under the box while typing; moving through them never replaces what was typed.
    box.press("Control+a")
    box.type("crohn", delay=30)
    frame = page.frame_locator("iframe[title*=chaffee_viewer]").first
    suggestion = frame.locator("li.suggestion", has_text="crohn's disease remission")
    suggestion.wait_for()
    box.press("ArrowDown")
    assert box.input_value() == "crohn"
    _shot(page, "desktop_suggestions.png")
    suggestion.click()
    page.wait_for_function("new URLSearchParams(location.search).get('q') === \"crohn's disease remission\"")
    _settle(page)
    assert _titles(page)[0] == "Carnivore Q&A with Dr. Anthony Chaffee and Richard Smith"
    # YouTube's own still beside each YouTube video (i.ytimg.com; answered empty here, offline).
    thumb = page.locator("[class*=st-key-video-]").first.locator("img.thumb").get_attribute("src")
    assert re.fullmatch(r"https://i\.ytimg\.com/vi/[\w-]{11}/mqdefault\.jpg", thumb)

    crohn_titles = _titles(page)
    page.go_back()  # the previous search, in the box and in the results
    page.wait_for_function("new URLSearchParams(location.search).get('q') === 'calcium supplements'")
    _settle(page)
    assert box.input_value() == "calcium supplements" and _titles(page) != crohn_titles
    _shot(page, "desktop_back.png")
    page.go_back()
    page.wait_for_function("new URLSearchParams(location.search).get('q') === 'calcium'")
    _settle(page)
    assert box.input_value() == "calcium"
    page.go_forward()
    page.go_forward()
    page.wait_for_function("new URLSearchParams(location.search).get('q') === \"crohn's disease remission\"")
    _settle(page)
    assert box.input_value() == "crohn's disease remission" and _titles(page) == crohn_titles
    _shot(page, "desktop_forward.png")


def _play(page, n: int):
    """Press ▶ on the n-th moment; returns (moment locator, its second)."""
    moment = _moments(page).nth(n)
    moment.scroll_into_view_if_needed()
    button = moment.get_by_role("button", name=re.compile(r"^▶ \d"))
    label = button.inner_text().split("▶")[-1].strip()
    parts = [int(p) for p in label.split(":")]
    second = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    button.click()
    page.wait_for_function(f"new URLSearchParams(location.search).get('t') === '{second}'")
    page.wait_for_selector(".st-key-player-panel iframe[title*=chaffee_viewer]")
    _settle(page)
    return moment, second, label


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_play_keeps_the_player_and_the_moment_in_view_and_a_transcript_line_seeks(app_url, seeded, size, request):  # noqa: F811
    page = request.getfixturevalue(size)
    _open(page, f"{app_url}/?q={quote('diet and autoimmune disease')}")
    if size == "phone":
        # After a search the first moment's title and play control are on the first screen.
        first_title = page.locator("[class*=st-key-video-] .video-title").first
        first_play = _moments(page).first.get_by_role("button", name=re.compile(r"^▶ \d"))
        assert _in_view(page, first_title) and _in_view(page, first_play)
        heights = [m.bounding_box()["height"] for m in _moments(page).all()]
        assert max(heights) <= 250, heights
        _shot(page, "phone_results.png")
    moment, second, label = _play(page, 1)
    panel = page.locator(".st-key-player-panel")
    frame = _player_frame(page)
    frame.locator("button.line").first.wait_for()
    page.wait_for_timeout(2800)  # the page script keeps placing the moment while the player loads
    assert _in_view(page, moment), moment.bounding_box()
    if size == "phone":
        assert panel.bounding_box()["y"] >= -1 and moment.bounding_box()["y"] >= panel.bounding_box()["y"] + \
            panel.bounding_box()["height"] - 2  # the moment is below the player, not under it
    else:
        assert _in_view(page, panel)
    created = frame.locator("body").evaluate("() => window.__yt.created")
    assert created and created[-1]["start"] == second  # the player opened at the moment's second
    _shot(page, f"{size}_playing.png")

    # The answer line is marked; clicking another line seeks there and the transcript follows.
    assert frame.locator("button.line.answer").count() == 1
    lines = frame.locator("button.line")
    target = lines.nth(min(lines.count() - 1, 4))
    t = float(target.get_attribute("data-t"))
    target.click()
    assert frame.locator("body").evaluate("() => window.__yt.seeks").pop() == t
    frame.locator("button.line.current").wait_for()
    assert frame.locator("button.line.current").get_attribute("data-t") == target.get_attribute("data-t")
    _shot(page, f"{size}_transcript_seek.png")

    # The player never scrolls off: scroll the results, the player stays on screen.
    page.evaluate("""() => { const m = document.querySelector('[data-testid=stMain]');
        (m.scrollHeight > m.clientHeight + 1 ? m : document.scrollingElement).scrollBy(0, 700); }""")
    page.wait_for_timeout(300)
    assert _in_view(page, panel.locator("iframe").first)
    _shot(page, f"{size}_scrolled_player_pinned.png")

    page.get_by_role("button", name="Close").click()
    page.wait_for_function("!new URLSearchParams(location.search).has('play')")
    _settle(page)
    assert page.locator(".st-key-player-panel").count() == 0


def test_transcript_download_search_in_this_video_and_more_from_this_video(app_url, seeded, desktop):  # noqa: F811
    page = desktop
    # The Zoom call: its transcript names the speakers (its recording file is not on this server).
    _open(page, f"{app_url}/?q={quote('lectins and autoimmunity')}&src=zoom")
    _play(page, 0)
    assert "cannot play here" in page.inner_text(".st-key-player-panel")
    page.get_by_role("button", name="Transcript").click()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download SRT").click()
    body = open(dl.value.path(), encoding="utf-8").read()
    segments = parse_captions(body, "srt")
    assert len(segments) > 20 and dl.value.suggested_filename.endswith(".srt")
    assert {s.speaker for s in segments} >= {"Anthony Chaffee", "Steven Bowen"}  # speakers where known
    _shot(page, "desktop_transcript_download.png")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Search in this video").click()  # the same question, this call only
    page.wait_for_function(f"new URLSearchParams(location.search).get('item') === '{seeded['lectins']}'")
    _settle(page)
    assert set(_titles(page)) == {"Members Zoom call: lectins and autoimmunity"}

    _open(page, f"{app_url}/?q={quote('diet and autoimmune disease')}")
    before = _titles(page)
    more = page.get_by_role("button", name="More from this video").first
    group = more.locator("xpath=ancestor::*[contains(@class,'st-key-video-')][1]")
    owner, shown = group.locator(".video-title").inner_text(), group.locator("[class*=st-key-moment-]").count()
    more.click()
    page.wait_for_function("new URLSearchParams(location.search).has('item')")
    _settle(page)
    assert set(_titles(page)) == {owner} and len(before) > 1
    assert _moments(page).count() >= shown  # every moment of it the search finds (up to 10)
    assert page.get_by_role("button", name=re.compile("^Only in:")).count() == 1
    _shot(page, "desktop_more_from_this_video.png")
    page.go_back()
    page.wait_for_function("!new URLSearchParams(location.search).has('item')")
    _settle(page)
    assert _titles(page) == before


def test_copy_link_a_vote_toggled_and_show_more(app_url, seeded, browser):  # noqa: F811
    ctx = _context(browser, DESKTOP, permissions=["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    query = "calcium supplements"
    _open(page, f"{app_url}/?q={quote(query)}")
    link = _moments(page).first.locator("a.copy-link")
    link.click()
    page.wait_for_selector("a.copy-link.copied")
    assert page.evaluate("navigator.clipboard.readText()") == link.get_attribute("href")
    assert re.fullmatch(r"https://www\.youtube\.com/watch\?v=[\w-]{11}&t=\d+s", link.get_attribute("href"))
    _shot(page, "desktop_link_copied.png")

    def votes() -> list[int]:
        with session_scope() as s:
            return list(s.execute(text("SELECT vote FROM feedback WHERE query = :q"), {"q": query}).scalars())

    moment = _moments(page).first
    up = moment.locator("[class*=st-key-up-] button").first
    down = moment.locator("[class*=st-key-down-] button").first
    up.click()
    _settle(page)
    assert votes() == [1] and "primary" in up.get_attribute("data-testid")
    down.click()
    _settle(page)
    assert votes() == [-1] and "primary" in down.get_attribute("data-testid")  # one vote, now down
    _shot(page, "desktop_vote_down.png")
    down.click()
    _settle(page)
    assert votes() == [] and "primary" not in down.get_attribute("data-testid")  # taken back

    # Show more results: the same query, more videos (one per page here, to see it on a small archive).
    _open(page, f"{app_url}/?q={quote('diet and autoimmune disease')}&n=1")
    assert len(_titles(page)) == 1
    page.get_by_role("button", name="Show more results").click()
    page.wait_for_function("new URLSearchParams(location.search).get('n') === '11'")
    _settle(page)
    _wait_for_titles(page, 2)
    assert len(_titles(page)) > 1
    _shot(page, "desktop_show_more.png")
    ctx.close()


def _background_luminance(page) -> float:
    rgb = page.locator("[data-testid=stApp]").evaluate("e => getComputedStyle(e).backgroundColor")
    r, g, b = (int(x) for x in re.findall(r"\d+", rgb)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_dark_mode_follows_the_device_and_the_viewer_can_switch_it(app_url, seeded, browser):  # noqa: F811
    ctx = _context(browser, DESKTOP, color_scheme="dark")
    page = ctx.new_page()
    _open(page, f"{app_url}/?q={quote('calcium supplements')}")
    assert _background_luminance(page) < 0.3
    body = page.inner_text("body")
    assert "server-side" not in body and " ms" not in body  # no developer figures for viewers
    _shot(page, "desktop_dark_theme.png")
    page.get_by_role("button", name="Theme").click()
    page.get_by_role("button", name="Light").click()
    page.wait_for_selector(".video-title")
    _settle(page)
    page.wait_for_function("() => { const e = document.querySelector('[data-testid=stApp]');"
                           " return e && getComputedStyle(e).backgroundColor.startsWith('rgb(255') }")
    assert _background_luminance(page) > 0.8 and _q(page) == "calcium supplements"  # same search, light
    _shot(page, "desktop_light_theme_chosen.png")
    ctx.close()
