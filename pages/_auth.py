"""Admin sign-in: the Admin section of the navigation, the sign-in/out pages, and `require_admin()`.

Signed out, the Admin section shows one visible page, "Sign in" at /admin, plus hidden pages
at every admin URL that show the same form: a bookmarked /admin-costs asks for the password
and, once signed in, the same URL is the Costs page (page identity in st.navigation is the
URL path). Every admin page also calls `require_admin()` itself, so a page reached any other
way is refused too.

Password sign-in (core.auth: argon2, throttled per client and user name) opens a server-side
session (core/admin_sessions.py) whose token the browser keeps in an HttpOnly cookie, set by
the UI server's own route (core/admin_web.py, mounted by ui_app.py): a reload or a new tab
stays signed in until sign-out or expiry. With `[auth]` configured in secrets.toml, Streamlit's OIDC
sign-in (st.login) is offered as well; such an account is an admin only if its e-mail is in
ADMIN_EMAILS.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core import admin_sessions, auth
from core.admin_web import SESSION_PATH, SIGN_OUT_PATH
from core.config import get_settings
from core.db import session_scope

SESSION_KEY = "admin_user"
SESSION_METHOD = "admin_method"
SESSION_ID = "admin_session_id"
_COOKIE_CODE = "admin_cookie_code"  # a one-use code: this tab fetches its cookie with it once
_CLEAR_COOKIE = "admin_clear_cookie"
PAGES_DIR = Path(__file__).resolve().parent

# (file, title, icon, url path) of the console's own pages, in menu order. The first is /admin.
ADMIN_PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("admin_backfill.py", "Backfill", ":material/play_circle:", "admin"),
    ("admin_library.py", "Library", ":material/video_library:", "admin-library"),
    ("admin_costs.py", "Costs", ":material/payments:", "admin-costs"),
    ("admin_health.py", "Health", ":material/monitor_heart:", "admin-health"),
    ("admin_audit.py", "Audit & feedback", ":material/history:", "admin-audit"),
    ("admin_settings.py", "Settings", ":material/tune:", "admin-settings"),
)


# ---------------------------------------------------------------------------------------------
# Who is signed in
# ---------------------------------------------------------------------------------------------


def _auth_section() -> dict[str, Any] | None:
    """The [auth] table of Streamlit's secrets, or None (no secrets file is not an error)."""
    try:
        section = st.secrets.get("auth")
    except Exception:  # noqa: BLE001 - a missing or unreadable secrets file simply means "no OIDC"
        return None
    return section.to_dict() if hasattr(section, "to_dict") else (dict(section) if section else None)


def oidc_enabled() -> bool:
    return auth.oidc_configured(get_settings(), _auth_section())


def _oidc_email() -> str | None:
    try:
        if st.user.is_logged_in:
            return st.user.get("email")
    except Exception:  # noqa: BLE001 - st.user unavailable outside a real session
        return None
    return None


def _client() -> str | None:
    """The browser's address as the UI server saw it (the sign-in throttle counts per client)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no request context (AppTest): one shared "unknown" client
        return None
    return address if isinstance(address, str) else None


def _cookie_token() -> str | None:
    try:
        token = st.context.cookies.get(admin_sessions.COOKIE_NAME)
    except Exception:  # noqa: BLE001 - no request context
        return None
    return token if isinstance(token, str) else None  # AppTest hands back a stand-in object


def _restore_from_cookie() -> str | None:
    """A reload or new tab: the session cookie names a live server-side session."""
    token = _cookie_token()
    if not token or st.session_state.get(_CLEAR_COOKIE):
        return None
    with session_scope() as session:
        active = admin_sessions.session_user(session, token)
    if active is None:
        return None
    st.session_state[SESSION_KEY] = active.username
    st.session_state[SESSION_METHOD] = active.method
    st.session_state[SESSION_ID] = active.session_id
    return active.username


def current_admin() -> str | None:
    """The signed-in admin's name, or None."""
    user = st.session_state.get(SESSION_KEY)
    if user:
        return str(user)
    user = _restore_from_cookie()
    if user:
        return user
    if oidc_enabled():
        return auth.oidc_admin(get_settings(), _oidc_email())
    return None


def require_admin() -> str:
    """The signed-in admin's name; otherwise a friendly refusal and st.stop()."""
    user = current_admin()
    if user is None:
        st.warning(
            "This page is for the archive's administrators. Please sign in (**Admin → Sign in** in the sidebar).",
            icon=":material/lock:",
        )
        st.stop()
    return user


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


def _password_form() -> None:
    settings = get_settings()
    if not auth.password_configured(settings):
        if not oidc_enabled():
            st.info(
                "No admin sign-in is configured yet. Set `ADMIN_PASSWORD_HASH` (make one with "
                "`python -m core hash-password`) in the environment or `.streamlit/secrets.toml`, "
                "or configure `[auth]` for single sign-on.",
                icon=":material/info:",
            )
        return
    with st.form("admin_sign_in", clear_on_submit=False, border=True):
        username = st.text_input("User name", value=settings.admin_user, autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", width="stretch")
    if submitted:
        client = _client()
        with session_scope() as session:  # commits the attempt row whatever the outcome
            result = auth.sign_in(session, settings, username, password, client=client)
            opened = None
            if result.ok and result.user:
                opened = admin_sessions.open_session(
                    session, result.user, method="password", ttl_s=settings.admin_session_hours * 3600, client=client
                )
        if result.ok and opened is not None:
            st.session_state[SESSION_KEY] = result.user
            st.session_state[SESSION_METHOD] = "password"
            st.session_state[SESSION_ID] = opened.session_id
            st.session_state[_COOKIE_CODE] = opened.handoff_code
            st.session_state.pop(_CLEAR_COOKIE, None)
            st.rerun()  # the same URL is now the admin page it names
        st.error(result.message, icon=":material/error:")


def _oidc_block() -> None:
    if not oidc_enabled():
        return
    email = _oidc_email()
    if email:
        st.error(f"The account {email} is not an administrator of this archive.", icon=":material/block:")
        if st.button("Sign out of this account"):
            st.logout()
        return
    for provider in auth.oidc_providers(_auth_section()):
        label = f"Sign in with {provider.title()}" if provider else "Sign in with single sign-on"
        if st.button(label, key=f"oidc_{provider}", width="stretch"):
            st.login(provider) if provider else st.login()
    if auth.password_configured(get_settings()):
        st.caption("or with the admin password:")


def sign_in_page() -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Admin sign-in")
        st.caption("The admin console runs the backfill, budgets and the library. Viewers only need Search.")
        if st.session_state.pop("signed_out_note", False):
            st.success("You are signed out.", icon=":material/logout:")
        _oidc_block()
        _password_form()


def sign_out_page() -> None:
    """Sign out at once (the menu item says so), then show the sign-in form on the same URL."""
    user = current_admin()
    if user is None:
        sign_in_page()
        return
    method = st.session_state.get(SESSION_METHOD) or ("password" if st.session_state.get(SESSION_KEY) else "oidc")
    with session_scope() as session:
        auth.sign_out(session, user, method=method)
        # The row is what signs a browser in: revoked, any copy of the cookie is worthless.
        admin_sessions.revoke(session, session_id=st.session_state.get(SESSION_ID), token=_cookie_token())
    for key in (SESSION_KEY, SESSION_METHOD, SESSION_ID, _COOKIE_CODE):
        st.session_state.pop(key, None)
    st.session_state[_CLEAR_COOKIE] = True
    st.session_state["signed_out_note"] = True
    if method == "oidc":
        st.logout()  # clears Streamlit's identity cookie and starts a new session
    st.rerun()


def _extra_admin_files() -> list[tuple[str, str, str, str]]:
    """Other engineers' pages named pages/admin_<name>.py (e.g. Zoom) join the Admin section."""
    known = {f for f, *_ in ADMIN_PAGES}
    extra = []
    for path in sorted(PAGES_DIR.glob("admin_*.py")):
        if path.name not in known:
            name = path.stem.removeprefix("admin_")
            extra.append((path.name, name.replace("_", " ").title(), ":material/extension:", f"admin-{name.replace('_', '-')}"))
    return extra


def _available() -> list[tuple[str, str, str, str]]:
    return [p for p in ADMIN_PAGES if (PAGES_DIR / p[0]).exists()] + _extra_admin_files()


def _cookie_frame() -> None:
    """Fetch (or clear) the session cookie from the UI server's own route, in an invisible frame."""
    import streamlit.components.v1 as components

    code = st.session_state.pop(_COOKIE_CODE, None)
    if code:
        components.iframe(f"{SESSION_PATH}?code={code}", height=0)
    elif st.session_state.get(_CLEAR_COOKIE) == True:  # noqa: E712 - once per sign-out
        st.session_state[_CLEAR_COOKIE] = "sent"
        components.iframe(SIGN_OUT_PATH, height=0)


def admin_pages() -> dict[str, list]:
    """The Admin section for st.navigation: sign-in when signed out; the console + sign-out when signed in."""
    _cookie_frame()
    pages = _available()
    if current_admin() is None:
        entries = [st.Page(sign_in_page, title="Sign in", icon=":material/login:", url_path="admin")]
        # Hidden twins at the other admin URLs (and sign-out) show the same form: no "page not found".
        entries += [
            st.Page(sign_in_page, title=title, url_path=url, visibility="hidden")
            for _, title, _, url in pages
            if url != "admin"
        ]
        entries.append(st.Page(sign_in_page, title="Signed out", url_path="sign-out", visibility="hidden"))
        return {"Admin": entries}
    entries = [st.Page(str(PAGES_DIR / f), title=t, icon=i, url_path=u) for f, t, i, u in pages]
    entries.append(st.Page(sign_out_page, title="Sign out", icon=":material/logout:", url_path="sign-out"))
    return {"Admin": entries}
