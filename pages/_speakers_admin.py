"""Admin → Settings → Speakers: enrol the host's voice, rename a speaker of a video, allow audio
for captioned videos. Thin: every action is one function of core/speakers/admin.py."""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st
from sqlalchemy import text

from core import speakers
from core.db import session_scope
from core.speakers import admin, store
from pages._ui import md_escape, run_action


def _seconds(stamp: str) -> float | None:
    """"1:05" / "1:02:03" / "65" → seconds; None when it is not a time."""
    try:
        parts = [float(p) for p in stamp.strip().split(":")]
    except ValueError:
        return None
    if not parts or len(parts) > 3 or any(p < 0 for p in parts):
        return None
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def _items(s) -> dict[int, str]:
    rows = s.execute(text("SELECT id, title FROM media_items WHERE status IN ('indexed', 'review') "
                          "ORDER BY indexed_at DESC NULLS LAST LIMIT 500")).all()
    return {r.id: f"{r.id} · {r.title[:90]}" for r in rows}


def render(actor: str) -> None:
    st.subheader("Speakers")
    with session_scope() as s:
        items = _items(s)
        profiles = store.profile_rows(s)
        captioned = store.captioned_audio_allowed(s)
        pending = len(store.pending_ids(s, limit=100_000))
    if not speakers.available():
        st.info(f"{speakers.WHAT_IT_ADDS} This needs the optional speakers extra: run `{speakers.INSTALL_HINT}` "
                f"(missing here: {', '.join(speakers.missing())}). Speakers named by Zoom or by inline labels "
                "work without it.", icon=":material/record_voice_over:")
    else:
        st.caption(f"Speaker turns run in the background after transcription (free, on this machine); "
                   f"{pending} indexed item(s) still wait for a pass. `python -m core diarize --all` runs them now.")
        if profiles:
            for p in profiles:
                c1, c2 = st.columns([8, 1])
                c1.markdown(f"**{md_escape(p.name)}** · {p.seconds:.0f} s of speech · {md_escape(p.origin)}")
                if c2.button("Delete", key=f"del-voice-{p.id}"):
                    if run_action(admin.delete_profile, actor, p.id, success=f"Voice of {p.name} deleted."):
                        st.rerun()
        else:
            st.caption("No voice enrolled yet: every voice is a guest (\"Guest 1\", \"Guest 2\"…) until you enrol the host.")
        with st.form("enrol"):
            name = st.text_input("Name to show", value="Dr. Anthony Chaffee")
            t_item, t_clip = st.tabs(["From a video", "Upload a clip"])
            with t_item:
                item = st.selectbox("Video", list(items), format_func=items.get, index=None, placeholder="Pick an item")
                c1, c2 = st.columns(2)
                start = c1.text_input("From (m:ss)", value="0:00")
                end = c2.text_input("To (m:ss)", value="0:30")
            with t_clip:
                clip = st.file_uploader("A clip of that person alone (any audio format)", key="voice_clip")
            st.caption("Pick 10–60 seconds where only that person speaks. Segments whose voice matches are labelled "
                       "with the name from the next pass on; Zoom names and inline labels always win.")
            if st.form_submit_button("Enrol voice"):
                if clip is not None:
                    with tempfile.TemporaryDirectory() as tmp:
                        path = Path(tmp) / Path(clip.name).name
                        path.write_bytes(clip.getvalue())
                        ok = run_action(admin.enrol_from_clip, actor, path, name, label=clip.name,
                                        success=f"Voice of {name} enrolled from {clip.name}.")
                elif item is not None and (a := _seconds(start)) is not None and (b := _seconds(end)) is not None:
                    ok = run_action(admin.enrol_from_item, actor, item, a, b, name,
                                    success=f"Voice of {name} enrolled from item {item}.")
                else:
                    st.error("Pick a video and a span like 1:05 to 1:40, or upload a clip.")
                    ok = False
                if ok:
                    st.rerun()
        allow = st.toggle("Fetch the audio of captioned videos for speaker turns (their captions name no speakers; "
                          "the audio is only listened to, never transcribed again)", value=captioned, key="captioned_audio")
        if allow != captioned and run_action(admin.set_captioned_audio, actor, allow,
                                             success="Saved: captioned videos " + ("get" if allow else "do not get")
                                             + " speaker turns."):
            st.rerun()

    st.markdown("**Rename a speaker of one video** (e.g. \"Guest 1\" → the guest's name)")
    r_item = st.selectbox("Video ", list(items), format_func=items.get, index=None, placeholder="Pick an item",
                          key="rename_item")
    if r_item is not None:
        with session_scope() as s:
            said = store.item_speakers(s, r_item)
        if not said:
            st.caption("This video has no named speakers yet.")
        else:
            with st.form("rename"):
                old = st.selectbox("Speaker", [n for n, _, _ in said],
                                   format_func=lambda n: next(f"{n} ({secs / 60:.1f} min)" for m, _, secs in said if m == n))
                new = st.text_input("New name")
                if st.form_submit_button("Rename") and run_action(
                        admin.rename_speaker, actor, r_item, old, new, success=f"Renamed {old} to {new}."):
                    st.rerun()
