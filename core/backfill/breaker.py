"""A circuit breaker per source (YouTube, Zoom): a source that is down pauses, is probed, resumes.

One row per source in `source_breakers`, read and changed under that row's lock, so any
number of workers on any number of machines agree (nothing is kept in a process):

    closed ──N source-wide failures in a row (or one 429 / bot wall)──▶ open (since, reason, next probe)
    open ──next probe time: one job is let through (probe_job_id)──▶ probing
    probing ──the probe fails the same way──▶ open, next probe after twice the wait (at most SOURCE_PROBE_MAX_S)
    probing / open ──any item of the source succeeds or gets an answer about itself──▶ closed, its jobs wake

Source-wide failures are the ones core.states.SOURCE_WIDE_CAUSES names (classified from the
exception's type by core.backfill.failures): the network, DNS, HTTP 5xx, 429, bot walls.
While a source is open its jobs are not claimed (dispatch defers them to the next probe
with wait_reason 'source'), and a run that fails because of it is released, so no attempt
is burned: the item did nothing wrong. Before the breaker opens, failures count as usual
(one unreachable item among working ones is that item's problem).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core import clock
from core.backfill.failures import label, source_name
from core.config import get_settings
from core.models import Job, MediaItem, Source, SourceBreaker
from core.states import CLAIMABLE_JOBS, LIVE_JOBS, BreakerState, FailureCause, WaitReason

log = logging.getLogger(__name__)

# A source that said how long to wait (Retry-After) is believed up to this long.
MAX_RETRY_AFTER_S = 6 * 3600


class Trip(NamedTuple):
    """What one source-wide failure did to its source's breaker."""

    open: bool  # the source is paused now: release the job without counting the attempt
    until: datetime | None  # the next probe


def _wait_s(hits: int, retry_after_s: float | None) -> float:
    s = get_settings()
    if retry_after_s:
        return min(MAX_RETRY_AFTER_S, max(1.0, retry_after_s))
    return min(s.source_probe_max_s, max(1.0, s.source_backoff_s * 2 ** max(0, hits - 1)))


def _locked(session: Session, source_id: int) -> SourceBreaker:
    """The source's breaker row, created closed if missing, locked until the caller commits."""
    session.execute(pg_insert(SourceBreaker).values(source_id=source_id).on_conflict_do_nothing())
    return session.scalars(
        select(SourceBreaker).where(SourceBreaker.source_id == source_id).with_for_update().execution_options(
            populate_existing=True
        )
    ).one()


def _source_jobs(source_id: int, *conditions):
    """The source's claimable jobs matching `conditions`, locked, skipping rows a claimer holds.

    SKIP LOCKED: we hold the breaker row, and a claimer holding job rows may want it next;
    waiting for those rows here could deadlock. A claimer looks at the breaker anyway.
    """
    items = select(MediaItem.id).where(MediaItem.source_id == source_id)
    return (
        select(Job.id)
        .where(Job.status.in_(CLAIMABLE_JOBS), Job.media_item_id.in_(items), *conditions)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


def _hold_jobs(session: Session, source_id: int, until: datetime) -> int:
    """The source's waiting jobs wait for the next probe (their attempts untouched)."""
    result = session.execute(
        update(Job)
        .where(Job.id.in_(_source_jobs(source_id, Job.run_after < until)))
        .values(run_after=until, wait_reason=WaitReason.SOURCE)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult at runtime


def record_failure(
    session: Session,
    source_id: int,
    cause: FailureCause,
    reason: str,
    *,
    job_id: int | None = None,
    retry_after_s: float | None = None,
    now: datetime | None = None,
) -> Trip:
    """A source-wide failure (network, DNS, 5xx, 429, bot wall) of one of the source's calls."""
    now = now or clock.now()
    row = _locked(session, source_id)
    row.cause, row.reason, row.updated_at = cause, reason[:2000], now
    if row.state == BreakerState.OPEN:
        if row.probe_job_id is not None and row.probe_job_id == job_id:
            # The probe failed the same way: wait twice as long before the next one.
            row.hits += 1
            row.probe_job_id = None
            row.next_probe_at = now + timedelta(seconds=_wait_s(row.hits, retry_after_s))
            log.warning("source %s still down (probe job %s): next probe %s", source_id, job_id, row.next_probe_at)
        elif retry_after_s:
            row.next_probe_at = max(row.next_probe_at or now, now + timedelta(seconds=_wait_s(row.hits, retry_after_s)))
        until = row.next_probe_at or now
        _hold_jobs(session, source_id, until)
        return Trip(True, until)
    row.failures += 1
    if cause != FailureCause.RATE_LIMITED and row.failures < get_settings().source_breaker_failures:
        return Trip(False, None)
    row.state, row.since, row.hits, row.probe_job_id = BreakerState.OPEN, now, 1, None
    row.next_probe_at = now + timedelta(seconds=_wait_s(1, retry_after_s))
    held = _hold_jobs(session, source_id, row.next_probe_at)
    log.warning("source %s paused after %s failure(s) in a row (%s): %s; %s jobs wait; first probe %s",
                source_id, row.failures, cause, reason, held, row.next_probe_at)
    return Trip(True, row.next_probe_at)


def record_answer(session: Session, source_id: int, *, now: datetime | None = None) -> bool:
    """The source answered (an item succeeded, or got an answer about itself): close its breaker.

    Returns True when this resumed a paused source (its waiting jobs are claimable now).
    Read first without a lock: nearly every call finds a closed breaker with no streak.
    """
    found = session.execute(
        select(SourceBreaker.state, SourceBreaker.failures).where(SourceBreaker.source_id == source_id)
    ).first()
    if found is None or (found.state == BreakerState.CLOSED and not found.failures):
        return False
    now = now or clock.now()
    row = _locked(session, source_id)
    was_open = row.state == BreakerState.OPEN
    row.state, row.failures, row.hits, row.since = BreakerState.CLOSED, 0, 0, None
    row.next_probe_at = row.probe_job_id = None
    row.updated_at = now
    if was_open:
        woken = session.execute(
            update(Job)
            .where(Job.id.in_(_source_jobs(source_id, Job.wait_reason == WaitReason.SOURCE, Job.run_after > now)))
            .values(run_after=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        log.warning("source %s answers again: resumed, %s waiting jobs are claimable", source_id, woken)
    return was_open


def open_sources(session: Session) -> dict[int, datetime | None]:
    """Sources whose breaker is open → their next probe time (what dispatch checks first)."""
    return dict(
        session.execute(
            select(SourceBreaker.source_id, SourceBreaker.next_probe_at).where(SourceBreaker.state == BreakerState.OPEN)
        ).tuples().all()
    )


class Hold(NamedTuple):
    """A job of a paused source waits: until when, and why in words (for the item's status line)."""

    until: datetime
    why: str


def admit_probe(session: Session, source_id: int, job_id: int, *, lease_s: float, now: datetime | None = None) -> Hold | None:
    """May this job of a paused source run now, as its one probe? None = yes; else how long it waits, and why.

    The probe's slot is taken under the row lock, and the next probe time moves past the
    probe's lease, so two workers never probe at once (and a probe whose worker died is
    followed by another once that time passes).
    """
    now = now or clock.now()
    row = _locked(session, source_id)
    if row.state != BreakerState.OPEN:
        return None
    if row.next_probe_at is not None and row.next_probe_at > now:
        kind = session.scalar(select(Source.kind).where(Source.id == source_id))
        since = f" since {row.since:%H:%M} UTC" if row.since else ""
        why = (f"waiting: {label(row.cause, kind)}{since}; the next try is at {row.next_probe_at:%H:%M:%S} UTC "
               "(no attempt is counted while it waits)")
        return Hold(row.next_probe_at, why)
    row.probe_job_id = job_id
    row.next_probe_at = now + timedelta(seconds=max(_wait_s(row.hits, None), lease_s))
    log.info("source %s: job %s probes it", source_id, job_id)
    return None


class SourceStatus(NamedTuple):
    """A paused source, for Backfill and Health."""

    source_id: int
    kind: str
    name: str
    cause: str | None
    reason: str | None
    since: datetime | None
    next_probe_at: datetime | None
    probing: bool
    waiting: int  # its unfinished jobs (queued, retrying, or the probe running)

    @property
    def what(self) -> str:
        site = source_name(self.kind)
        if self.cause == FailureCause.RATE_LIMITED:
            return f"{site} is rate-limiting us"
        if self.cause == FailureCause.SOURCE_UNREACHABLE:
            return f"{site} unreachable"
        return label(self.cause, self.kind)

    def line(self) -> str:
        """"YouTube unreachable since 06:40 UTC — 38 items waiting; next try 06:52 UTC"."""
        since = f" since {self.since:%H:%M} UTC" if self.since else ""
        nxt = "a probe is trying it now" if self.probing else (
            f"next try {self.next_probe_at:%H:%M} UTC" if self.next_probe_at else "next try soon")
        return f"{self.what}{since} — {self.waiting:,} item{'s' if self.waiting != 1 else ''} waiting; {nxt}"


def paused_sources(session: Session, *, now: datetime | None = None) -> list[SourceStatus]:
    """Every source whose breaker is open, with how many of its jobs wait."""
    now = now or clock.now()
    waiting = (
        select(func.count())
        .select_from(Job)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .where(MediaItem.source_id == SourceBreaker.source_id, Job.status.in_(LIVE_JOBS))
        .scalar_subquery()
    )
    probing = (
        select(func.count()).select_from(Job)
        .where(Job.id == SourceBreaker.probe_job_id, Job.status == "running")
        .scalar_subquery()
    )
    rows = session.execute(
        select(SourceBreaker.source_id, Source.kind, Source.name, SourceBreaker.cause, SourceBreaker.reason,
               SourceBreaker.since, SourceBreaker.next_probe_at, probing, waiting)
        .join(Source, Source.id == SourceBreaker.source_id)
        .where(SourceBreaker.state == BreakerState.OPEN)
        .order_by(SourceBreaker.since)
    ).all()
    return [SourceStatus(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), int(r[8] or 0)) for r in rows]
