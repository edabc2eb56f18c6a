"""Backfill: live progress, pause/resume, sync now, budgets and safety limits, priorities, dead letter."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from core import admin_actions, dashboard
from core.backfill import budget, priorities, progress, queue
from core.db import session_scope
from core.transcribe.registry import unavailable_reason
from pages._auth import require_admin
from pages._ui import md_escape, page_header, run_action, show_flash, usd, when

actor = require_admin()
page_header("Backfill", "Works through the channel's back catalogue within the budget. Changes apply to every worker at once.")
show_flash()


# ---------------------------------------------------------------------------------------------
# Live progress: re-runs on its own every few seconds, the rest of the page stays still.
# ---------------------------------------------------------------------------------------------


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    minutes = int((datetime.now(timezone.utc) - moment).total_seconds() // 60)
    return "just now" if minutes < 1 else f"{minutes} min ago"


@st.fragment(run_every="5s")
def live_progress() -> None:
    with session_scope() as s:
        p = progress.projection(s)
        money = budget.state(s)
        running = dashboard.running_jobs(s)
        sync = admin_actions.pending_sync_request(s)
    if p.pause_reason is not None:
        st.warning(f"**Backfill paused** — {md_escape(p.pause_reason)}. "
                   "Running jobs finish; nothing new starts.", icon=":material/pause_circle:")
    else:
        st.success("**Backfill running** — workers pick the next item by priority while the budget allows.",
                   icon=":material/play_circle:")
    for source in p.paused_sources:
        st.error(f"**{md_escape(source.line())}**. Its jobs wait without using up their attempts; one job at a time "
                 "tries it, and work resumes by itself when it answers.", icon=":material/cloud_off:")
    st.progress(
        min(1.0, p.percent / 100),
        text=f"{p.done:,} of {p.total:,} items indexed ({p.percent:.0f}%) · {p.remaining:,} left"
             + (f", {p.dead:,} of them dead-lettered" if p.dead else "")
             + f" · {p.audio_hours_done:,.0f} hours of audio done, {p.audio_hours_left:,.0f} to go · {p.finish()}",
    )
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Searchable", f"{p.done:,}", help=f"Indexed ({p.review} of them held for review)")
    c2.metric("Ready to run", f"{p.queued:,}", help="Queued or retrying, runnable now")
    c3.metric("Deferred", f"{p.waiting:,}", help="Waiting for the budget, a paused source, a worker or a retry back-off")
    c4.metric("Running now", f"{p.running:,}")
    c5.metric("Dead-lettered", f"{p.dead:,}", help="Gave up after their attempts: decide below. Not counted as progress.")
    st.caption(f"Pace: {p.items_per_day:,.1f} items a day (last 24 hours) · backlog ≈ {usd(p.backlog_usd)} at today's "
               f"prices · {usd(p.spent_run_usd)} spent in this run"
               + (f" ({p.dates_unknown:,} items without a known upload date)" if p.dates_unknown else ""))
    cap = money.limits.daily_cap
    st.progress(
        min(1.0, money.spent_today / cap) if cap else 1.0,
        text=f"Today {usd(money.spent_today)} of the {usd(cap)} daily cap · month {usd(money.spent_month)} of "
             f"{usd(money.limits.monthly_cap)} · {usd(money.reserved)} reserved by running jobs",
    )
    if p.paid_paused_until is not None:
        st.info(f"Paid transcription waits for the budget until {when(p.paid_paused_until)}; "
                "free engines carry on.", icon=":material/savings:")
    # st.status outside a `with` block keeps its running spinner (a `with` block marks it complete on exit).
    if sync:
        box = st.status(f"Channel sync requested by {md_escape(str(sync.get('by')))} — waiting for the scheduler",
                        state="running")
        box.write(f"Requested {when(datetime.fromisoformat(sync['at']))}. The scheduler picks it up on its next tick.")
    for job in running:
        label = f"{(job.stage or 'starting').capitalize()} · {job.title}"
        box = st.status(md_escape(label[:120]), state="running")  # labels render Markdown: titles stay literal
        box.write(f"Job {job.job_id} ({job.kind}{', engine ' + job.engine if job.engine else ''}) on "
                  f"`{md_escape(job.worker or '?')}`, started {_ago(job.started_at)}, last heartbeat {_ago(job.heartbeat_at)}.")


live_progress()
st.divider()

# ---------------------------------------------------------------------------------------------
# Controls
# ---------------------------------------------------------------------------------------------

with session_scope() as s:
    controls = queue.get_controls(s)
    limits = budget.get_budget(s)
    order = priorities.get_strategy_order(s)
    topics = priorities.get_topics(s)

run_col, budget_col = st.columns(2, gap="large")
with run_col:
    st.subheader("Run")
    if controls.paused:
        if st.button("Resume backfill", type="primary", icon=":material/play_arrow:"):
            if run_action(admin_actions.set_paused, actor, False, success="Backfill resumed."):
                st.rerun()
    else:
        reason = st.text_input("Reason for pausing (optional)", placeholder="e.g. checking transcript quality")
        if st.button("Pause backfill", icon=":material/pause:"):
            if run_action(admin_actions.set_paused, actor, True, reason or None, success="Backfill paused."):
                st.rerun()
    st.caption("Pausing stops new jobs everywhere; jobs already running finish.")
    if st.button("Sync channel now", icon=":material/sync:"):
        if run_action(admin_actions.request_sync, actor, success="Channel sync requested: the scheduler runs it on its next tick."):
            st.rerun()
    st.caption("Lists the channel for new videos now instead of at the next hourly sync.")

    st.subheader("Work limits")
    with st.form("controls"):
        concurrency = st.number_input("Jobs running at once (all workers)", min_value=1, max_value=100,
                                      value=int(controls.max_concurrency), step=1)
        attempts = st.number_input("Attempts before dead-lettering", min_value=1, max_value=20,
                                   value=int(controls.max_attempts), step=1)
        routing_options = ["never", "urgent", "always"]
        routing = st.selectbox(
            "Paid transcription", routing_options, index=routing_options.index(controls.paid_routing),
            format_func={"never": "never (free engines only)", "urgent": "only for urgent items (recent or pinned)",
                         "always": "whenever no free transcript exists"}.get,
        )
        paid_missing = unavailable_reason("openai")
        if paid_missing:
            st.caption(f"The paid API cannot run here: {md_escape(paid_missing)}. Until it can, no item is routed "
                       "to it whatever this says; captions and local whisper do the work.")
        calls = st.number_input("Paid API calls per minute (0 = no limit)", min_value=0, max_value=10_000,
                                value=int(controls.paid_calls_per_minute), step=5)
        if st.form_submit_button("Save limits"):
            if run_action(admin_actions.set_controls, actor, max_concurrency=int(concurrency), max_attempts=int(attempts),
                          paid_routing=routing, paid_calls_per_minute=int(calls), success="Work limits saved."):
                st.rerun()

with budget_col:
    st.subheader("Budget")
    with st.form("budget"):
        a, b = st.columns(2)
        # Text, not number widgets: a negative or mistyped amount gets a sentence saying why, not a silent red mark.
        daily = a.text_input("Daily budget (USD)", value=f"{limits.daily_usd:.2f}")
        monthly = b.text_input("Monthly budget (USD)", value=f"{limits.monthly_usd:.2f}")
        st.caption(f"Safety limits, the hard ceiling: **{usd(limits.daily_safety_usd)} a day** and "
                   f"**{usd(limits.monthly_safety_usd)} a month**. They are set in the server's configuration "
                   "(`DAILY_SAFETY_LIMIT_USD`, `MONTHLY_SAFETY_LIMIT_USD`) and cannot be changed here. Rules: daily ≤ "
                   f"monthly, each budget ≤ its safety limit; days and months start at midnight {limits.timezone}.")
        if st.form_submit_button("Save budget", type="primary"):
            if run_action(admin_actions.set_budget, actor, daily=daily, monthly=monthly, success="Budget saved."):
                st.rerun()

    st.subheader("Priorities")
    with st.form("priorities"):
        labels = {"newest": "Newest first", "topic": "Topic keywords", "most_viewed": "Most viewed",
                  "backlog": "Back catalogue (oldest first)"}
        chosen = st.multiselect("Strategies, in order: the first decides, the next break ties",
                                list(priorities.STRATEGIES), default=order, format_func=lambda k: labels.get(k, k))
        topic_text = st.text_area("Topic keywords (one per line or comma-separated)", value="\n".join(topics), height=170)
        st.caption("Pinned items always go first. Saving re-ranks the waiting queue.")
        if st.form_submit_button("Save priorities"):
            keywords = [w.strip() for line in topic_text.splitlines() for w in line.split(",") if w.strip()]
            if chosen == order and keywords == topics:
                st.info("Nothing to save: the priorities are unchanged.")
            elif run_action(admin_actions.set_priorities, actor, chosen, keywords,
                            success="Priorities saved; the waiting queue is re-ranked."):
                st.rerun()

st.divider()

# ---------------------------------------------------------------------------------------------
# Dead letter
# ---------------------------------------------------------------------------------------------

st.subheader("Dead letter")
with session_scope() as s:
    groups = dashboard.dead_letter_groups(s)
if not groups:
    st.success("No dead-lettered items: every failure so far recovered on retry.", icon=":material/task_alt:")
else:
    st.caption("Items that failed every attempt, grouped by cause. Retry gives a whole group fresh attempts; "
               "discard skips its items for good. Both are written to the audit log.")
    for n, group in enumerate(groups):
        with st.container(border=True):
            head, retry_col, discard_col = st.columns([4, 1, 1], vertical_alignment="center")
            head.markdown(f"**{md_escape(group.label)} ({group.count:,})**  \n"
                          f"{md_escape(group.advice)} Last one {when(group.newest)}.")
            if retry_col.button("Retry all", icon=":material/replay:", key=f"group_retry_{n}"):
                if run_action(admin_actions.retry_dead_group, actor, cause=group.cause, source_kind=group.source_kind,
                              success=f"{group.count:,} job(s) of “{group.label}” queued again."):
                    st.rerun()
            if discard_col.button("Discard all", icon=":material/delete_sweep:", key=f"group_discard_{n}"):
                if run_action(admin_actions.discard_dead_group, actor, cause=group.cause, source_kind=group.source_kind,
                              success=f"{group.count:,} job(s) of “{group.label}” discarded; their items are skipped."):
                    st.rerun()
            if st.toggle("Details", key=f"group_details_{n}"):
                with session_scope() as s:
                    dead = dashboard.dead_letters(s, group=(group.cause, group.source_kind))
                st.dataframe(
                    pd.DataFrame([{"Job": d.job_id, "Item": d.item_id, "Title": d.title, "Attempts": d.attempts,
                                   "Error as raised": d.last_error or "", "Died": when(d.finished_at)} for d in dead]),
                    hide_index=True, width="stretch",
                    column_config={"Job": st.column_config.NumberColumn(width="small", format="%d"),
                                   "Item": st.column_config.NumberColumn(width="small", format="%d"),
                                   "Attempts": st.column_config.NumberColumn(width="small"),
                                   "Title": st.column_config.TextColumn(width="medium"),
                                   "Error as raised": st.column_config.TextColumn(width="large"),
                                   "Died": st.column_config.TextColumn(width="medium")},
                )
                choice = st.selectbox("One job", dead, key=f"group_job_{n}",
                                      format_func=lambda d: f"job {d.job_id} · {d.title[:70]}")
                if choice is not None:
                    st.code(choice.last_error or "(no error recorded)", language=None, wrap_lines=True)
                    one_retry, one_discard, _ = st.columns([1, 1, 3])
                    if one_retry.button("Retry this one", icon=":material/replay:", key=f"dead_retry_{n}"):
                        if run_action(admin_actions.retry_dead, actor, job_id=choice.job_id,
                                      success=f"Job {choice.job_id} queued again."):
                            st.rerun()
                    if one_discard.button("Discard this one", icon=":material/delete_sweep:", key=f"dead_discard_{n}"):
                        if run_action(admin_actions.discard_dead, actor, job_id=choice.job_id,
                                      success=f"Job {choice.job_id} discarded; its item is skipped."):
                            st.rerun()
