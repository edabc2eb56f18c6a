"""The verdict on the search page, in headless Chromium (the same real `streamlit run`, database
and embeddings as tests/test_search_page.py, whose fixtures this module reuses).

Screenshots go to artifacts/screenshots/search/ (git-ignored): verdict_nothing.png shows the
"nothing on this" state, verdict_answered.png a normal result with its moment links.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.test_search_page import _moment_seconds, _settle, _shot, app_url, archive, browser, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def test_an_out_of_archive_question_shows_nothing_on_this_in_words(app_url, archive, page):  # noqa: F811
    page.goto(f"{app_url}/?q={quote('knitting')}&answer=1")
    page.wait_for_selector("text=No passage in the archive mentions knitting.")
    _settle(page)
    body = page.inner_text("body")
    assert "Answer —" not in body and "From the clips" not in body and page.locator("a.cite").count() == 0
    # At most a few moments, and only under the "related" heading, never as results.
    assert page.locator("a.moment-link:not(.related)").count() == 0
    related = page.locator("a.moment-link.related").count()
    assert related <= 3 and (related == 0 or "Related, but not an answer" in body)
    _shot(page, "verdict_nothing.png")


def test_an_answered_question_shows_results_with_moment_links(app_url, archive, page):  # noqa: F811
    page.goto(f"{app_url}/?q={quote('should I take calcium supplements if I only eat meat')}")
    page.wait_for_selector(".video-title")
    _settle(page)
    body = page.inner_text("body")
    assert "No passage in the archive" not in body and "Related, but not an answer" not in body
    assert page.locator("a.moment-link:not(.related)").count() >= 1  # the answering moments are not marked related
    seconds = _moment_seconds(page)
    assert seconds and all(shown == link for shown, link in seconds)  # the link opens at the second it shows
    _shot(page, "verdict_answered.png")
