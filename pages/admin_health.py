"""Health: scheduler heartbeat, queue depth, workers and their capabilities, storage against the limit."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import health
from core.config import get_settings
from core.db import session_scope
from pages._auth import require_admin
from pages._ui import color_column, md_escape, page_header, when

require_admin()
page_header("Health", "Is everything running? This page refreshes itself every ten seconds.")


def _capabilities(caps: dict) -> str:
    parts = []
    if caps.get("device"):
        parts.append(str(caps["device"]).upper() + (f" · {caps['gpu']}" if caps.get("gpu") else ""))
    if caps.get("whisper_model"):
        parts.append(f"whisper {caps['whisper_model']}")
    if caps.get("engines"):
        parts.append("engines: " + ", ".join(map(str, caps["engines"])))
    if caps.get("slots"):
        parts.append(f"{caps['slots']} slot{'s' if caps['slots'] != 1 else ''}")
    rest = {k: v for k, v in caps.items() if k not in {"device", "gpu", "whisper_model", "engines", "slots"}}
    parts += [f"{k}: {v}" for k, v in rest.items()]
    return " · ".join(parts) or "—"


def _percent(fraction: float) -> str:
    return "under 0.1%" if 0 < fraction < 0.001 else f"{fraction:.1%}"


@st.fragment(run_every="10s")
def live_health() -> None:
    settings = get_settings()
    with session_scope() as s:
        beat = health.scheduler_heartbeat(s, settings)
        depth = health.queue_depth(s)
        workers = health.workers(s, settings)
        store = health.storage(s, settings)
        tables = health.largest_tables(s)
        paused = health.paused_sources(s)

    st.subheader("Sources")
    if not paused:
        st.success("**Every source answers** — no source is paused.", icon=":material/cloud_done:")
    for source in paused:
        st.error(f"**Degraded — {md_escape(source.line())}**. Its items wait (no attempt is used up) and resume by "
                 "themselves when a probe gets through.", icon=":material/cloud_off:")

    st.subheader("Scheduler")
    if beat.last_at is None:
        st.error("No scheduler has ever reported. Start it with `python -m core serve` (or `python -m scheduler`).",
                 icon=":material/error:")
    elif beat.alive:
        st.success(f"**Alive** — {md_escape(beat.hostname)} last reported {health.human_age(beat.age_s)}.",
                   icon=":material/favorite:")
    else:
        st.error(f"**Stale** — the last heartbeat from {md_escape(beat.hostname)} was {health.human_age(beat.age_s)} "
                 f"(more than {settings.scheduler_stale_after_s:.0f} s). Syncs and the backfill are not running.",
                 icon=":material/heart_broken:")

    st.subheader("Queue")
    q = depth.jobs
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Waiting", f"{q['queued']:,}", border=True, help="Queued jobs ready to run or waiting for their turn")
    c2.metric("Retrying", f"{q['retry']:,}", border=True, help="Failed once; will run again after a back-off")
    c3.metric("Running", f"{q['running']:,}", border=True)
    c4.metric("Dead-lettered", f"{q['dead']:,}", border=True, help="Gave up; decide on the Backfill page")
    c5.metric("Done", f"{q['done']:,}", border=True)
    if depth.oldest_queued_at is not None:
        st.caption(f"The oldest waiting job was queued {when(depth.oldest_queued_at)}.")

    st.subheader("Workers")
    if not workers:
        st.info("No worker has registered yet: they appear here once the scheduler or a worker starts.",
                icon=":material/info:")
    else:
        st.dataframe(
            color_column(pd.DataFrame([
                {"State": "alive" if w.alive else "stale", "Role": w.role, "Host": w.hostname, "PID": w.pid,
                 "Capabilities": _capabilities(w.capabilities),
                 "Job": f"#{w.current_job_id}" if w.current_job_id else "idle",
                 "Last heartbeat": health.human_age(w.age_s), "Up since": when(w.started_at)}
                for w in workers
            ]), "State"),
            hide_index=True, width="stretch",
            column_config={"Capabilities": st.column_config.TextColumn(width="large"),
                           "PID": st.column_config.NumberColumn(format="%d")},
        )

    st.subheader("Storage")
    st.progress(
        min(1.0, store.fraction),
        text=f"{health.human_bytes(store.used_bytes)} of {health.human_bytes(store.limit_bytes)} "
             f"({_percent(store.fraction)}) — database {health.human_bytes(store.database_bytes)}, "
             f"downloaded media {health.human_bytes(store.media_bytes)}",
    )
    if store.fraction >= 0.9:
        st.warning("Storage is nearly full: the backfill stops taking new work at the limit.", icon=":material/warning:")
    with st.expander("Largest tables"):
        st.dataframe(pd.DataFrame([{"Table": n, "Size": health.human_bytes(b)} for n, b in tables]),
                     hide_index=True, width="content")


live_health()
