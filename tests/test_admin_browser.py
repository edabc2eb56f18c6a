"""The admin console in a real browser: headless Chromium signs in, changes a budget, pauses the
backfill and sees the charts, over the seeded demo (the real 572-video listing, a month of ledger).

Screenshots of every admin page land in artifacts/screenshots/ (git-ignored) for a person to judge.
"""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from core import audit
from core.backfill import budget, queue
from core.db import session_scope
from tests.conftest import require_binary, shared_path
from tests.ui_process import ui_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots" / "admin"  # its own folder: the search tests keep theirs
PASSWORD = "browser-test-password"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PAGES = [  # (menu title, url path, file name, text that proves the page rendered)
    ("Backfill", "admin", "2-backfill", "Dead letter"),
    ("Library", "admin-library", "3-library", "Item actions"),
    ("Costs", "admin-costs", "4-costs", "Failures over time"),
    ("Health", "admin-health", "5-health", "Storage"),
    ("Audit & feedback", "admin-audit", "6-audit", "Audit log"),
    ("Settings", "admin-settings", "7-settings", "Prices"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def demo_app(db):
    """A freshly started server for the seeded demo, started as users start it (`python -m core.ui_server
    run ui_app.py`, see core/cli/serve.py) on a free port (same embedded database)."""
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
    require_binary("chromium")
    listing = shared_path("youtube", "anthonychaffeemd_flat_playlist.jsonl")
    from core.demo import seed_demo

    with session_scope() as s:
        seed_demo(s, listing=listing)
    port = _free_port()
    env = {**os.environ, "ADMIN_PASSWORD": PASSWORD, "ADMIN_PASSWORD_HASH": ""}
    with ui_server("ui_app.py", port, env) as base:
        yield base


def _settle(page, text: str | None) -> None:
    """Wait for the page's marker text (or any heading) and for Streamlit to finish running the script."""
    marker = page.get_by_text(text, exact=False) if text else page.locator("[data-testid=stMain] h1")
    marker.first.wait_for(timeout=45_000)
    page.wait_for_function(  # the running indicator (with its Stop button) is gone
        "() => { const w = document.querySelector('[data-testid=stStatusWidget]');"
        " return !w || !/Stop|Running/.test(w.innerText); }",
        timeout=60_000,
    )
    page.wait_for_timeout(1200)  # charts draw after the script run


def _shoot(page, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it first."""
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": max(900, int(height) + 60)})
    page.wait_for_timeout(800)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 900})
    return path


def _assert_no_traceback(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0, page.locator("[data-testid=stException]").first.inner_text()


def test_admin_console_in_chromium(demo_app):
    from playwright.sync_api import sync_playwright

    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        try:
            # The fresh server's very first page load is a bookmarked admin link: it shows the sign-in
            # form. (Streamlit would otherwise treat pages/ as a v1 pages folder until the first script
            # run reaches st.navigation and put a "Page not found" dialog over it: core/ui_server.py.)
            page.goto(demo_app + "/admin-costs")
            _settle(page, "Admin sign-in")
            shown = page.locator("body").inner_text()
            assert "Page not found" not in shown, shown[-600:]  # the dialog comes last
            assert page.get_by_role("textbox", name="Password").is_visible()
            assert page.url.rstrip("/").endswith("/admin-costs")
            _assert_no_traceback(page)
            # Viewers see only Search; the Admin section offers just "Sign in".
            nav = page.locator("[data-testid=stSidebarNav]").inner_text()
            assert "Sign in" in nav and "Costs" not in nav and "Backfill" not in nav
            _shoot(page, "1-sign-in")

            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            _settle(page, "Failures over time")  # the same URL is now the Costs page
            charts = page.locator("[data-testid=stVegaLiteChart]")
            assert charts.count() >= 6
            for i in range(charts.count()):
                assert charts.nth(i).locator("canvas, svg").count() > 0  # drawn, not an empty frame

            # Change a budget and pause the backfill, as an admin would.
            page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Backfill").click()
            _settle(page, "Dead letter")
            daily = page.get_by_role("textbox", name="Daily budget (USD)")
            daily.fill("2.50")
            daily.press("Tab")
            page.get_by_role("button", name="Save budget").click()
            _settle(page, "Budget saved.")
            page.get_by_role("button", name="Pause backfill").click()
            _settle(page, "Backfill paused")
            with session_scope() as s:
                assert budget.get_budget(s).daily_usd == 2.5
                assert queue.get_controls(s).paused
                actions = [r.action for r in audit.list_entries(s, actor="admin")]
            assert {"auth.sign_in", "budget.set", "backfill.pause"} <= set(actions)

            for title, url, name, marker in PAGES:
                page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=title).click()
                _settle(page, marker)
                _assert_no_traceback(page)
                assert f"/{url}" in page.url or (url == "admin" and page.url.rstrip("/").endswith("/admin"))
                _shoot(page, name)
            # Admin pages other engineers add (pages/admin_<name>.py, e.g. Zoom) are shot too.
            known = {title for title, *_ in PAGES} | {"Sign out", "Search"}
            links = page.locator("[data-testid=stSidebarNav] a")
            titles = [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts() if t.strip()]  # drop icon names
            extra = [t for t in titles if t not in known]
            for i, title in enumerate(extra, start=len(PAGES) + 2):
                page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=title).click()
                _settle(page, None)
                _assert_no_traceback(page)
                _shoot(page, f"{i}-{title.lower().replace(' ', '-')}")
        finally:
            browser.close()
    assert len(list(SHOTS.glob("*.png"))) >= len(PAGES) + 1

