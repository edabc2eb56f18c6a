"""Admin sessions: the throttle per client and user name, server-side sessions behind an HttpOnly
cookie, and — in headless Chromium against the real UI server (ui_app.py) — a reload and a new
tab staying signed in until sign-out."""
from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from core import admin_sessions, auth
from core.config import load_settings
from core.db import session_scope
from core.models import AdminSession
from tests.conftest import require_binary
from tests.ui_process import ui_server

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "session-test-password"


@pytest.fixture(scope="module")
def plain():
    return load_settings(admin_password=PASSWORD, admin_password_hash=None)


def test_five_wrong_passwords_from_one_client_leave_the_admin_able_to_sign_in_from_another(db, plain):
    with session_scope() as s:
        for i in range(5):
            assert not auth.sign_in(s, plain, "admin", "guess", client="203.0.113.9", now=T0 + timedelta(seconds=i)).ok
        stranger = auth.sign_in(s, plain, "admin", PASSWORD, client="203.0.113.9", now=T0 + timedelta(seconds=10))
        assert not stranger.ok and stranger.wait_s > 0  # that client waits, even with the right password
        admin = auth.sign_in(s, plain, "admin", PASSWORD, client="198.51.100.7", now=T0 + timedelta(seconds=11))
        assert admin.ok and admin.user == "admin"
        # The stranger's client is still throttled after the admin's success elsewhere.
        assert auth.throttle_wait_s(s, plain, "admin", client="203.0.113.9", now=T0 + timedelta(seconds=12)) > 0


def test_a_session_token_is_hashed_at_rest_single_use_to_fetch_and_ends_at_sign_out_or_expiry(db):
    with session_scope() as s:
        opened = admin_sessions.open_session(s, "admin", method="password", ttl_s=3600, client="127.0.0.1", now=T0)
    with session_scope() as s:
        token, expires_at = admin_sessions.redeem_handoff(s, opened.handoff_code, now=T0 + timedelta(seconds=5))
        assert expires_at == T0 + timedelta(hours=1)
        assert admin_sessions.redeem_handoff(s, opened.handoff_code, now=T0 + timedelta(seconds=6)) is None  # once
    with session_scope() as s:
        row = s.scalars(select(AdminSession)).one()
        stored = " ".join(str(v) for v in (row.token_hash, row.handoff_hash))
        assert token not in stored and opened.handoff_code not in stored
        assert admin_sessions.session_user(s, token, now=T0 + timedelta(minutes=30)).username == "admin"
        assert admin_sessions.session_user(s, token, now=T0 + timedelta(hours=2)) is None  # expired
        assert admin_sessions.session_user(s, "forged-" + token, now=T0) is None
        assert admin_sessions.revoke(s, token=token) == 1
        assert admin_sessions.session_user(s, token, now=T0 + timedelta(minutes=31)) is None
    with session_scope() as s:
        late = admin_sessions.open_session(s, "admin", method="password", ttl_s=3600, now=T0)
        assert admin_sessions.redeem_handoff(s, late.handoff_code, now=T0 + timedelta(seconds=61)) is None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def ui(db):
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
    require_binary("chromium")
    port = _free_port()
    env = {**os.environ, "ADMIN_PASSWORD": PASSWORD, "ADMIN_PASSWORD_HASH": ""}
    with ui_server("ui_app.py", port, env) as base:
        yield base


def _nav(page) -> str:
    page.locator("[data-testid=stSidebarNav]").first.wait_for(timeout=45_000)
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=stStatusWidget]');"
        " return !w || !/Stop|Running/.test(w.innerText); }",
        timeout=60_000,
    )
    page.wait_for_timeout(800)
    return page.locator("[data-testid=stSidebarNav]").inner_text()


def test_a_reload_and_a_new_tab_stay_signed_in_until_sign_out_in_chromium(ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(ui + "/admin")
            page.get_by_role("textbox", name="Password").wait_for(timeout=45_000)
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Sign out").first.wait_for(timeout=45_000)
            # The hidden frame fetched the cookie: HttpOnly, so no page script can read it.
            deadline = time.monotonic() + 15
            while not [c for c in context.cookies() if c["name"] == admin_sessions.COOKIE_NAME]:
                assert time.monotonic() < deadline, "the session cookie was never set"
                page.wait_for_timeout(200)
            cookie = next(c for c in context.cookies() if c["name"] == admin_sessions.COOKIE_NAME)
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert admin_sessions.COOKIE_NAME not in page.evaluate("document.cookie")

            page.reload()
            assert "Sign out" in _nav(page) and "Costs" in _nav(page)  # still the admin after a reload

            tab = context.new_page()
            tab.goto(ui + "/admin-costs")
            assert "Sign out" in _nav(tab)
            assert tab.get_by_role("textbox", name="Password").count() == 0

            tab.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Sign out").click()
            tab.get_by_text("You are signed out.").wait_for(timeout=45_000)
            page.reload()
            nav = _nav(page)
            assert "Sign out" not in nav and "Sign in" in nav  # the other tab's cookie no longer signs in
        finally:
            browser.close()
    with session_scope() as s:
        rows = s.scalars(select(AdminSession)).all()
        assert len(rows) == 1 and rows[0].revoked_at is not None
