"""Zoom: connection check, sync and back-fill, the publish default, meetings (publish/unpublish), upload."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.admin_actions import AdminActionError
from core.config import get_settings
from core.db import session_scope
from core.sources.base import SourceError
from core.zoom import admin as zoom_admin
from pages._auth import require_admin
from pages._ui import duration, page_header, run_action, show_flash, when

actor = require_admin()
page_header("Zoom", "Meetings arrive hidden: they are indexed, but only you see them until you publish them.")
show_flash()
settings = get_settings()


def act(fn, *args, success: str) -> None:
    """One audited change through run_action; domain refusals shown as sentences, then refresh."""
    def call(session, who):
        try:
            return fn(session, *args, who)
        except (ValueError, LookupError, SourceError) as exc:
            raise AdminActionError(str(exc)) from None

    if run_action(call, actor, success=success):
        st.rerun()


# --- connection ---------------------------------------------------------------------------------
st.subheader("Connection")
c1, c2 = st.columns([1, 3])
if c1.button("Check connection", icon=":material/link:"):
    ok, message = zoom_admin.check_connection(settings)
    (st.success if ok else st.error)(message)
c2.caption(f"Webhook endpoint: `https://<your public host>/webhooks/zoom` → this machine's port {settings.webhook_port}. "
           "Credentials come from ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET and ZOOM_WEBHOOK_SECRET.")

s1, s2, s3, s4 = st.columns([2, 1, 1, 2])
if s1.button("Sync recent meetings now", icon=":material/sync:"):
    with st.spinner("Asking Zoom…"):
        try:
            r = zoom_admin.run_sync(actor, settings=settings)
            st.success(f"{r.listed} listed, {r.new} new, {r.enqueued} queued" + (f" — {r.stopped_early}" if r.stopped_early else ""))
        except SourceError as exc:
            st.error(str(exc))
start = s2.text_input("From month", placeholder="2024-01", key="zoom_from")
end = s3.text_input("To month", placeholder="2024-12", key="zoom_to")
if s4.button("Back-fill these months", icon=":material/history:", disabled=not start):
    with st.spinner("Listing Zoom recordings month by month…"):
        try:
            r = zoom_admin.run_sync(actor, from_month=start.strip(), to_month=(end or start).strip(), settings=settings)
            st.success(f"{r.listed} listed, {r.new} new, {r.enqueued} queued" + (f" — {r.stopped_early}" if r.stopped_early else ""))
        except (ValueError, SourceError) as exc:
            st.error(str(exc))

# --- default -------------------------------------------------------------------------------------
with session_scope() as s:
    default = zoom_admin.get_source_default(s)
    counts = zoom_admin.count_meetings(s)
wanted = st.toggle("Publish new meetings automatically", value=default,
                   help="Off (recommended): new meetings stay hidden until you publish each one.")
if wanted != default:
    act(lambda session, publish, who: zoom_admin.set_source_default(session, publish, who), wanted,
        success="New meetings will be " + ("published automatically." if wanted else "hidden until you publish them."))

# --- meetings ------------------------------------------------------------------------------------
st.subheader(f"Meetings — {counts['published']} published, {counts['hidden']} hidden")
f1, f2 = st.columns([3, 1])
search = f1.text_input("Search topics", key="zoom_search")
show = f2.selectbox("Show", ["all", "hidden", "published"], key="zoom_show")
with session_scope() as s:
    rows = zoom_admin.list_meetings(s, visible={"all": None, "hidden": False, "published": True}[show], search=search)
if not rows:
    st.info("No Zoom meetings yet. Connect Zoom and sync, or upload a recording below.", icon=":material/videocam_off:")
else:
    st.dataframe(
        pd.DataFrame([{
            "#": r.item_id, "Topic": r.title, "Started": when(r.started_at), "Length": duration(r.duration_s),
            "Host": r.host or "—", "State": r.state, "Pipeline": r.status, "Engine": r.engine or "—",
            "Zoom transcript": r.has_zoom_transcript, "Chunks": r.chunk_count,
        } for r in rows]),
        hide_index=True, width="stretch",
    )
    by_id = {r.item_id: r for r in rows}
    picked = st.selectbox("Meeting", list(by_id), key="zoom_pick",
                          format_func=lambda i: f"#{i} {by_id[i].title} ({by_id[i].state})")
    choice = by_id[picked]
    b1, b2, b3 = st.columns(3)
    if b1.button("Publish", disabled=choice.visible, icon=":material/visibility:"):
        act(zoom_admin.publish, choice.item_id, success=f"Published “{choice.title}”.")
    if b2.button("Unpublish", disabled=not choice.visible, icon=":material/visibility_off:"):
        act(zoom_admin.unpublish, choice.item_id, success=f"“{choice.title}” is hidden again.")
    if b3.button("Restore from trash", disabled=not choice.trashed, icon=":material/restore_from_trash:"):
        act(zoom_admin.restore, choice.item_id, success=f"Restored “{choice.title}” (still hidden).")

# --- upload --------------------------------------------------------------------------------------
st.subheader("Upload a recording")
with st.form("zoom_upload", clear_on_submit=True):
    title = st.text_input("Meeting title")
    media = st.file_uploader("Recording (M4A, MP4, …)", type=["m4a", "mp4", "mp3", "wav", "webm", "mov", "mkv"])
    vtt = st.file_uploader("Zoom transcript (.vtt, optional — keeps speaker names)", type=["vtt"])
    if st.form_submit_button("Upload", icon=":material/upload:") and media is not None:
        with tempfile.TemporaryDirectory() as tmp:
            media_path = Path(tmp) / Path(media.name).name
            media_path.write_bytes(media.getbuffer())
            vtt_path = None
            if vtt is not None:
                vtt_path = Path(tmp) / "transcript.vtt"
                vtt_path.write_bytes(vtt.getbuffer())
            act(lambda session, who: zoom_admin.upload_recording(session, media_path, title, who, transcript_path=vtt_path),
                success=f"“{title}” uploaded and queued (hidden until you publish it).")
