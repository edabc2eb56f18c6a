"""Library: every item with status, engine, cost, duration and chunks; filters, search, pages; item actions."""
from __future__ import annotations

from datetime import datetime, time, timezone

import pandas as pd
import streamlit as st

from core import admin_actions, dashboard
from core.config import ENGINES
from core.db import session_scope
from core.models import ITEM_STATUSES, SOURCE_KINDS
from core.transcribe.registry import unavailable_reason
from pages._auth import require_admin
from pages._ui import BADGE_COLORS, color_column, duration, md_escape, page_header, run_action, show_flash, usd, when

actor = require_admin()
page_header("Library", "Every video and meeting the archive knows, whatever its state. Filters and search run in the database.")
show_flash()



@st.cache_data(ttl=30, show_spinner=False)
def _summary() -> tuple[dict[str, int], list[str]]:
    with session_scope() as s:
        return dashboard.status_counts(s), dashboard.engines_in_use(s)


with st.expander("Import a transcript (SRT, WebVTT, YouTube json3)", icon=":material/upload_file:"):
    with st.form("import_transcript", clear_on_submit=True):
        upload = st.file_uploader("Transcript file", type=["srt", "vtt", "webvtt", "json3", "json"], key="imp_file",
                                  help="YouTube Studio downloads, Zoom VTT files, other tools' SRTs. "
                                       "Speaker labels (Zoom names, “Name: …”) become speakers.")
        i1, i2 = st.columns(2)
        video = i1.text_input("YouTube video (URL or id)", key="imp_video",
                              help="Links and the player go to this video. Default: an id in the file name.")
        title = i2.text_input("Title (optional)", key="imp_title")
        i3, i4 = st.columns(2)
        dated = i3.date_input("Date (optional)", value=None, key="imp_date")
        replace = i4.checkbox("Replace it if already indexed", key="imp_force")
        if st.form_submit_button("Import", icon=":material/upload:") and upload is not None:
            published = datetime.combine(dated, time(), tzinfo=timezone.utc) if dated else None
            if run_action(admin_actions.import_transcript, actor, upload.getvalue(), upload.name, video=video,
                          title=title, published_at=published, force=replace,
                          success=f"{upload.name} imported: its transcript is searchable now."):
                st.rerun()

counts, engines = _summary()
st.markdown(" ".join(f":{BADGE_COLORS[k]}-badge[{k} {counts.get(k, 0):,}]" for k in ITEM_STATUSES))

f1, f2, f3, f4 = st.columns([3, 2, 2, 2])
search = f1.text_input("Search titles", placeholder="words in the title, a YouTube id or an item number", key="lib_search")
statuses = f2.multiselect("Status", list(ITEM_STATUSES), key="lib_status")
engine_filter = f3.multiselect("Engine", sorted(set(engines) | set(ENGINES)) + ["none"], key="lib_engine",
                               format_func=lambda e: "no transcript yet" if e == "none" else e)
kinds = f4.multiselect("Source", list(SOURCE_KINDS), key="lib_kind")
g1, g2, g3, _ = st.columns([2, 2, 2, 3])
sort = g1.selectbox("Sort", list(dashboard.SORTS), key="lib_sort")
page_size = g2.selectbox("Rows per page", [25, 50, 100, 200], index=1, key="lib_size")
pinned_only = g3.checkbox("Pinned only", key="lib_pinned")

filters = dashboard.LibraryFilter(tuple(statuses), tuple(engine_filter), tuple(kinds), search, pinned_only, sort)
# A new filter starts at page 1; the page number lives in session state so the pager buttons can move it.
if st.session_state.get("lib_filters") != filters:
    st.session_state["lib_filters"] = filters
    st.session_state["lib_page"] = 1

with session_scope() as s:
    result = dashboard.library_page(s, filters, page=st.session_state.get("lib_page", 1), page_size=page_size)
st.session_state["lib_page"] = result.page

if result.total == 0:
    st.info("No items match these filters." if any(filters[:5]) else
            "The library is empty. Run a channel sync (Backfill → Sync channel now) or `python -m core seed-demo`.",
            icon=":material/search_off:")
else:
    table = pd.DataFrame(
        [
            {
                "#": r.id,
                "Title": r.title,
                "Status": r.status,
                "Error": r.error,
                "Engine": r.engine or "—",
                "Cost": r.cost_usd,
                "Duration": duration(r.duration_s),
                "Chunks": r.chunk_count,
                "Published": r.published_at.strftime("%Y-%m-%d") if r.published_at else "date unknown",
                "Flags": ", ".join(f for f, on in (("pinned", r.pinned), ("hidden", not r.visible)) if on),
            }
            for r in result.rows
        ]
    )
    st.dataframe(
        color_column(table, "Status"),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 740),
        column_config={
            "#": st.column_config.NumberColumn(width="small", format="%d"),
            "Title": st.column_config.TextColumn(width="large"),
            "Status": st.column_config.TextColumn(width="small"),
            "Error": st.column_config.TextColumn(width="medium", help="Why its last attempt failed (it is retrying, or "
                                                 "dead-lettered: decide on the Backfill page)"),
            "Engine": st.column_config.TextColumn(width="small"),
            "Cost": st.column_config.NumberColumn(format="$%.3f", width="small", help="Money spent on this item (USD)"),
            "Duration": st.column_config.TextColumn(width="small"),
            "Chunks": st.column_config.NumberColumn(format="%d", width="small", help="Searchable passages"),
            "Published": st.column_config.TextColumn(width="small"),
            "Flags": st.column_config.TextColumn(width="small", help="pinned: goes first; hidden: not shown to viewers"),
        },
    )
    first = (result.page - 1) * result.page_size + 1
    p1, p2, p3 = st.columns([1, 3, 1], vertical_alignment="center")
    if p1.button("← Previous", disabled=result.page <= 1, key="lib_prev"):
        st.session_state["lib_page"] = result.page - 1
        st.rerun()
    p2.markdown(f"<div style='text-align:center'>Items {first:,}–{first + len(result.rows) - 1:,} of "
                f"{result.total:,} · page {result.page} of {result.pages}</div>", unsafe_allow_html=True)
    if p3.button("Next →", disabled=result.page >= result.pages, key="lib_next"):
        st.session_state["lib_page"] = result.page + 1
        st.rerun()

    # -----------------------------------------------------------------------------------------
    # Actions on one item of this page
    # -----------------------------------------------------------------------------------------
    st.subheader("Item actions")
    item = st.selectbox("Item", result.rows, format_func=lambda r: f"#{r.id} · {r.title[:90]}", key="lib_item")
    if item is not None:
        st.markdown(
            f"**{md_escape(item.title)}**  \n"
            f":{BADGE_COLORS.get(item.status, 'gray')}-badge[{item.status}] · engine {md_escape(item.engine or '—')} · "
            f"{usd(item.cost_usd, 3)} · {duration(item.duration_s)} · {item.chunk_count:,} chunks · "
            f"indexed {when(item.indexed_at)}"
        )
        if item.url.startswith(("https://", "http://")):  # never a javascript: or file: link
            st.link_button("Open the original ↗", item.url, type="tertiary")
        if item.route_reason:
            st.caption(f"Why this engine: {md_escape(item.route_reason)}")
        if item.error:
            st.error(f"**{md_escape(item.error)}**", icon=":material/error:")
        if item.status_detail:
            with st.expander("Details") if item.error else st.container():
                (st.error if item.status in ("failed", "dead") else st.info)(md_escape(item.status_detail))
        a1, a2, a3 = st.columns(3)
        with a1:
            if item.pinned:
                if st.button("Unpin", icon=":material/keep_off:", key="act_unpin"):
                    if run_action(admin_actions.pin_item, actor, item.id, False, success=f"Item {item.id} unpinned."):
                        st.rerun()
            elif st.button("Pin (do next)", icon=":material/keep:", key="act_pin"):
                if run_action(admin_actions.pin_item, actor, item.id, True, success=f"Item {item.id} pinned: it goes next."):
                    st.rerun()
            if item.skipped:
                if st.button("Un-skip", icon=":material/undo:", key="act_unskip"):
                    if run_action(admin_actions.skip_item, actor, item.id, False, success=f"Item {item.id} queued again."):
                        st.rerun()
            elif st.button("Skip", icon=":material/skip_next:", key="act_skip"):
                if run_action(admin_actions.skip_item, actor, item.id, True, success=f"Item {item.id} skipped."):
                    st.rerun()
        with a2:
            offline = {e: unavailable_reason(e) for e in ENGINES}
            engine = st.selectbox("Engine", list(ENGINES), key="act_engine",
                                  index=list(ENGINES).index("local") if "local" in ENGINES else 0,
                                  format_func=lambda e: f"{e} (not available here)" if offline[e] else e)
            if offline[engine]:
                st.caption(md_escape(offline[engine]) + " — a worker that has it must pick the job up.")
            if st.button("Re-transcribe", icon=":material/refresh:", key="act_retranscribe"):
                if run_action(admin_actions.retranscribe, actor, item.id, engine,
                              success=f"Item {item.id} queued for re-transcription with {engine}."):
                    st.rerun()
        with a3:
            confirm = st.checkbox("Yes, delete this item, its transcript and chunks", key="act_confirm_delete")
            if st.button("Delete item", icon=":material/delete:", disabled=not confirm, key="act_delete"):
                if run_action(admin_actions.delete_item, actor, item.id, success=f"Item {item.id} deleted."):
                    st.session_state.pop("act_confirm_delete", None)
                    st.rerun()
