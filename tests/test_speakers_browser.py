"""The speaker filter in headless Chromium: a real conversation ingested and diarized through the
real CLI, the host enrolled from a span of it, then "only the host speaking" on the search page.

Needs the optional speakers extra (`make install-speakers`); skips saying so without it.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest

from core import speakers
from core.db import session_scope
from core.search import cache
from tests import conversations as cv
from tests.conftest import shared_path
from tests.test_search_page import _settle, _shot, app_url, browser, page  # noqa: F401 - fixtures
from tests.test_speakers import HOST, _ingest
from tests.test_spine_e2e import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def extra():
    if not speakers.available():
        pytest.skip(f"needs the optional speakers extra ({speakers.INSTALL_HINT}); missing here: "
                    f"{', '.join(speakers.missing())}")


@pytest.fixture()
def interview(db, tmp_path):
    from core.speakers import admin

    audio_dir = shared_path("audio", "jfk.flac").parent
    # Host (voice C) and a guest (voice D) taking turns: C, D, C, D.
    conv = cv.build(audio_dir, tmp_path, "2 speakers", cv.SEQUENCES["2 speakers"], pauses=True)
    item = _ingest(conv.path, "Interview with a guest")
    with session_scope() as s:
        admin.enrol_from_item(s, "admin", item, conv.turns[0].start, conv.turns[0].end, HOST)
    run = cli("diarize", str(item))
    assert run.returncode == 0, run.stderr
    cache.clear()
    return conv


def _moments(pg) -> list[str]:
    return pg.locator("[class*=st-key-moment-]").all_inner_texts()


def test_only_the_host_speaking_shows_only_his_moments(app_url, interview, page):  # noqa: F811
    # The guest's words (fleurs-en-002, Sintra) are found without the filter, with their speaker shown …
    page.goto(f"{app_url}/?q=" + quote("the romantic town of sintra and lord byron"))
    page.wait_for_selector("a.moment-link")
    _settle(page)
    unfiltered = _moments(page)
    assert any("sintra" in m.lower() and "Guest 1" in m for m in unfiltered), unfiltered

    # … and with "only Dr. Anthony Chaffee speaking" every moment is his, the guest's words are gone.
    page.goto(f"{app_url}/?q=" + quote("the romantic town of sintra and lord byron") + "&speaker=" + quote(HOST)
              + "&only=1")
    _settle(page)
    filtered = _moments(page)
    _shot(page, "speaker-filter-only-host.png")
    assert all(HOST in m and "Guest" not in m for m in filtered), filtered
    assert not any("sintra" in m.lower() for m in filtered), filtered

    # His own words are found under the filter, with his name on the moment.
    page.goto(f"{app_url}/?q=" + quote("hospital protocol for infection control") + "&speaker=" + quote(HOST)
              + "&only=1")
    page.wait_for_selector("a.moment-link")
    _settle(page)
    mine = _moments(page)
    assert mine and all(HOST in m for m in mine), mine
    assert any("infection" in m.lower() for m in mine), mine
    page.get_by_role("button", name="Filters & sort").click()  # the filters live in a popover
    assert page.get_by_label("Only them speaking").is_checked()
