"""Audit & feedback: every admin action (who, what, before → after, when), sign-ins, and viewers' votes."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import admin_actions, audit, auth
from core.db import session_scope
from core.search.feedback import feedback_summary
from core.search.trending import hidden_terms, trending
from pages._auth import require_admin
from pages._ui import color_column, md_escape, page_header, run_action, show_flash, when

actor = require_admin()
page_header("Audit & feedback", "Every change made in the console, newest first, and what viewers think of the results.")

PAGE_SIZE = 50


def _clock(seconds: float | None) -> str:
    """A moment in a video as players show it: 1:15, 1:02:03."""
    if seconds is None:
        return "—"
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
st.subheader("Audit log")
show_flash()
log_box = st.container()
feedback_box = st.container()
trending_box = st.container()
signin_box = st.container()

with log_box:
    with session_scope() as s:
        actions = audit.distinct_actions(s)
        actors = audit.distinct_actors(s)
    c1, c2, c3 = st.columns([2, 2, 3])
    action = c1.selectbox("Action", ["all"] + actions, key="audit_action")
    who = c2.selectbox("Who", ["all"] + actors, key="audit_actor")
    text = c3.text_input("Search", placeholder="item title, target or action", key="audit_search")
    filters = {"action": None if action == "all" else action, "actor": None if who == "all" else who, "search": text or None}
    if st.session_state.get("audit_filters") != filters:
        st.session_state["audit_filters"], st.session_state["audit_page"] = filters, 1
    with session_scope() as s:
        total = audit.count_entries(s, **filters)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(st.session_state.get("audit_page", 1), pages)
        rows = audit.list_entries(s, **filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    if not rows:
        st.info("Nothing recorded yet: admin actions (budgets, pauses, pins, retries, deletions …) appear here."
                if total == 0 and not any(filters.values()) else "No entries match.", icon=":material/history:")
    else:
        st.dataframe(
            pd.DataFrame([{"When": when(r.at), "Who": r.actor, "Action": r.action, "Target": r.target or "",
                           "Before → after": audit.describe_change(r.before, r.after)} for r in rows]),
            hide_index=True, width="stretch",
            column_config={"Before → after": st.column_config.TextColumn(width="large"),
                           "Target": st.column_config.TextColumn(width="medium")},
        )
        p1, p2, p3 = st.columns([1, 3, 1], vertical_alignment="center")
        if p1.button("← Newer", disabled=page <= 1, key="audit_prev"):
            st.session_state["audit_page"] = page - 1
            st.rerun()
        p2.markdown(f"<div style='text-align:center'>{total:,} entries · page {page} of {pages}</div>",
                    unsafe_allow_html=True)
        if p3.button("Older →", disabled=page >= pages, key="audit_next"):
            st.session_state["audit_page"] = page + 1
            st.rerun()
        with st.expander("Full detail of one entry"):
            chosen = st.selectbox("Entry", rows, format_func=lambda r: f"{when(r.at)} · {r.action} · {r.target or ''}"[:120])
            if chosen is not None:
                b, a = st.columns(2)
                b.caption("Before")
                b.json(chosen.before or {}, expanded=True)
                a.caption("After")
                a.json(chosen.after or {}, expanded=True)

with feedback_box:
    st.subheader("Search feedback")
    with session_scope() as s:
        votes = feedback_summary(s)
    if not votes:
        st.info("No votes yet. Viewers can mark each search result helpful or not; their votes appear here.",
                icon=":material/thumbs_up_down:")
    else:
        up, down = sum(v.up for v in votes), sum(v.down for v in votes)
        st.caption(f"{up + down:,} votes: {up:,} helpful and {down:,} not helpful over {len(votes):,} query–moment pairs, most voted first.")
        st.dataframe(
            pd.DataFrame([{"Query": v.query, "Video": v.title or "(deleted item)",
                           "At": _clock(v.start_s),
                           "Helpful": v.up, "Not helpful": v.down, "Net": v.up - v.down} for v in votes]),
            hide_index=True, width="stretch",
            column_config={"Query": st.column_config.TextColumn(width="medium"),
                           "Video": st.column_config.TextColumn(width="large"),
                           "Net": st.column_config.NumberColumn(format="%+d", help="Helpful minus not helpful")},
        )

with trending_box:
    st.subheader("Trending searches")
    st.caption("What viewers see under “Trending”: answered questions that at least 3 browser sessions asked this "
               "week. Hide a word or question and every trending question containing it disappears for viewers.")
    with session_scope() as s:
        shown, hidden = trending(s, limit=10), hidden_terms(s)
    st.markdown(" · ".join(f"**{md_escape(t.query)}** ({t.count})" for t in shown) if shown else "Nothing trends yet.")
    with st.form("hide_trending", clear_on_submit=True, border=False):
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        term = c1.text_input("Hide from Trending", placeholder="a word or a whole question")
        if c2.form_submit_button("Hide") and run_action(admin_actions.hide_trending_term, actor, term,
                                                        success="Hidden from Trending."):
            st.rerun()
    for h in hidden:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(f"Hidden: **{md_escape(h)}**")
        if c2.button("Show again", key=f"unhide-{h}") and run_action(admin_actions.unhide_trending_term, actor, h,
                                                                    success="Shown in Trending again."):
            st.rerun()

with signin_box:
    st.subheader("Sign-ins")
    with session_scope() as s:
        attempts = auth.recent_attempts(s, limit=12)
    if not attempts:
        st.info("No password sign-ins recorded yet.", icon=":material/login:")
    else:
        st.caption("Repeated failures for one user name make it wait before the next try.")
        st.dataframe(color_column(pd.DataFrame([{"When": when(a.at), "User name": a.username,
                                                 "Result": "signed in" if a.success else "refused"} for a in attempts]),
                                  "Result"),
                     hide_index=True, width="content")
