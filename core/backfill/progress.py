"""The one projection: progress, pace, finish date and backlog cost of the backfill run.

Admin → Backfill, Admin → Costs and `python -m core backfill status` all print
`projection()`, so they can never disagree. The rules, in one place:

- A run starts when a channel is queued for backfill (`start_run`); it counts the ingest
  jobs created since (all jobs when no run was started). Cancelled jobs are not in it.
- **Progress is work done**: indexed items (or held for review). A dead-lettered item is
  not progress: it stays in what remains until the admin retries or discards it, so a
  failing backfill never looks closer to the end.
- **Pace** is items indexed in the last PACE_WINDOW (or since the run began, if shorter).
- **Finish date** is the later of two limits: what remains at that pace, and the backlog's
  expected dollars at the daily cap (paid work stops at the cap). No date when the run is
  paused ("paused"), when every waiting job waits for a paused source ("YouTube
  unreachable since …"), when only dead items remain, or without a pace yet.
- **Backlog cost** prices what remains (core.backfill.budget.estimate at today's prices),
  weighted by the share of recent audio that went to a paid engine.

`save_snapshot` stores the summary in app_settings for cheap reads (the scheduler does it
every minute). app_settings keys owned here: `backfill_run` = {"started_at": ISO, "label":
str}; `progress` = the last snapshot (Projection as JSON).
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from core import clock, engines, settings_store
from core.backfill import breaker, budget, queue
from core.backfill.breaker import SourceStatus
from core.config import get_settings
from core.item_extra import FRESHNESS_LAG_KEY
from core.models import Job, LedgerEntry, MediaItem
from core.states import CLAIMABLE_JOBS, SEARCHABLE, ItemStatus, JobStatus

# The pace is the items indexed in this window (or since the run began, if shorter): long
# enough to smooth a slow hour, short enough that a stopped backfill stops promising.
PACE_WINDOW = timedelta(hours=24)
# Paid share of recent audio: the engines' mix over this many days.
MIX_DAYS = 30


class Outlook(StrEnum):
    """What the finish date can say."""

    DONE = "done"
    ON_PACE = "on pace"  # a date
    PAUSED = "paused"  # the admin paused the backfill
    SOURCE_PAUSED = "source paused"  # everything left waits for a paused source
    NEEDS_DECISION = "needs a decision"  # only dead-lettered items are left
    NO_PACE = "no pace yet"  # nothing indexed recently


class Projection(NamedTuple):
    label: str
    started_at: datetime | None
    total: int  # ingest jobs in this run (cancelled ones excluded)
    done: int  # indexed or held for review
    review: int  # of done, held for review
    dead: int  # dead-lettered: not progress, waiting for the admin
    running: int
    waiting: int  # queued but deferred (budget, a paused source, no worker, a retry back-off)
    queued: int  # ready to run
    audio_hours_done: float
    audio_hours_left: float  # of what remains (dead included)
    items_per_day: float  # the pace: items indexed per day over the pace window (0 = none)
    outlook: Outlook
    finish_date: date | None  # in the budget's timezone; only when outlook is ON_PACE
    bound_by: str | None  # "pace" | "budget" when there is a date
    backlog_unknown_length: int  # remaining items without a duration (estimated at 3 h)
    worst_case_usd: float  # everything left through the paid engine
    paid_share: float  # share of recent audio that a paid engine transcribed
    backlog_usd: float  # expected cost of what remains
    spent_run_usd: float  # ledger since the run started
    spent_total_usd: float  # ledger, all time
    daily_cap_usd: float
    left_today_usd: float
    left_month_usd: float
    paid_paused_until: datetime | None
    dates_unknown: int  # items of the run whose upload date is not known (estimates shown)
    pause_reason: str | None  # the admin's, when paused
    paused_sources: tuple[SourceStatus, ...]  # sources whose breaker is open

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    @property
    def total_usd(self) -> float:
        """Spent so far plus what the backlog is expected to cost."""
        return round(self.spent_total_usd + self.backlog_usd, 2)

    def finish(self) -> str:
        """The finish date in words, the same on every page and in the CLI."""
        if self.outlook is Outlook.ON_PACE and self.finish_date is not None:
            why = "the daily cap" if self.bound_by == "budget" else "the pace"
            return f"done around {self.finish_date:%Y-%m-%d} (set by {why})"
        if self.outlook is Outlook.PAUSED:
            return "paused: no finish date while the backfill is paused"
        if self.outlook is Outlook.SOURCE_PAUSED:
            return "; ".join(s.line() for s in self.paused_sources) + ": no finish date until it answers"
        if self.outlook is Outlook.NEEDS_DECISION:
            return f"only {self.dead:,} dead-lettered item{'s' if self.dead != 1 else ''} left: retry or discard them"
        if self.outlook is Outlook.DONE:
            return "all done"
        return "no finish date yet: nothing was indexed in the last 24 hours"

    def line(self) -> str:
        """One human line for logs and the CLI."""
        paid = f"; paid work paused until {self.paid_paused_until:%Y-%m-%d %H:%M}" if self.paid_paused_until else ""
        if self.paused_sources and self.outlook is not Outlook.SOURCE_PAUSED:  # the finish already says it
            paid += "; " + "; ".join(s.line() for s in self.paused_sources)
        return (
            f"{self.done}/{self.total} ({self.percent:.1f}%) — {self.done} indexed ({self.review} in review), "
            f"{self.dead} dead, {self.running} running, {self.waiting} waiting; {self.remaining} left, "
            f"pace {self.items_per_day:.1f} items/day; {self.finish()}; backlog ≈ ${self.backlog_usd:,.2f}; "
            f"${self.spent_run_usd:.2f} spent, ${self.left_today_usd:.2f} left today, "
            f"${self.left_month_usd:.2f} left this month{paid}"
        )


def start_run(session: Session, label: str = "backfill", *, now: datetime | None = None) -> datetime:
    started = now or clock.now()
    settings_store.BACKFILL_RUN.save(session, {"started_at": started.isoformat(), "label": label})
    return started


def current_run(session: Session) -> tuple[str, datetime | None]:
    run = settings_store.BACKFILL_RUN.load(session)
    started = run.get("started_at")
    return run.get("label", "all jobs"), datetime.fromisoformat(started) if started else None


def _paid_share(session: Session, prices: dict, *, now: datetime) -> float:
    """Share of audio indexed in the last MIX_DAYS days that a paid engine transcribed (1.0 with no history: err high)."""
    rows = session.execute(
        select(MediaItem.engine, func.coalesce(func.sum(MediaItem.duration_s), 0))
        .where(MediaItem.status.in_(SEARCHABLE), MediaItem.indexed_at >= now - timedelta(days=MIX_DAYS))
        .group_by(MediaItem.engine)
    ).all()
    total = sum(float(s) for _, s in rows)
    if total <= 0:
        return 1.0
    return sum(float(s) for e, s in rows if e and budget.is_paid(prices, e)) / total


def _backlog_usd(session: Session, seconds: float, items: int, *, now: datetime) -> tuple[float, float, float]:
    """(worst case, paid share, expected) dollars for `seconds` of audio left, at today's prices."""
    if not items:
        return 0.0, _paid_share(session, budget.get_prices(session), now=now), 0.0
    prices = budget.get_prices(session)
    settings = get_settings()
    paid = [e for e in settings.transcription_engines if budget.is_paid(prices, e)]
    embedder = engines.embedding_engine(settings.embedding_provider)
    paid_embed = embedder.ledger if embedder is not None else None
    # One estimate over the summed audio equals the sum of per-item estimates (prices are linear).
    worst = budget.estimate(prices, duration_s=seconds, transcriber=paid[0] if paid else None, embedding_paid=paid_embed).usd
    embed = budget.estimate(prices, duration_s=seconds, transcriber=None, embedding_paid=paid_embed).usd
    share = _paid_share(session, prices, now=now)
    return round(worst, 2), share, round((worst - embed) * share + embed, 2)


def projection(session: Session, *, now: datetime | None = None) -> Projection:
    """Progress, pace, finish date and backlog cost of the current run: what every page and the CLI show."""
    now = now or clock.now()
    label, started = current_run(session)
    in_run = [Job.kind == "ingest", Job.status != JobStatus.CANCELLED]
    if started is not None:
        in_run.append(Job.created_at >= started)
    seconds = cast(func.coalesce(MediaItem.duration_s, budget.UNKNOWN_DURATION_S), Float)
    claimable = Job.status.in_(CLAIMABLE_JOBS)
    left = Job.status != JobStatus.DONE
    row = session.execute(
        select(
            func.count(),
            func.count().filter(Job.status == JobStatus.DONE),
            func.count().filter(and_(Job.status == JobStatus.DONE, MediaItem.status == ItemStatus.REVIEW)),
            func.count().filter(Job.status == JobStatus.DEAD),
            func.count().filter(Job.status == JobStatus.RUNNING),
            func.count().filter(and_(claimable, Job.run_after > now)),
            func.count().filter(and_(claimable, Job.run_after <= now)),
            func.coalesce(func.sum(case((Job.status == JobStatus.DONE, func.coalesce(MediaItem.duration_s, 0.0)),
                                        else_=0.0)), 0.0),
            func.coalesce(func.sum(case((left, seconds), else_=0.0)), 0.0),
            func.count().filter(and_(left, MediaItem.duration_s.is_(None))),
            func.count().filter(MediaItem.published_at.is_(None)),
        )
        .select_from(Job)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .where(*in_run)
    ).one()
    total, done, review, dead, running, waiting, queued, s_done, s_left, unknown_len, unknown_date = row
    remaining = max(0, total - done)

    since = max(started, now - PACE_WINDOW) if started else now - PACE_WINDOW
    recent = session.scalar(
        select(func.count()).select_from(Job).where(*in_run, Job.status == JobStatus.DONE, Job.finished_at >= since,
                                                    Job.finished_at <= now)
    ) or 0
    span_days = max((now - since).total_seconds() / 86400.0, 1e-9)
    pace = recent / span_days

    worst, share, expected = _backlog_usd(session, float(s_left), remaining, now=now)
    st = budget.state(session, now)
    controls = queue.get_controls(session)
    paused_sources = tuple(breaker.paused_sources(session, now=now))
    live_left = total - done - dead
    held_by_sources = sum(p.waiting for p in paused_sources)

    finish: date | None = None
    bound: str | None = None
    if remaining == 0:
        outlook = Outlook.DONE
    elif controls.paused:
        outlook = Outlook.PAUSED
    elif live_left == 0:
        outlook = Outlook.NEEDS_DECISION
    elif paused_sources and held_by_sources >= live_left:
        outlook = Outlook.SOURCE_PAUSED
    elif pace <= 0:
        outlook = Outlook.NO_PACE
    else:
        days_by_pace = remaining / pace
        cap = st.limits.daily_cap
        days_by_money = expected / cap if cap > 0 else (math.inf if expected > 0 else 0.0)
        if math.isinf(days_by_money):
            outlook = Outlook.NO_PACE  # no money at all for paid work that must be paid
        else:
            outlook = Outlook.ON_PACE
            bound = "budget" if days_by_money > days_by_pace else "pace"
            finish = (now + timedelta(days=max(days_by_pace, days_by_money))).astimezone(st.limits.tz).date()

    spent_run = select(func.coalesce(func.sum(LedgerEntry.usd), 0))
    if started is not None:
        spent_run = spent_run.where(LedgerEntry.at >= started)
    return Projection(
        label, started, total, done, review, dead, running, waiting, queued,
        float(s_done) / 3600.0, float(s_left) / 3600.0, pace, outlook, finish, bound,
        unknown_len, worst, share, expected, float(session.scalar(spent_run) or 0), budget.total_spent(session),
        st.limits.daily_cap, st.left_today, st.left_month, st.paid_paused_until, unknown_date,
        controls.pause_reason if controls.paused else None, paused_sources,
    )


def save_snapshot(session: Session, *, now: datetime | None = None) -> Projection:
    p = projection(session, now=now)
    payload = {
        k: (v.isoformat() if isinstance(v, (datetime, date)) else v)
        for k, v in p._asdict().items() if k != "paused_sources"
    }
    payload.update(
        percent=p.percent, remaining=p.remaining, finish=p.finish(), at=(now or clock.now()).isoformat(),
        paused_sources=[s.line() for s in p.paused_sources],
    )
    settings_store.PROGRESS.save(session, payload)
    return p


def last_snapshot(session: Session) -> dict:
    """The stored snapshot (what the dashboards read): {} before the scheduler's first minute."""
    return settings_store.PROGRESS.load(session)


class Freshness(NamedTuple):
    items: int  # items with a known upload date indexed in the window
    median_lag_h: float | None  # publication → searchable
    max_lag_h: float | None


def freshness_summary(session: Session, *, days: int = 30, now: datetime | None = None) -> Freshness:
    """How soon new uploads became searchable (the item's freshness_lag_s, written by the worker)."""
    now = now or clock.now()
    lag = cast(MediaItem.extra[FRESHNESS_LAG_KEY].astext, Float)
    lags = sorted(
        float(v)
        for v in session.scalars(
            select(lag).where(
                MediaItem.extra.has_key(FRESHNESS_LAG_KEY),  # noqa: W601 - JSONB ? operator
                MediaItem.published_at >= now - timedelta(days=days),
            )
        )
    )
    if not lags:
        return Freshness(0, None, None)
    mid = len(lags) // 2
    median = lags[mid] if len(lags) % 2 else (lags[mid - 1] + lags[mid]) / 2
    return Freshness(len(lags), median / 3600, lags[-1] / 3600)
