"""Small shared pieces of the admin pages: run an action safely, flash its outcome, format values.

`run_action` is the one place a page changes anything: it opens a transaction, calls one
core.admin_actions function with the signed-in admin as actor, and turns a refusal into
st.error — never a traceback. Its outcome survives the st.rerun that refreshes the page.

`run_page` wraps every page (streamlit_app.py): while the database is away (a restart) the
page says "The archive is briefly unavailable — retrying" and runs itself again every few
seconds until it answers, instead of Streamlit's error box.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

import streamlit as st

from core.admin_actions import AdminActionError, NothingToSave
from core.db import session_scope
from core.outage import OutageLog, is_connection_lost

log = logging.getLogger(__name__)
_FLASH = "admin_flash"
UNAVAILABLE = "The archive is briefly unavailable — retrying"
RETRY_S = 3.0
_outage = OutageLog("UI", log)  # one log line per outage, for every session of this server


def run_page(render: Callable[[], None]) -> None:
    """Render a page; on a lost database connection say so and re-run in RETRY_S seconds."""
    try:
        render()
    except Exception as exc:
        if not is_connection_lost(exc):
            raise
        _outage.lost(exc)
        st.info(f"{UNAVAILABLE}…", icon=":material/autorenew:")
        time.sleep(RETRY_S)  # this session's script thread only; the page shows the note meanwhile
        st.rerun()
    else:
        _outage.back()


def run_action(fn: Callable[..., Any], actor: str, *args: Any, success: str, **kwargs: Any) -> bool:
    """Run `fn(session, actor, *args, **kwargs)` in one transaction; flash the outcome; True when done."""
    try:
        with session_scope() as session:
            fn(session, actor, *args, **kwargs)
    except NothingToSave as exc:  # not an error, and not "saved" either
        st.info(str(exc), icon=":material/info:")
        return False
    except AdminActionError as exc:
        st.error(str(exc), icon=":material/error:")
        return False
    except Exception:  # noqa: BLE001 - the admin gets a sentence, the log gets the traceback
        log.exception("admin action %s failed", getattr(fn, "__name__", fn))
        st.error("That did not work because of an unexpected error; it is in the server log. Nothing was changed.",
                 icon=":material/error:")
        return False
    st.cache_data.clear()  # aggregates on every page must show the change at once
    st.session_state[_FLASH] = success
    return True


def show_flash() -> None:
    """Show the last action's success message once (after the rerun that refreshed the page)."""
    message = st.session_state.pop(_FLASH, None)
    if message:
        st.success(message, icon=":material/check_circle:")


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md_escape(text: str | None) -> str:
    """User or source text inside st.markdown: shown literally, never as links, HTML or formatting."""
    return _MD_SPECIAL.sub(r"\\\1", text or "")


def usd(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"${value:,.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def when(value: datetime | date | None, *, unknown: str = "—") -> str:
    if value is None:
        return unknown
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            return value.strftime("%Y-%m-%d %H:%M")
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return value.strftime("%Y-%m-%d")


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


# Status colours shared by the tables (text colour; readable on white and without emoji fonts).
STATUS_COLORS = {
    "queued": "#5b6b7a", "fetching": "#1f6fb2", "transcribing": "#1f6fb2", "indexed": "#2e7d32",
    "review": "#b26a00", "failed": "#c0392b", "skipped": "#8a8a8a", "dead": "#8e1b10",
    "alive": "#2e7d32", "stale": "#c0392b", "signed in": "#2e7d32", "refused": "#c0392b",
}
# st.markdown badge colours for the same statuses.
BADGE_COLORS = {
    "queued": "gray", "fetching": "blue", "transcribing": "blue", "indexed": "green",
    "review": "orange", "failed": "red", "skipped": "gray", "dead": "red",
}


def color_column(df, column: str, colors: dict[str, str] | None = None):
    """A pandas Styler that colours one text column by value (st.dataframe renders it)."""
    colors = colors or STATUS_COLORS

    def paint(value: object) -> str:
        color = colors.get(str(value))
        return f"color: {color}; font-weight: 600" if color else ""

    return df.style.map(paint, subset=[column])
