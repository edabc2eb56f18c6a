"""Admin pages under streamlit.testing.v1.AppTest: refused when signed out; each action changes the
database and writes an audit row; budget validation is shown, not raised."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import func, insert, select
from streamlit.testing.v1 import AppTest

from core import audit
from core.backfill import budget, queue
from core.config import get_settings
from core.db import session_scope
from core.models import Job, LedgerEntry, LoginAttempt, MediaItem, Source, Worker
from core.states import FailureCause

PAGES = Path(__file__).resolve().parent.parent / "pages"
ADMIN_PAGES = ["admin_backfill.py", "admin_library.py", "admin_costs.py", "admin_health.py", "admin_audit.py",
               "admin_settings.py"]


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()  # cached aggregates must not leak from one test's database to the next
    yield


def _page(name: str, *, signed_in: bool = True) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=60)
    if signed_in:
        at.session_state["admin_user"] = "admin"
    return at.run()


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _actions(action: str) -> list[audit.AuditRow]:
    with session_scope() as s:
        return audit.list_entries(s, action=action)


def _seed(s, n: int = 3) -> list[int]:
    src = Source(kind="youtube", name="Channel", url="https://www.youtube.com/@test")
    s.add(src)
    s.flush()
    now = datetime.now(timezone.utc)
    ids = list(s.scalars(insert(MediaItem).returning(MediaItem.id), [
        {"source_id": src.id, "external_id": f"v{i}", "title": f"Talk {i} *about* <b>meat</b>", "url": f"https://youtu.be/v{i}",
         "status": "indexed" if i == 0 else "queued", "engine": "captions" if i == 0 else None, "duration_s": 1200.0,
         "indexed_at": now - timedelta(hours=2) if i == 0 else None, "chunk_count": 30 if i == 0 else 0}
        for i in range(n)
    ]))
    s.add(LedgerEntry(at=now - timedelta(hours=1), media_item_id=ids[0], engine="openai-transcribe", audio_minutes=20, usd=0.12))
    s.add(Worker(id="h:1:x", role="scheduler", hostname="h", pid=1, capabilities={"device": "cpu"}, heartbeat_at=now))
    return ids


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_pages_refuse_without_sign_in(db, name):
    at = _page(name, signed_in=False)
    _no_errors(at)
    assert any("Please sign in" in w.value for w in at.warning)
    assert not at.title  # nothing of the page itself was rendered
    assert not at.button


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_pages_render_for_an_admin_on_an_empty_and_a_small_archive(db, name):
    _no_errors(_page(name))
    with session_scope() as s:
        _seed(s)
    st.cache_data.clear()
    at = _page(name)
    _no_errors(at)
    assert at.title and at.title[0].value


def test_sign_in_page_password_and_throttle(db, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "letmein-please")
    get_settings.cache_clear()
    try:
        at = AppTest.from_string("from pages._auth import sign_in_page\nsign_in_page()", default_timeout=30).run()
        at.text_input[1].input("wrong")
        at.button[0].click().run()
        assert at.error and "Wrong user name or password" in at.error[0].value
        assert "admin_user" not in at.session_state
        at.text_input[1].input("letmein-please")
        at.button[0].click().run()
        assert at.session_state["admin_user"] == "admin"
        for _ in range(6):  # the success cleared the slate: five new failures, then a refusal unchecked
            at2 = AppTest.from_string("from pages._auth import sign_in_page\nsign_in_page()", default_timeout=30).run()
            at2.text_input[1].input("bad")
            at2.button[0].click().run()
        # The wait is what is left of the 15-minute window, rounded to minutes: 14 or 15 by timing.
        assert re.match(r"Too many failed attempts\. Try again in 1[45] min", at2.error[0].value), at2.error[0].value
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.success.is_(False))) == 6
        assert _actions("auth.sign_in")[0].actor == "admin"
    finally:
        get_settings.cache_clear()


def test_admin_navigation_signed_out_and_in(db):
    script = (
        "import streamlit as st\nfrom pages._auth import admin_pages\n"
        "pages = admin_pages()['Admin']\n"
        "st.session_state['nav'] = [(p.title, p.url_path, p._visibility) for p in pages]\n"
    )
    at = AppTest.from_string(script, default_timeout=30).run()
    nav = at.session_state["nav"]
    assert [t for t, _, v in nav if v == "visible"] == ["Sign in"]
    assert {"admin", "admin-costs", "sign-out"} <= {u for _, u, _ in nav}
    at = AppTest.from_string(script, default_timeout=30)
    at.session_state["admin_user"] = "admin"
    nav = at.run().session_state["nav"]
    titles = [t for t, _, _ in nav]
    assert titles[:6] == ["Backfill", "Library", "Costs", "Health", "Audit & feedback", "Settings"]
    assert titles[-1] == "Sign out" and "Sign in" not in titles


def test_sign_out_page_forgets_the_admin_and_audits(db):
    at = AppTest.from_string("from pages._auth import sign_out_page\nsign_out_page()", default_timeout=30)
    at.session_state["admin_user"] = "admin"
    at.run()
    assert "admin_user" not in at.session_state
    assert _actions("auth.sign_out")[0].actor == "admin"


# ---------------------------------------------------------------------------------------------
# Backfill page actions
# ---------------------------------------------------------------------------------------------


def _number(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _text(at: AppTest, label: str):
    return next(t for t in at.text_input if t.label == label)


def test_budget_form_refuses_bad_values_in_words_saves_only_changes_and_safety_limits_are_read_only(db):
    at = _page("admin_backfill.py")
    # The hard limits come from configuration: shown, never editable.
    assert not [w for w in [*at.text_input, *at.number_input] if "safety" in w.label.lower()]
    assert any("$15.00 a day" in c.value and "DAILY_SAFETY_LIMIT_USD" in c.value for c in at.caption)
    for daily, monthly, words in (("500", "200.00", "exceeds the monthly budget"),
                                  ("-5", "200.00", "The daily budget cannot be negative"),
                                  ("ten dollars", "200.00", "The daily budget must be a number of dollars"),
                                  ("10.00", "99999", "exceeds the monthly safety limit ($300.00, set in configuration")):
        at = _page("admin_backfill.py")
        _text(at, "Daily budget (USD)").input(daily)
        _text(at, "Monthly budget (USD)").input(monthly)
        _button(at, "Save budget").click().run()
        _no_errors(at)
        assert any(words in e.value for e in at.error), (daily, monthly, [e.value for e in at.error])
        assert not any("Budget saved" in m.value for m in at.success)
    with session_scope() as s:
        assert (budget.get_budget(s).daily_usd, budget.get_budget(s).monthly_usd) == (10.0, 200.0)
    assert not _actions("budget.set")

    at = _page("admin_backfill.py")
    _button(at, "Save budget").click().run()  # nothing changed: not "saved"
    _no_errors(at)
    assert any("Nothing to save: the budget is unchanged." in i.value for i in at.info)
    assert not any("Budget saved" in m.value for m in at.success) and not _actions("budget.set")

    at = _page("admin_backfill.py")
    _text(at, "Daily budget (USD)").input("7.50")
    _text(at, "Monthly budget (USD)").input("$150")
    _button(at, "Save budget").click().run()
    _no_errors(at)
    with session_scope() as s:
        assert (budget.get_budget(s).daily_usd, budget.get_budget(s).monthly_usd) == (7.5, 150.0)
    [row] = _actions("budget.set")
    assert row.actor == "admin" and row.after["daily_usd"] == 7.5
    assert any("Budget saved" in m.value for m in at.success)


def test_without_a_key_the_backfill_page_says_the_paid_api_cannot_run(db):
    at = _page("admin_backfill.py")
    _no_errors(at)
    assert any("The paid API cannot run here" in c.value and "needs an API key" in c.value for c in at.caption)


def test_pause_resume_and_sync_buttons(db):
    at = _page("admin_backfill.py")
    at.text_input[0].input("quality check")
    _button(at, "Pause backfill").click().run()
    _no_errors(at)
    with session_scope() as s:
        assert queue.get_controls(s).paused
    assert _actions("backfill.pause")[0].after["reason"] == "quality check"
    assert any("Backfill paused" in w.value for w in at.warning)
    _button(at, "Resume backfill").click().run()
    with session_scope() as s:
        assert not queue.get_controls(s).paused
    assert _actions("backfill.resume")
    _button(at, "Sync channel now").click().run()
    _no_errors(at)
    assert _actions("sync.request")[0].actor == "admin"
    assert at.status and "waiting for the scheduler" in at.status[0].label


def test_limits_and_priorities_forms(db):
    at = _page("admin_backfill.py")
    _number(at, "Jobs running at once (all workers)").set_value(4)
    _button(at, "Save limits").click().run()
    _no_errors(at)
    with session_scope() as s:
        assert queue.get_controls(s).max_concurrency == 4
    assert _actions("backfill.controls")[0].after["max_concurrency"] == 4
    assert any("Work limits saved" in m.value for m in at.success)
    _button(at, "Save limits").click().run()  # the same values again: not "saved"
    assert any("Nothing to save: the limits are unchanged." in i.value for i in at.info)
    assert not any("Work limits saved" in m.value for m in at.success) and len(_actions("backfill.controls")) == 1
    at.multiselect[0].set_value(["topic", "most_viewed"])
    at.text_area[0].input("insulin, ketosis\nplant toxins")
    _button(at, "Save priorities").click().run()
    _no_errors(at)
    assert _actions("priorities.order")[0].after == {"value": ["topic", "most_viewed"]}
    assert _actions("priorities.topics")[0].after == {"value": ["insulin", "ketosis", "plant toxins"]}


def test_dead_letter_is_grouped_by_cause_in_plain_words_with_raw_text_behind_details_and_group_actions(db):
    raw_dns = "SourceUnreachable: YouTube says the request failed on the network: Failed to resolve 'www.youtube.com'"
    with session_scope() as s:
        ids = _seed(s, 8)
        now = datetime.now(timezone.utc)
        for n, item_id in enumerate(ids[1:]):  # 5 unreachable, 2 private
            cause, error = ((FailureCause.SOURCE_UNREACHABLE, raw_dns) if n < 5
                            else (FailureCause.PRIVATE, f"PrivateItem: video {item_id} is private"))
            s.add(Job(media_item_id=item_id, status="dead", attempts=3, last_error=error, failure_cause=cause,
                      finished_at=now - timedelta(minutes=n)))
            s.get(MediaItem, item_id).status = "dead"
    at = _page("admin_backfill.py")
    _no_errors(at)
    heads = [m.value for m in at.markdown if "(5)" in m.value or "(2)" in m.value]
    assert heads[0].startswith("**YouTube could not be reached (5)**")  # the biggest group first
    assert heads[1].startswith("**Video is private, members\\-only or age\\-restricted (2)**")
    assert not any("Failed to resolve" in c.value for c in at.code) and not at.dataframe  # raw text only on request
    at.toggle(key="group_details_0").set_value(True).run()
    _no_errors(at)
    assert set(at.dataframe[0].value["Error as raised"]) == {raw_dns}

    at.button(key="group_retry_0").click().run()
    _no_errors(at)
    (row,) = _actions("dead.retry_group")
    assert row.target == "dead letter: YouTube could not be reached" and row.after["revived"] == 5
    assert len(row.before["jobs"]) == 5
    at = _page("admin_backfill.py")
    assert any(m.value.startswith("**Video is private") for m in at.markdown)
    assert not any("could not be reached" in m.value for m in at.markdown)
    at.button(key="group_discard_0").click().run()
    _no_errors(at)
    assert _actions("dead.discard_group")[0].after["discarded"] == 2
    with session_scope() as s:
        statuses = sorted(s.scalars(select(Job.status).where(Job.media_item_id.in_(ids[1:]))))
        assert statuses == ["cancelled"] * 2 + ["queued"] * 5
        assert sum(s.get(MediaItem, i).skipped for i in ids[1:]) == 2
    at = _page("admin_backfill.py")
    assert any("No dead-lettered items" in m.value for m in at.success)


def test_one_dead_job_can_still_be_retried_or_discarded_from_its_group_details(db):
    with session_scope() as s:
        a, b, _ = _seed(s)
        for item_id in (a, b):
            s.add(Job(media_item_id=item_id, status="dead", attempts=3, last_error=f"PrivateItem: video {item_id} is private",
                      failure_cause=FailureCause.PRIVATE, finished_at=datetime.now(timezone.utc)))
    at = _page("admin_backfill.py")
    at.toggle(key="group_details_0").set_value(True).run()
    assert any("is private" in c.value for c in at.code)
    _button(at, "Retry this one").click().run()
    _no_errors(at)
    assert _actions("dead.retry")
    at.toggle(key="group_details_0").set_value(True).run()
    _button(at, "Discard this one").click().run()
    _no_errors(at)
    assert _actions("dead.discard")
    with session_scope() as s:
        statuses = sorted(s.scalars(select(Job.status).where(Job.media_item_id.in_((a, b)))))
        assert statuses == ["cancelled", "queued"]


def test_a_paused_source_is_said_on_backfill_and_health_and_the_library_shows_each_items_error(db):
    from core.backfill import breaker

    with session_scope() as s:
        ids = _seed(s, 4)
        src = s.get(MediaItem, ids[1]).source_id
        s.add(Job(media_item_id=ids[1], status="retry", attempts=1, failure_cause=FailureCause.SOURCE_UNREACHABLE,
                  last_error="SourceUnreachable: Failed to resolve 'www.youtube.com'", run_after=datetime.now(timezone.utc)))
        s.add(Job(media_item_id=ids[2], status="dead", attempts=1, failure_cause=FailureCause.REMOVED,
                  last_error="Unavailable: This video has been removed by the uploader"))
        s.add(Job(media_item_id=ids[3], status="queued"))
        s.get(MediaItem, ids[2]).status = "dead"
        for _ in range(3):
            breaker.record_failure(s, src, FailureCause.SOURCE_UNREACHABLE, "Failed to resolve 'www.youtube.com'")
    for page in ("admin_backfill.py", "admin_health.py"):
        at = _page(page)
        _no_errors(at)
        assert any(re.search(r"YouTube unreachable since \d\d:\d\d UTC — 2 items waiting", e.value) for e in at.error), page
    at = _page("admin_library.py")
    _no_errors(at)
    errors = dict(zip(at.dataframe[0].value["#"], at.dataframe[0].value["Error"]))
    assert errors == {ids[0]: "", ids[1]: "YouTube could not be reached", ids[2]: "Video is removed or does not exist",
                      ids[3]: ""}


# ---------------------------------------------------------------------------------------------
# Library page actions
# ---------------------------------------------------------------------------------------------


def test_library_item_actions(db):
    with session_scope() as s:
        ids = _seed(s)
    at = _page("admin_library.py")
    _no_errors(at)
    assert at.dataframe and len(at.dataframe[0].value) == 3
    item = at.selectbox(key="lib_item").value
    _button(at, "Pin (do next)").click().run()
    assert _actions("item.pin")[0].target.startswith(f"item {item.id}:")
    _button(at, "Skip").click().run()
    _no_errors(at)
    assert _actions("item.skip")
    at.selectbox(key="act_engine").select("openai")
    _button(at, "Re-transcribe").click().run()
    _no_errors(at)
    assert any("already" in e.value or "skipped" in e.value for e in at.error)  # skipped items are refused, kindly
    _button(at, "Un-skip").click().run()
    _button(at, "Re-transcribe").click().run()
    _no_errors(at)
    assert _actions("item.retranscribe")[0].after["engine"] == "openai"
    at.checkbox(key="act_confirm_delete").check()
    at.run()
    _button(at, "Delete item").click().run()
    _no_errors(at)
    with session_scope() as s:
        assert s.get(MediaItem, item.id) is None and s.scalar(select(func.count()).select_from(MediaItem)) == len(ids) - 1
        pinned = s.scalar(select(func.count()).select_from(MediaItem).where(MediaItem.pinned.is_(True)))
    assert _actions("item.delete")[0].before["title"] == item.title
    assert pinned == 0


def test_library_search_filter_and_pager(db):
    with session_scope() as s:
        src = Source(kind="youtube", name="C", url="u")
        s.add(src)
        s.flush()
        s.execute(insert(MediaItem), [{"source_id": src.id, "external_id": f"x{i}", "title": f"Episode {i} on fasting" if i % 2 else f"Episode {i}",
                                       "url": "u", "status": "queued"} for i in range(130)])
    at = _page("admin_library.py")
    assert "of 130" in at.markdown[-0].value or any("of 130" in m.value for m in at.markdown)
    _button(at, "Next →").click().run()
    assert any("Items 51–100 of 130" in m.value for m in at.markdown)
    at.text_input(key="lib_search").input("fasting").run()
    assert any("of 65 · page 1 of 2" in m.value for m in at.markdown)  # a new search starts at page 1
    at.text_input(key="lib_search").input("no such words").run()
    assert any("No items match" in i.value for i in at.info)


def test_settings_prices_form(db):
    at = _page("admin_settings.py")
    _number(at, "USD per audio minute").set_value(0.004)
    _button(at, "Save prices").click().run()
    _no_errors(at)
    with session_scope() as s:
        assert budget.get_prices(s)["openai-transcribe"].per_audio_minute == 0.004
    assert _actions("budget.price")[0].after["per_audio_minute"] == 0.004


def test_settings_search_ranking_changes_what_search_uses(db):
    from core.admin_actions import AdminActionError, set_search_ranking
    from core.search.fusion import fusion_config

    at = _page("admin_settings.py")
    assert at.slider[0].value == 0.6 and at.toggle[0].value is True  # the benchmarked defaults
    assert "top 3 passages" in at.toggle[0].label
    at.slider[0].set_value(0.35)
    at.toggle[0].set_value(False)
    _button(at, "Save ranking").click().run()
    _no_errors(at)
    with session_scope() as s:
        cfg = fusion_config(s)
        assert (cfg.alpha, cfg.rerank) == (0.35, False)
        with pytest.raises(AdminActionError, match="between 0 and 1"):
            set_search_ranking(s, "admin", alpha=1.5, rerank=False)
    row = _actions("search.ranking")[0]
    assert (row.before, row.after) == ({"alpha": 0.6, "rerank": True}, {"alpha": 0.35, "rerank": False})


def test_audit_page_lists_actions_and_feedback(db):
    with session_scope() as s:
        ids = _seed(s)
        audit.record(s, "admin", "item.pin", f"item {ids[0]}: Talk", {"pinned": False}, {"pinned": True})
        from core.models import Feedback

        s.add(Feedback(query="insulin", media_item_id=ids[0], start_s=75.0, vote=1))
    at = _page("admin_audit.py")
    _no_errors(at)
    log = at.dataframe[0].value
    assert list(log["Action"]) == ["item.pin"] and "pinned: false → true" in log["Before → after"][0]
    feedback = at.dataframe[1].value
    assert feedback["Query"][0] == "insulin" and feedback["At"][0] == "1:15" and feedback["Helpful"][0] == 1


def test_sign_in_page_offers_oidc_when_auth_is_configured(db):
    at = AppTest.from_string("from pages._auth import sign_in_page\nsign_in_page()", default_timeout=30)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
        "google": {"client_id": "id", "client_secret": "secret",
                   "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration"},
    }
    at.run()
    _no_errors(at)
    assert [b.label for b in at.button][:1] == ["Sign in with Google"]
