"""HTTP routes beside the Streamlit UI (mounted by ui_app.py through st.App): the admin-session cookie.

GET /api/admin/session?code=…  redeem a sign-in's one-use code; set the HttpOnly session cookie
GET /api/admin/sign-out         clear the cookie (the page has already revoked the session row)

The sign-in page loads the first in a hidden frame of the same origin, so the cookie is set
by a real HTTP answer (HttpOnly, SameSite=Strict): page scripts can neither read nor set it.
See core/admin_sessions.py for the whole flow.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from core import admin_sessions
from core.db import session_scope

log = logging.getLogger(__name__)
SESSION_PATH = "/api/admin/session"
SIGN_OUT_PATH = "/api/admin/sign-out"
_BLANK = "<!doctype html><title>admin session</title>"


def _secure(request: Request) -> bool:
    # Behind an HTTPS proxy the UI sees http; the proxy says what the browser used.
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def _no_store(response: HTMLResponse) -> HTMLResponse:
    response.headers["Cache-Control"] = "no-store"
    return response


async def session_cookie(request: Request) -> HTMLResponse:
    from starlette.concurrency import run_in_threadpool

    code = request.query_params.get("code", "")

    def redeem():
        with session_scope() as s:
            return admin_sessions.redeem_handoff(s, code)

    redeemed = await run_in_threadpool(redeem)
    if redeemed is None:
        return _no_store(HTMLResponse(_BLANK, status_code=400))
    token, expires_at = redeemed
    response = _no_store(HTMLResponse(_BLANK))
    max_age = max(1, int((expires_at - datetime.now(timezone.utc)).total_seconds()))
    response.set_cookie(admin_sessions.COOKIE_NAME, token, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=_secure(request))
    return response


async def sign_out(request: Request) -> HTMLResponse:
    response = _no_store(HTMLResponse(_BLANK))
    response.delete_cookie(admin_sessions.COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=_secure(request))
    return response


def routes() -> list[Route]:
    return [
        Route(SESSION_PATH, session_cookie, methods=["GET"]),
        Route(SIGN_OUT_PATH, sign_out, methods=["GET"]),
    ]
