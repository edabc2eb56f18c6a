"""Costs: spend against the caps, by engine, cumulative with the backlog projection, throughput, failures."""
from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from core import dashboard
from core.backfill import budget, progress
from core.db import session_scope
from pages._auth import require_admin
from pages._ui import page_header, usd

require_admin()
page_header("Costs", "Where the money goes, against the caps, and what finishing the backlog will cost. Updated every minute.")

RED, ACCENT, GREY, BLUE = "#c0392b", "#b4532a", "#7f8c8d", "#4c78a8"
QUIET = {"delta_color": "off", "delta_arrow": "off", "border": True}  # metric sub-lines are context, not change
ENGINE_PALETTE = {"captions": "#4c78a8", "local": "#54a24b", "openai": "#b4532a", "openai-transcribe": "#b4532a",
                  "openai-embed": "#e45756", "gpu": "#b279a2", "zoom": "#72b7b2", "unknown": "#9d9d9d"}


def engine_scale(names) -> alt.Scale:
    """Same colour for an engine on every chart; only the engines present appear in a legend."""
    present = sorted(set(names))
    return alt.Scale(domain=present, range=[ENGINE_PALETTE.get(n, "#9d9d9d") for n in present])


@st.cache_data(ttl=60, show_spinner="Adding up the ledger…")
def load(days: int) -> dict:
    with session_scope() as s:
        return {
            "state": budget.state(s),
            "daily": dashboard.daily_spend(s, days),
            "month": dashboard.month_to_date(s),
            "engines": dashboard.by_engine(s),
            "cumulative": dashboard.cumulative_spend(s, days=max(days, 60)),
            "projection": progress.projection(s),
            "items": dashboard.items_per_day(s, days),
            "failures": dashboard.failures_per_day(s, days),
        }


days = st.segmented_control("Period", [14, 30, 60, 90], default=30, format_func=lambda d: f"{d} days", key="cost_days") or 30
data = load(days)
state, month, proj = data["state"], data["month"], data["projection"]

m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Spent today", usd(state.spent_today), f"of the {usd(state.limits.daily_cap)} cap", **QUIET)
m2.metric("Month to date", usd(month.spent), f"of the {usd(month.cap)} cap", **QUIET)
m3.metric("Spent in total", usd(proj.spent_total_usd), "since the first paid call", **QUIET)
m4.metric("Backlog will cost", usd(proj.backlog_usd), f"{proj.remaining:,} items, ≈{proj.audio_hours_left:,.0f} h",
          **QUIET,
          help=f"At today's prices and the recent mix of engines ({proj.paid_share:.0%} of audio went to a paid "
               f"engine). Worst case, all paid: {usd(proj.worst_case_usd)}.")
finish = proj.finish_date.strftime("%d %b") if proj.finish_date else proj.outlook.value
m5.metric("Backlog done by", finish, f"{proj.finish_date:%Y}" if proj.finish_date else "no date", **QUIET,
          help=proj.finish())
st.caption(f"Finish: {proj.finish()} — the same projection as Admin → Backfill and `python -m core backfill status`.")

if proj.spent_total_usd == 0:
    st.info("No money spent yet: everything so far came from free captions or the local model.", icon=":material/savings:")


def _axis_usd(title: str) -> alt.Axis:
    return alt.Axis(title=title, format="$,.2f")


# --- spend per day against the daily cap ------------------------------------------------------
left, right = st.columns(2, gap="medium")
with left:
    st.subheader("Spend per day")
    daily = pd.DataFrame([{"day": pd.Timestamp(d.day), "usd": d.usd, "cap": d.cap,
                           "state": "over the cap" if d.over else "within the cap"} for d in data["daily"]])
    bars = alt.Chart(daily).mark_bar(cornerRadiusTopLeft=2, cornerRadiusTopRight=2).encode(
        x=alt.X("day:T", title="Day (UTC)", axis=alt.Axis(format="%d %b")),
        y=alt.Y("usd:Q", axis=_axis_usd("Spend (USD)")),
        color=alt.Color("state:N", scale=alt.Scale(domain=["within the cap", "over the cap"], range=[BLUE, RED]),
                        legend=alt.Legend(title=None, orient="top")),
        tooltip=[alt.Tooltip("day:T", title="Day", format="%a %d %b %Y"), alt.Tooltip("usd:Q", title="Spent", format="$,.2f"),
                 alt.Tooltip("cap:Q", title="Daily cap that day", format="$,.2f")],
    )
    # The cap in force each day (budget changes come from the audit log) as a step line that spans each
    # day's bar: `step` changes half-way between days, and two end points stretch it to the outer bars.
    half = pd.Timedelta(hours=12)
    caps = pd.concat([daily[["day", "cap"]].head(1).assign(day=lambda d: d["day"] - half), daily[["day", "cap"]],
                      daily[["day", "cap"]].tail(1).assign(day=lambda d: d["day"] + half)], ignore_index=True)
    cap_line = alt.Chart(caps).mark_line(color=RED, strokeDash=[6, 4], strokeWidth=2, interpolate="step").encode(
        x="day:T", y="cap:Q", tooltip=[alt.Tooltip("cap:Q", title="Daily cap", format="$,.2f")])
    cap_label = alt.Chart(caps.head(1)).mark_text(align="left", dx=2, dy=-8, color=RED, fontWeight="bold").encode(
        x="day:T", y="cap:Q", text=alt.value("daily cap"))
    st.altair_chart((bars + cap_line + cap_label).properties(height=300), width="stretch")

# --- month to date against the monthly cap ------------------------------------------------------
with right:
    st.subheader("This month against the monthly cap")
    mtd = pd.DataFrame([{"day": pd.Timestamp(d), "usd": v, "series": "spent"} for d, v in month.by_day])
    last_day = pd.Timestamp(month.month_end - timedelta(days=1))
    if not mtd.empty:
        pace = pd.DataFrame([{"day": mtd["day"].iloc[-1], "usd": mtd["usd"].iloc[-1], "series": "at this pace"},
                             {"day": last_day, "usd": month.projected, "series": "at this pace"}])
    else:
        pace = pd.DataFrame(columns=["day", "usd", "series"])
    scale_x = alt.Scale(domain=[pd.Timestamp(month.month_start).isoformat(), last_day.isoformat()])
    ymax = max(month.cap, month.projected, month.spent) * 1.12 or 1
    area = alt.Chart(mtd).mark_area(line={"color": ACCENT}, color=alt.Gradient(
        gradient="linear", stops=[alt.GradientStop(color="white", offset=0), alt.GradientStop(color=ACCENT, offset=1)],
        x1=1, x2=1, y1=1, y2=0), opacity=0.6).encode(
        x=alt.X("day:T", title="Day of the month (UTC)", scale=scale_x, axis=alt.Axis(format="%d %b")),
        y=alt.Y("usd:Q", axis=_axis_usd("Spent this month (USD)"), scale=alt.Scale(domain=[0, ymax])),
        tooltip=[alt.Tooltip("day:T", title="Day", format="%d %b"), alt.Tooltip("usd:Q", title="Spent so far", format="$,.2f")],
    )
    pace_line = alt.Chart(pace).mark_line(strokeDash=[4, 4], color=GREY, point=alt.OverlayMarkDef(color=GREY)).encode(
        x="day:T", y="usd:Q",
        tooltip=[alt.Tooltip("day:T", title="Day", format="%d %b"), alt.Tooltip("usd:Q", title="Projected", format="$,.2f")])
    cap_df = pd.DataFrame([{"cap": month.cap, "day": pd.Timestamp(month.month_start)}])
    mcap = alt.Chart(cap_df).mark_rule(color=RED, strokeDash=[6, 4], size=2).encode(
        y="cap:Q", tooltip=[alt.Tooltip("cap:Q", title="Monthly cap", format="$,.2f")])
    mcap_label = alt.Chart(cap_df).mark_text(align="left", dx=4, dy=-7, color=RED, fontWeight="bold").encode(
        x="day:T", y="cap:Q", text=alt.value(f"monthly cap {usd(month.cap)}"))
    st.altair_chart((area + pace_line + mcap + mcap_label).properties(height=300), width="stretch")
    st.caption(f"{usd(month.spent)} spent ({month.fraction:.0%} of the cap) after {month.days_elapsed:.1f} of "
               f"{month.days_in_month} days; at this pace the month ends near {usd(month.projected)}.")

# --- by engine ---------------------------------------------------------------------------------
st.subheader("By engine")
engines = pd.DataFrame([r._asdict() for r in data["engines"]])
if engines.empty:
    st.info("No transcripts yet: the engine breakdown appears after the first item is indexed.", icon=":material/info:")
else:
    e1, e2 = st.columns(2, gap="medium")
    tip = [alt.Tooltip("engine:N", title="Engine"), alt.Tooltip("usd:Q", title="Spent", format="$,.2f"),
           alt.Tooltip("audio_hours:Q", title="Audio", format=",.1f"), alt.Tooltip("items:Q", title="Items", format=",d")]
    base = alt.Chart(engines).encode(y=alt.Y("engine:N", title="Engine", sort="-x"),
                                     color=alt.Color("engine:N", scale=engine_scale(engines["engine"]), legend=None), tooltip=tip)
    e1.altair_chart(base.mark_bar().encode(x=alt.X("usd:Q", axis=_axis_usd("Spend, all time (USD)")))
                    .properties(height=200, title="Spend"), width="stretch")
    e2.altair_chart(base.mark_bar().encode(x=alt.X("audio_hours:Q", title="Audio transcribed (hours)"))
                    .properties(height=200, title="Audio hours"), width="stretch")

# --- cumulative spend and the projection --------------------------------------------------------
st.subheader("Cumulative spend and the backlog projection")
cum = pd.DataFrame([{"day": pd.Timestamp(d), "usd": v} for d, v in data["cumulative"]])
spending = cum.index[cum["usd"] > 0]
if len(spending) and spending[0] > 3:  # start just before the first paid day, not with weeks of zeros
    cum = cum.iloc[spending[0] - 3:].reset_index(drop=True)
layers = [
    alt.Chart(cum).mark_line(color=ACCENT, strokeWidth=3).encode(
        x=alt.X("day:T", title="Day (UTC)", axis=alt.Axis(format="%d %b %y")),
        y=alt.Y("usd:Q", axis=_axis_usd("Spent since the start (USD)")),
        tooltip=[alt.Tooltip("day:T", title="Day", format="%d %b %Y"), alt.Tooltip("usd:Q", title="Spent so far", format="$,.2f")],
    )
]
if proj.finish_date and proj.remaining and not cum.empty:
    ahead = pd.DataFrame([{"day": cum["day"].iloc[-1], "usd": cum["usd"].iloc[-1], "label": ""},
                          {"day": pd.Timestamp(proj.finish_date), "usd": proj.total_usd,
                           "label": f"≈ {usd(proj.total_usd)} by {proj.finish_date:%d %b %Y}"}])
    layers.append(alt.Chart(ahead).mark_line(strokeDash=[6, 4], color=GREY, point=alt.OverlayMarkDef(color=GREY)).encode(
        x="day:T", y="usd:Q",
        tooltip=[alt.Tooltip("day:T", title="Projected day", format="%d %b %Y"),
                 alt.Tooltip("usd:Q", title="Projected total", format="$,.2f")]))
    layers.append(alt.Chart(ahead.tail(1)).mark_text(align="right", dx=-6, dy=-12, color="#333", fontWeight="bold").encode(
        x="day:T", y="usd:Q", text="label:N"))
st.altair_chart(alt.layer(*layers).properties(height=320), width="stretch")
st.caption(
    f"Backlog: {proj.remaining:,} items, ≈{proj.audio_hours_left:,.0f} hours of audio"
    + (f" ({proj.backlog_unknown_length} of unknown length, counted as 3 h each)" if proj.backlog_unknown_length else "")
    + f". Expected cost {usd(proj.backlog_usd)} at today's prices and recent engine mix (worst case "
    f"{usd(proj.worst_case_usd)}); {proj.items_per_day:.1f} items a day over the last 24 hours."
)

# --- throughput and failures ---------------------------------------------------------------------
t1, t2 = st.columns(2, gap="medium")
with t1:
    st.subheader("Items indexed per day")
    items = pd.DataFrame([{"day": pd.Timestamp(c.day), "engine": c.series, "items": c.count} for c in data["items"]])
    if items.empty:
        st.info(f"No item was indexed in the last {days} days.", icon=":material/info:")
    else:
        st.altair_chart(alt.Chart(items).mark_bar().encode(
            x=alt.X("day:T", title="Day (UTC)", axis=alt.Axis(format="%d %b")),
            y=alt.Y("sum(items):Q", title="Items indexed (count)"),
            color=alt.Color("engine:N", scale=engine_scale(items["engine"]), legend=alt.Legend(title="Engine", orient="top")),
            tooltip=[alt.Tooltip("day:T", title="Day", format="%a %d %b"), alt.Tooltip("engine:N", title="Engine"),
                     alt.Tooltip("items:Q", title="Items")],
        ).properties(height=280), width="stretch")
with t2:
    st.subheader("Failures over time")
    fails = pd.DataFrame([{"day": pd.Timestamp(c.day), "kind": c.series, "jobs": c.count} for c in data["failures"]])
    if fails.empty or fails["jobs"].sum() == 0:
        st.success(f"No failures in the last {days} days.", icon=":material/task_alt:")
    else:
        st.altair_chart(alt.Chart(fails).mark_bar().encode(
            x=alt.X("day:T", title="Day (UTC)", axis=alt.Axis(format="%d %b")),
            y=alt.Y("sum(jobs):Q", title="Failed jobs (count)", axis=alt.Axis(tickMinStep=1)),
            color=alt.Color("kind:N", scale=alt.Scale(domain=["dead-lettered", "failed attempt, will retry"],
                                                      range=[RED, "#f2a541"]),
                            legend=alt.Legend(title=None, orient="top")),
            tooltip=[alt.Tooltip("day:T", title="Day", format="%a %d %b"), alt.Tooltip("kind:N", title="Kind"),
                     alt.Tooltip("jobs:Q", title="Jobs")],
        ).properties(height=280), width="stretch")
        st.caption("Dead-lettered jobs wait for a decision on the Backfill page (retry or discard).")
