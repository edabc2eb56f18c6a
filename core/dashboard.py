"""Read-only figures for the admin console: cost charts, failures and the library table.

The backlog projection (progress, pace, finish date, backlog cost) is core.backfill.progress's.

Everything is aggregated in SQL (GROUP BY day/engine/status, LIMIT/OFFSET pages), so the
pages stay fast at 10,000+ items and a year of ledger rows: Python only ever sees one row
per day, per engine or per page. Money rules (caps, prices, estimates, budget days in the
budget's timezone) come from core.backfill.budget; nothing here decides or writes anything.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Select, UnaryExpression, and_, case, func, or_, select
from sqlalchemy.orm import Session

from core import clock, engines
from core.audit import escape_like
from core.backfill import budget, failures
from core.models import ITEM_STATUSES, AuditEntry, Job, LedgerEntry, MediaItem, Source
from core.states import SEARCHABLE, ItemStatus, JobStatus

DONE_STATUSES = SEARCHABLE


def _money(value) -> float:
    return float(value or 0)


def _local_day(column, tz_name: str):
    """The calendar day of a timestamp in the budget's timezone (same days as core.backfill.budget)."""
    return func.date(func.timezone(tz_name, column))


def _days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Spend against the caps
# ---------------------------------------------------------------------------------------------


class DailySpend(NamedTuple):
    day: date
    usd: float
    cap: float  # the daily cap in force at the end of that day (from the audit trail of budget changes)
    over: bool


def _cap_steps(session: Session, current: float) -> list[tuple[datetime, float]]:
    """(since, daily cap) steps read from the `budget.set` audit rows, oldest first.

    Before the first recorded change the cap was that row's `before`; with no change on
    record the current cap is all we know.
    """
    rows = session.execute(
        select(AuditEntry.at, AuditEntry.before, AuditEntry.after)
        .where(AuditEntry.action == "budget.set")
        .order_by(AuditEntry.at, AuditEntry.id)
    ).all()

    def cap(values: dict | None) -> float | None:
        try:
            return min(float(values["daily_usd"]), float(values["daily_safety_usd"]))  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            return None

    if not rows:
        return [(datetime.min.replace(tzinfo=timezone.utc), current)]
    first = cap(rows[0].before)
    steps = [(datetime.min.replace(tzinfo=timezone.utc), first if first is not None else current)]
    steps += [(at, c) for at, _, after in rows if (c := cap(after)) is not None]
    return steps


def daily_spend(session: Session, days: int = 30, *, now: datetime | None = None) -> list[DailySpend]:
    """Dollars per budget day for the last `days` days against that day's cap (zero days included)."""
    limits = budget.get_budget(session)
    steps = _cap_steps(session, limits.daily_cap)
    tz = limits.tz
    out = []
    for d in budget.spend_by_day(session, days, now=now):
        day_end = datetime.combine(d.day + timedelta(days=1), datetime.min.time(), tz)
        cap = next((c for at, c in reversed(steps) if at < day_end), steps[0][1])
        out.append(DailySpend(d.day, d.usd, cap, d.usd > cap + 1e-9))
    if out:  # today is always judged against the cap in force now
        last = out[-1]
        out[-1] = last._replace(cap=limits.daily_cap, over=last.usd > limits.daily_cap + 1e-9)
    return out


class MonthToDate(NamedTuple):
    month_start: date
    month_end: date  # first day of the next month
    spent: float
    reserved: float
    cap: float
    days_elapsed: float  # fraction of the month gone, in days
    days_in_month: int
    by_day: list[tuple[date, float]]  # cumulative spend at the end of each day so far

    @property
    def projected(self) -> float:
        """Month-end spend if the month continues at its pace so far (never above the cap: work stops there)."""
        if self.days_elapsed <= 0:
            return self.spent
        return min(self.cap, self.spent / self.days_elapsed * self.days_in_month)

    @property
    def fraction(self) -> float:
        return self.spent / self.cap if self.cap else 0.0


def month_to_date(session: Session, *, now: datetime | None = None) -> MonthToDate:
    now = now or clock.now()
    st = budget.state(session, now)
    p = st.periods
    tz = st.limits.tz
    first = p.month_start.astimezone(tz).date()
    next_first = p.month_end.astimezone(tz).date()
    today = now.astimezone(tz).date()
    day = _local_day(LedgerEntry.at, st.limits.timezone)
    rows: dict[date, Decimal | None] = dict(
        session.execute(
            select(day, func.sum(LedgerEntry.usd))
            .where(LedgerEntry.at >= p.month_start, LedgerEntry.at < p.month_end)
            .group_by(day)
        ).tuples().all()
    )
    running, cumulative = 0.0, []
    for d in _days(first, (today - first).days + 1):
        running += _money(rows.get(d))
        cumulative.append((d, round(running, 6)))
    elapsed = (now - p.month_start).total_seconds() / 86400
    return MonthToDate(
        first, next_first, st.spent_month, st.reserved, st.limits.monthly_cap, elapsed, (next_first - first).days, cumulative
    )


class EngineRow(NamedTuple):
    engine: str
    items: int
    audio_hours: float  # audio transcribed by this engine (indexed + review items)
    usd: float  # money the ledger booked under this engine's name (0 for free engines)


def by_engine(session: Session, *, since: datetime | None = None) -> list[EngineRow]:
    """Per transcription engine: items, audio hours and spend; plus paid non-transcription lines (embeddings).

    Audio hours come from the items (free engines never reach the ledger); dollars from the ledger.
    """
    stmt = select(
        func.coalesce(MediaItem.engine, "unknown"),
        func.count(),
        func.coalesce(func.sum(MediaItem.duration_s), 0),
    ).where(MediaItem.status.in_(DONE_STATUSES)).group_by(MediaItem.engine)
    if since is not None:
        stmt = stmt.where(MediaItem.indexed_at >= since)
    items = {e: (int(n), float(s) / 3600) for e, n, s in session.execute(stmt)}
    spend = {r.engine: r for r in budget.spend_by_engine(session, since=since)}
    rows: list[EngineRow] = []
    for engine, (n, hours) in items.items():
        ledger = spend.pop(engines.ledger_name(engine), None)
        rows.append(EngineRow(engine, n, hours, ledger.usd if ledger else 0.0))
    for name, ledger in spend.items():  # paid lines that are no transcription engine (embeddings, GPU)
        rows.append(EngineRow(name, 0, ledger.audio_minutes / 60, ledger.usd))
    return sorted(rows, key=lambda r: (-r.usd, -r.audio_hours))


# ---------------------------------------------------------------------------------------------
# Cumulative spend
# ---------------------------------------------------------------------------------------------


def cumulative_spend(session: Session, *, days: int = 90, now: datetime | None = None) -> list[tuple[date, float]]:
    """All-time cumulative spend at the end of each of the last `days` days (starts from the earlier total)."""
    now = now or clock.now()
    limits = budget.get_budget(session)
    tz = limits.tz
    start = budget.periods(now, tz).day_start - timedelta(days=days - 1)
    before = _money(session.scalar(select(func.coalesce(func.sum(LedgerEntry.usd), 0)).where(LedgerEntry.at < start)))
    day = _local_day(LedgerEntry.at, limits.timezone)
    rows: dict[date, Decimal | None] = dict(
        session.execute(select(day, func.sum(LedgerEntry.usd)).where(LedgerEntry.at >= start).group_by(day)).tuples().all()
    )
    running, out = before, []
    for d in _days(start.astimezone(tz).date(), days):
        running += _money(rows.get(d))
        out.append((d, round(running, 6)))
    return out


# ---------------------------------------------------------------------------------------------
# Throughput and failures
# ---------------------------------------------------------------------------------------------


class DayCount(NamedTuple):
    day: date
    series: str
    # Shadows tuple.count (mypy objects); the pages read it by this name.
    count: int  # type: ignore[assignment]


def items_per_day(session: Session, days: int = 30, *, now: datetime | None = None) -> list[DayCount]:
    """Items indexed per day, split by engine (zero days included for the engines present)."""
    now = now or clock.now()
    limits = budget.get_budget(session)
    start = budget.periods(now, limits.tz).day_start - timedelta(days=days - 1)
    day = _local_day(MediaItem.indexed_at, limits.timezone)
    engine = func.coalesce(MediaItem.engine, "unknown")
    rows = session.execute(
        select(day, engine, func.count())
        .where(MediaItem.indexed_at >= start, MediaItem.status.in_(DONE_STATUSES))
        .group_by(day, engine)
    ).all()
    return _fill(rows, start.astimezone(limits.tz).date(), days)


def failures_per_day(session: Session, days: int = 30, *, now: datetime | None = None) -> list[DayCount]:
    """Failed runs per day: dead-lettered jobs (when they died) and failed attempts awaiting retry."""
    now = now or clock.now()
    limits = budget.get_budget(session)
    start = budget.periods(now, limits.tz).day_start - timedelta(days=days - 1)
    when = case((Job.status == JobStatus.DEAD, Job.finished_at), else_=func.coalesce(Job.started_at, Job.created_at))
    day = _local_day(when, limits.timezone)
    series = case((Job.status == JobStatus.DEAD, "dead-lettered"), else_="failed attempt, will retry")
    rows = session.execute(
        select(day, series, func.count())
        .where(or_(Job.status == JobStatus.DEAD, and_(Job.status == JobStatus.RETRY, Job.last_error.is_not(None))), when >= start)
        .group_by(day, series)
    ).all()
    return _fill(rows, start.astimezone(limits.tz).date(), days)


def _fill(rows, first: date, days: int) -> list[DayCount]:
    found = {(d, s): int(n) for d, s, n in rows}
    names = sorted({s for _, s in found}) or []
    return [DayCount(d, s, found.get((d, s), 0)) for d in _days(first, days) for s in names]


# ---------------------------------------------------------------------------------------------
# The library table
# ---------------------------------------------------------------------------------------------

SORTS: dict[str, tuple[UnaryExpression[Any], UnaryExpression[Any]]] = {
    "newest first": (MediaItem.published_at.desc().nullslast(), MediaItem.id.desc()),
    "oldest first": (MediaItem.published_at.asc().nullslast(), MediaItem.id.asc()),
    "recently changed": (MediaItem.updated_at.desc(), MediaItem.id.desc()),
    "title A–Z": (MediaItem.title.asc(), MediaItem.id.asc()),
    "most expensive": (MediaItem.cost_usd.desc(), MediaItem.id.desc()),
    "longest": (MediaItem.duration_s.desc().nullslast(), MediaItem.id.desc()),
    "most chunks": (MediaItem.chunk_count.desc(), MediaItem.id.desc()),
}


class LibraryFilter(NamedTuple):
    statuses: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    source_kinds: tuple[str, ...] = ()
    search: str = ""  # words in the title, or an exact external id / item id
    pinned_only: bool = False
    sort: str = "newest first"


class LibraryRow(NamedTuple):
    id: int
    title: str
    url: str
    source: str
    external_id: str
    status: str
    status_detail: str | None
    engine: str | None
    route_reason: str | None
    cost_usd: float
    duration_s: float | None
    chunk_count: int
    published_at: datetime | None
    indexed_at: datetime | None
    pinned: bool
    skipped: bool
    visible: bool
    error_cause: str | None = None  # the cause of the failure its job is retrying or died of
    source_kind: str | None = None

    @property
    def error(self) -> str:
        """The failure in plain words ("YouTube could not be reached"), or "" when nothing failed."""
        return failures.label(self.error_cause, self.source_kind) if self.error_cause or self.failed else ""

    @property
    def failed(self) -> bool:
        return self.status in (ItemStatus.DEAD, ItemStatus.FAILED)


class LibraryPage(NamedTuple):
    rows: list[LibraryRow]
    total: int
    page: int  # 1-based, clamped to the pages that exist
    pages: int
    page_size: int


def _library_where(stmt: Select, f: LibraryFilter) -> Select:
    if f.statuses:
        stmt = stmt.where(MediaItem.status.in_(f.statuses))
    if f.engines:
        named = [e for e in f.engines if e != "none"]
        conds = [MediaItem.engine.in_(named)] if named else []
        if "none" in f.engines:
            conds.append(MediaItem.engine.is_(None))
        stmt = stmt.where(or_(*conds))
    if f.source_kinds:
        stmt = stmt.where(Source.kind.in_(f.source_kinds))
    if f.pinned_only:
        stmt = stmt.where(MediaItem.pinned.is_(True))
    text = " ".join(f.search.split())
    if text:
        # Every word must appear in the title (bound, wildcards escaped), or the text is an id.
        words = [MediaItem.title.ilike(f"%{escape_like(w)}%", escape="\\") for w in text.split()[:8]]
        ids = [MediaItem.external_id == text]
        if text.isdigit() and len(text) < 12:
            ids.append(MediaItem.id == int(text))
        stmt = stmt.where(or_(and_(*words), *ids))
    return stmt


def _failure_of_item():
    """The stored cause of the item's newest failing job (retrying or dead), for the library's error column."""
    return (
        select(Job.failure_cause)
        .where(Job.media_item_id == MediaItem.id, Job.status.in_((JobStatus.RETRY, JobStatus.DEAD)),
               Job.last_error.is_not(None))
        .order_by(Job.id.desc())
        .limit(1)
        .correlate(MediaItem)
        .scalar_subquery()
    )


def library_page(session: Session, f: LibraryFilter, *, page: int = 1, page_size: int = 50) -> LibraryPage:
    """One page of items, filtered, searched and sorted in SQL, with the total for the pager."""
    page_size = max(1, min(500, int(page_size)))
    base = select(MediaItem.id).join(Source, Source.id == MediaItem.source_id)
    total = int(session.scalar(select(func.count()).select_from(_library_where(base, f).subquery())) or 0)
    pages = max(1, math.ceil(total / page_size))
    page = min(max(1, int(page)), pages)
    stmt = select(
        MediaItem.id, MediaItem.title, MediaItem.url, Source.kind, MediaItem.external_id, MediaItem.status,
        MediaItem.status_detail, MediaItem.engine, MediaItem.route_reason, MediaItem.cost_usd, MediaItem.duration_s,
        MediaItem.chunk_count, MediaItem.published_at, MediaItem.indexed_at, MediaItem.pinned, MediaItem.skipped,
        MediaItem.visible, _failure_of_item(), Source.kind,
    ).join(Source, Source.id == MediaItem.source_id)
    stmt = _library_where(stmt, f).order_by(*SORTS.get(f.sort, SORTS["newest first"]))
    stmt = stmt.limit(page_size).offset((page - 1) * page_size)
    rows = [
        LibraryRow._make((*r[:9], _money(r[9]), *r[10:])) for r in session.execute(stmt)
    ]
    return LibraryPage(rows, total, page, pages, page_size)


def status_counts(session: Session) -> dict[str, int]:
    """Items per status (every status listed, zero when none): the library's summary line."""
    counts = {s: 0 for s in ITEM_STATUSES}
    counts.update({s: int(n) for s, n in session.execute(select(MediaItem.status, func.count()).group_by(MediaItem.status))})
    return counts


def engines_in_use(session: Session) -> list[str]:
    return [e for e in session.scalars(select(MediaItem.engine).distinct().order_by(MediaItem.engine)) if e]


class RunningJob(NamedTuple):
    job_id: int
    item_id: int
    title: str
    kind: str
    stage: str | None
    engine: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    worker: str | None


def running_jobs(session: Session, *, limit: int = 20) -> list[RunningJob]:
    rows = session.execute(
        select(Job.id, Job.media_item_id, MediaItem.title, Job.kind, Job.stage, Job.engine, Job.started_at,
               Job.heartbeat_at, Job.lease_owner)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .where(Job.status == JobStatus.RUNNING)
        .order_by(Job.started_at)
        .limit(limit)
    ).all()
    return [RunningJob(*r) for r in rows]


class DeadRow(NamedTuple):
    job_id: int
    item_id: int
    title: str
    kind: str
    attempts: int
    last_error: str | None
    finished_at: datetime | None
    cause: str | None  # core.states.FailureCause; None for failures recorded before causes were
    source_kind: str | None


class DeadGroup(NamedTuple):
    """Dead-lettered jobs of one cause and source: what the admin decides on at once."""

    cause: str | None
    source_kind: str | None
    count: int  # type: ignore[assignment]  # shadows tuple.count; the pages read it by this name
    newest: datetime | None

    @property
    def label(self) -> str:
        return failures.label(self.cause, self.source_kind)

    @property
    def advice(self) -> str:
        return failures.advice(self.cause)


def dead_letter_groups(session: Session) -> list[DeadGroup]:
    """The dead letter grouped by stored cause and source kind, biggest group first."""
    rows = session.execute(
        select(Job.failure_cause, Source.kind, func.count(), func.max(Job.finished_at))
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .join(Source, Source.id == MediaItem.source_id)
        .where(Job.status == JobStatus.DEAD)
        .group_by(Job.failure_cause, Source.kind)
        .order_by(func.count().desc(), Job.failure_cause, Source.kind)
    ).all()
    return [DeadGroup(c, k, int(n), newest) for c, k, n, newest in rows]


def _in_group(stmt: Select, cause: str | None, source_kind: str | None) -> Select:
    return stmt.where(Job.failure_cause.is_not_distinct_from(cause), Source.kind.is_not_distinct_from(source_kind))


def dead_job_ids(session: Session, cause: str | None, source_kind: str | None) -> list[int]:
    """The dead jobs of one group (core.admin_actions retries or discards them together)."""
    stmt = (
        select(Job.id)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .join(Source, Source.id == MediaItem.source_id)
        .where(Job.status == JobStatus.DEAD)
        .order_by(Job.id)
    )
    return list(session.scalars(_in_group(stmt, cause, source_kind)))


def dead_letters(
    session: Session, *, limit: int = 200, group: tuple[str | None, str | None] | None = None
) -> list[DeadRow]:
    """Dead-lettered jobs with their item's title, cause and last error, newest first (optionally one group)."""
    stmt = (
        select(Job.id, Job.media_item_id, MediaItem.title, Job.kind, Job.attempts, Job.last_error, Job.finished_at,
               Job.failure_cause, Source.kind)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .join(Source, Source.id == MediaItem.source_id)
        .where(Job.status == JobStatus.DEAD)
        .order_by(Job.finished_at.desc().nullslast(), Job.id.desc())
        .limit(limit)
    )
    if group is not None:
        stmt = _in_group(stmt, *group)
    return [DeadRow(*r) for r in session.execute(stmt)]
