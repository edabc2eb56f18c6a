"""Progress of the backfill run: done/total, %, ETA, dollars spent and left.

A run starts when a channel is queued for backfill (`start_run`) and counts the ingest
jobs created since then. The rate behind the ETA is the jobs finished in the last few
hours (or since the run began, if that is shorter), so a paused night does not promise a
fast morning. `save_snapshot` stores the summary in app_settings for cheap dashboard
reads (the scheduler does it every minute); `progress_summary` computes it live.

app_settings keys owned here: `backfill_run` = {"started_at": ISO, "label": str};
`progress` = the last snapshot (Progress as JSON).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from core import clock, settings_store
from core.backfill import budget
from core.item_extra import FRESHNESS_LAG_KEY
from core.models import Job, LedgerEntry, MediaItem
from core.states import LIVE_JOBS, ItemStatus, JobStatus

RATE_WINDOW = timedelta(hours=6)


class Progress(NamedTuple):
    label: str
    started_at: datetime | None
    total: int  # ingest jobs in this run (cancelled ones excluded)
    done: int  # finished: indexed or held for review
    review: int  # of done, held for review
    dead: int  # dead-lettered (need the admin)
    running: int
    waiting: int  # queued but deferred (budget, source back-off, no worker)
    queued: int  # ready to run
    audio_hours_done: float
    audio_hours_left: float
    items_per_hour: float | None
    eta: datetime | None
    spent_usd: float  # ledger since the run started
    left_today_usd: float
    left_month_usd: float
    paid_paused_until: datetime | None
    dates_unknown: int  # items of the run whose upload date is not known (estimates shown)

    @property
    def finished(self) -> int:
        return self.done + self.dead

    @property
    def percent(self) -> float:
        return 100.0 * self.finished / self.total if self.total else 100.0

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.finished)

    def line(self) -> str:
        """One human line for logs and the CLI."""
        eta = f"ETA {self.eta:%Y-%m-%d %H:%M} UTC" if self.eta else "ETA unknown"
        paused = f"; paid work paused until {self.paid_paused_until:%Y-%m-%d %H:%M}" if self.paid_paused_until else ""
        return (
            f"{self.finished}/{self.total} ({self.percent:.1f}%) — {self.done} indexed ({self.review} in review), "
            f"{self.dead} dead, {self.running} running, {self.waiting} waiting; {eta}; "
            f"${self.spent_usd:.2f} spent, ${self.left_today_usd:.2f} left today, "
            f"${self.left_month_usd:.2f} left this month{paused}"
        )


def start_run(session: Session, label: str = "backfill", *, now: datetime | None = None) -> datetime:
    started = now or clock.now()
    settings_store.save_backfill_run(session, {"started_at": started.isoformat(), "label": label})
    return started


def current_run(session: Session) -> tuple[str, datetime | None]:
    run = settings_store.load_backfill_run(session)
    started = run.get("started_at")
    return run.get("label", "all jobs"), datetime.fromisoformat(started) if started else None


def progress_summary(session: Session, *, now: datetime | None = None) -> Progress:
    now = now or clock.now()
    label, started = current_run(session)
    in_run = [Job.kind == "ingest", Job.status != JobStatus.CANCELLED]
    if started is not None:
        in_run.append(Job.created_at >= started)
    # The newest job per item counts (a revived dead job is the same job row).
    hours = cast(func.coalesce(MediaItem.duration_s, 0.0), Float) / 3600.0
    claimable = Job.status.in_((JobStatus.QUEUED, JobStatus.RETRY))
    waiting = and_(claimable, Job.run_after > now)
    row = session.execute(
        select(
            func.count(),
            func.count().filter(Job.status == JobStatus.DONE),
            func.count().filter(and_(Job.status == JobStatus.DONE, MediaItem.status == ItemStatus.REVIEW)),
            func.count().filter(Job.status == JobStatus.DEAD),
            func.count().filter(Job.status == JobStatus.RUNNING),
            func.count().filter(waiting),
            func.count().filter(and_(claimable, Job.run_after <= now)),
            func.coalesce(func.sum(case((Job.status == JobStatus.DONE, hours), else_=0.0)), 0.0),
            func.coalesce(func.sum(case((Job.status.in_(LIVE_JOBS), hours), else_=0.0)), 0.0),
            func.count().filter(MediaItem.published_at.is_(None)),
        )
        .select_from(Job)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .where(*in_run)
    ).one()
    total, done, review, dead, running, waiting_n, queued, h_done, h_left, unknown = row

    since = max(started, now - RATE_WINDOW) if started else now - RATE_WINDOW
    recent = session.scalar(
        select(func.count()).select_from(Job).where(*in_run, Job.status.in_((JobStatus.DONE, JobStatus.DEAD)), Job.finished_at >= since)
    ) or 0
    span_h = max((now - since).total_seconds() / 3600.0, 1e-6)
    rate = recent / span_h if recent else None
    remaining = max(0, total - done - dead)
    eta = now + timedelta(hours=remaining / rate) if rate and remaining else (now if not remaining else None)

    spent_stmt = select(func.coalesce(func.sum(LedgerEntry.usd), 0))
    if started is not None:
        spent_stmt = spent_stmt.where(LedgerEntry.at >= started)
    st = budget.state(session, now)
    return Progress(
        label, started, total, done, review, dead, running, waiting_n, queued,
        float(h_done), float(h_left), rate, eta, float(session.scalar(spent_stmt) or 0),
        st.left_today, st.left_month, st.paid_paused_until, unknown,
    )


def save_snapshot(session: Session, *, now: datetime | None = None) -> Progress:
    p = progress_summary(session, now=now)
    payload = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in p._asdict().items()}
    payload.update(percent=p.percent, remaining=p.remaining, at=(now or clock.now()).isoformat())
    settings_store.save_progress(session, payload)
    return p


def last_snapshot(session: Session) -> dict:
    """The stored snapshot (what the dashboards read): {} before the scheduler's first minute."""
    return settings_store.load_progress(session)


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
