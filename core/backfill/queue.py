"""The ingestion queue: rows in `jobs`, claimed with SELECT … FOR UPDATE SKIP LOCKED and a lease.

Life of a job::

    queued ──claim──▶ running ──complete──▶ done
       ▲                │ fail (retryable, attempts left) ──▶ retry (run_after = now + back-off) ─┐
       │                │ fail (permanent or out of attempts) ──▶ dead (last_error, attempts)      │
       │                │ release (shutdown, source rate-limited, waiting for budget) ──┐          │
       └────────────────┴───────────────────────────────────────────────────────────────┴──────────┘
    running with an expired lease ──reaper──▶ retry or dead (the lost run counts as an attempt)

`attempts` counts runs that started, so a poison item that kills its worker every time is
dead-lettered after `max_attempts` crashes instead of looping forever. A release (SIGTERM,
a source's 429, no budget) gives the attempt back: it was nobody's fault.

A job that could not run now for an outside reason stays `queued` with `run_after` in the
future and `wait_reason` saying why (core.states.WaitReason: budget, source, worker, or it
was interrupted / released at shutdown). `stage` only ever names the pipeline stage a run
reached (core.states.Stage).

Every time comes from core.clock, never from the database, so tests can move the calendar.

app_settings keys owned here (stored through core.settings_store):
- `backfill`: admin controls, each optional, defaults from Settings:
  {"paused": bool, "pause_reason": str, "max_concurrency": int, "max_attempts": int,
   "paid_calls_per_minute": int, "job_timeout_s": float, "storage_limit_gb": float,
   "paid_routing": "never"|"urgent"|"always", "urgent_days": float}
- `backfill_stopped`: {"reason": str, "at": ISO time} while a worker refuses new work
  (storage limit reached); absent when work flows.
"""
from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any, NamedTuple, get_type_hints

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core import clock, settings_store
from core.backfill import priorities
from core.config import get_settings
from core.models import Job, MediaItem
from core.states import (
    CLAIMABLE_JOBS,
    LIVE_JOBS,
    SEARCHABLE,
    SETTLED_ITEMS,
    FailureCause,
    ItemStatus,
    JobStatus,
    Stage,
    WaitReason,
)

log = logging.getLogger(__name__)

LIVE_STATUSES = LIVE_JOBS
CLAIMABLE_STATUSES = CLAIMABLE_JOBS
# Item states that need no (re)ingestion by a channel sync: done, held, or an admin decision.
SETTLED_ITEM_STATUSES = SETTLED_ITEMS
CLAIM_LOCK_KEY = 0x63686166  # "chaf": serialises claims so max_concurrency holds across workers
# The partial unique index uq_jobs_live_item's predicate, for ON CONFLICT.
_LIVE_PREDICATE = text("status IN ('queued','running','retry')")


# ---------------------------------------------------------------------------------------------
# Controls and pause
# ---------------------------------------------------------------------------------------------


class Controls(NamedTuple):
    paused: bool
    pause_reason: str | None
    max_concurrency: int
    max_attempts: int
    paid_calls_per_minute: int
    job_timeout_s: float
    storage_limit_gb: float
    paid_routing: str
    urgent_days: float


# The fields an admin can set, with the type each stored value is coerced to (the NamedTuple's own
# annotations: app_settings keeps only the overrides, settings_store.CONTROLS).
_CONTROL_TYPES: dict[str, type] = {
    name: kind for name, kind in get_type_hints(Controls).items() if name not in ("paused", "pause_reason")
}


def get_controls(session: Session) -> Controls:
    s = get_settings()
    raw = settings_store.CONTROLS.load(session)
    defaults = {name: getattr(s, name) for name in _CONTROL_TYPES}
    values = {name: kind(raw.get(name, defaults[name])) for name, kind in _CONTROL_TYPES.items()}
    return Controls(paused=bool(raw.get("paused", False)), pause_reason=raw.get("pause_reason"), **values)


def set_controls(session: Session, **changes: Any) -> Controls:
    """Change admin controls (unknown names or bad values raise ValueError, nothing is written)."""
    raw = settings_store.CONTROLS.load(session, lock=True)
    for name, value in changes.items():
        if name not in _CONTROL_TYPES:
            raise ValueError(f"unknown control {name!r}; known: {', '.join(_CONTROL_TYPES)}")
        value = _CONTROL_TYPES[name](value)
        if name == "paid_routing" and value not in ("never", "urgent", "always"):
            raise ValueError("paid_routing must be never, urgent or always")
        if name in ("max_concurrency", "max_attempts") and value < 1:
            raise ValueError(f"{name} must be at least 1")
        if name != "paid_routing" and value < 0:
            raise ValueError(f"{name} must not be negative")
        raw[name] = value
    settings_store.CONTROLS.save(session, raw)
    return get_controls(session)


def set_paused(session: Session, paused: bool, reason: str | None = None) -> None:
    """Stop (or resume) claiming new work everywhere; running jobs finish."""
    raw = settings_store.CONTROLS.load(session, lock=True)
    raw["paused"] = bool(paused)
    raw["pause_reason"] = (reason or "paused by the admin") if paused else None
    settings_store.CONTROLS.save(session, raw)


def is_paused(session: Session) -> bool:
    return get_controls(session).paused


# ---------------------------------------------------------------------------------------------
# Enqueue
# ---------------------------------------------------------------------------------------------


def enqueue(
    session: Session,
    item_id: int,
    *,
    kind: str = "ingest",
    priority: float | None = None,
    engine: str | None = None,
    max_attempts: int | None = None,
    run_after: datetime | None = None,
) -> int | None:
    """Queue work for an item; returns the job id, or None when a live job already exists or the item is skipped.

    Safe to call any number of times from any number of processes: the partial unique index
    `uq_jobs_live_item` makes a second live job for the same item and kind impossible.
    """
    item = session.get(MediaItem, item_id)
    if item is None or item.skipped:
        return None
    if priority is None:
        priority = priorities.score_item(session, item)
    now = clock.now()
    stmt = (
        pg_insert(Job)
        .values(
            media_item_id=item_id,
            kind=kind,
            status=JobStatus.QUEUED,
            priority=priority,
            engine=engine,
            run_after=run_after or now,
            max_attempts=max_attempts or get_controls(session).max_attempts,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Job.media_item_id, Job.kind], index_where=_LIVE_PREDICATE)
        .returning(Job.id)
    )
    job_id = session.scalar(stmt)
    if job_id is not None and item.status not in SEARCHABLE:
        # A re-transcription keeps the item searchable (and its status) until the new index replaces it.
        item.status, item.status_detail = ItemStatus.QUEUED, None
    return job_id


class TakeOver(NamedTuple):
    job_id: int | None  # the claimable job to run now, or None (then `why` says what holds the item)
    why: str | None = None


def take_over(
    session: Session, item_id: int, *, priority: float, engine: str | None = None, now: datetime | None = None
) -> TakeOver:
    """A job for `item_id` that the caller can claim right now (`ingest` runs one item at once).

    A person asking for an item now takes over whatever job waits for it: a retry left by a
    failed attempt, a queued backfill job. It gets the caller's engine and priority and a
    fresh set of attempts (the earlier failures were the machine's, e.g. an engine without a
    key, not this run's). A running job is left alone (reap expired leases first: a dead
    worker's job is then a retry, and its reservation is settled by the reaper).
    """
    now = now or clock.now()
    job_id = enqueue(session, item_id, priority=priority, engine=engine)
    if job_id is not None:
        return TakeOver(job_id)
    item = session.get(MediaItem, item_id)
    if item is None or item.skipped:
        return TakeOver(None, "the item is skipped (Admin → Library: un-skip it)")
    job = session.scalars(
        select(Job)
        .where(Job.media_item_id == item_id, Job.kind == "ingest", Job.status.in_(LIVE_STATUSES))
        .with_for_update()
    ).first()
    if job is None:  # finished between the insert and this look: queue it again
        return TakeOver(enqueue(session, item_id, priority=priority, engine=engine))
    if job.status == JobStatus.RUNNING:
        return TakeOver(None, f"worker {job.lease_owner} is transcribing it right now (job {job.id}, stage '{job.stage}')")
    job.status, job.attempts, job.engine, job.priority = JobStatus.QUEUED, 0, engine, priority
    job.run_after, job.lease_owner, job.lease_expires_at = now, None, None
    job.stage = job.wait_reason = None
    if item.status not in SEARCHABLE:
        item.status, item.status_detail = ItemStatus.QUEUED, None
    session.flush()
    return TakeOver(job.id)


def enqueue_items(session: Session, item_ids: list[int], *, kind: str = "ingest") -> int:
    """Queue many items at once with fresh priorities (one statement per 1,000); returns how many are new."""
    scorer = priorities.Scorer.load(session)
    attempts = get_controls(session).max_attempts
    now = clock.now()
    items = list(session.scalars(select(MediaItem).where(MediaItem.id.in_(item_ids), MediaItem.skipped.is_(False))))
    new_ids: list[int] = []
    for start in range(0, len(items), 1000):
        rows = [
            {"media_item_id": i.id, "kind": kind, "status": JobStatus.QUEUED, "priority": scorer.score(i),
             "run_after": now, "max_attempts": attempts, "created_at": now}
            for i in items[start : start + 1000]
        ]
        stmt = (
            pg_insert(Job)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[Job.media_item_id, Job.kind], index_where=_LIVE_PREDICATE)
            .returning(Job.media_item_id)
        )
        new_ids += session.scalars(stmt).all()
    if new_ids:
        session.execute(
            update(MediaItem)
            .where(MediaItem.id.in_(new_ids), MediaItem.status.not_in(SEARCHABLE))
            .values(status=ItemStatus.QUEUED, status_detail=None)
            .execution_options(synchronize_session=False)
        )
    return len(new_ids)


def enqueue_source(session: Session, source_id: int) -> int:
    """Queue every item of a source that still needs ingesting (not indexed, held, skipped or dead)."""
    ids = list(
        session.scalars(
            select(MediaItem.id).where(
                MediaItem.source_id == source_id,
                MediaItem.skipped.is_(False),
                MediaItem.status.not_in(SETTLED_ITEM_STATUSES),
            )
        )
    )
    return enqueue_items(session, ids)


# ---------------------------------------------------------------------------------------------
# Claim, heartbeat, finish
# ---------------------------------------------------------------------------------------------


def lock_claims(session: Session) -> None:
    """Serialise claimers for the rest of this transaction (a claim takes milliseconds).

    Rows are still taken with SKIP LOCKED, so a job being heartbeaten or finished by its
    owner is never waited on; the lock only makes "count running, then claim" atomic so
    max_concurrency holds whatever the number of workers.
    """
    session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))


def running_count(session: Session, now: datetime | None = None) -> int:
    now = now or clock.now()
    return session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at > now)
    ) or 0


def candidates(
    session: Session,
    *,
    now: datetime | None = None,
    limit: int = 20,
    kinds: tuple[str, ...] | None = None,
    job_id: int | None = None,
) -> list[tuple[Job, MediaItem]]:
    """The next claimable jobs (or just `job_id`), best first, locked for this transaction (rows others hold are skipped)."""
    now = now or clock.now()
    stmt = (
        select(Job, MediaItem)
        .join(MediaItem, MediaItem.id == Job.media_item_id)
        .where(Job.status.in_(CLAIMABLE_STATUSES), Job.run_after <= now, MediaItem.skipped.is_(False))
        .order_by(Job.priority.desc(), Job.run_after, Job.id)
        .limit(limit)
        .with_for_update(of=Job, skip_locked=True)
    )
    if kinds:
        stmt = stmt.where(Job.kind.in_(kinds))
    if job_id is not None:
        stmt = stmt.where(Job.id == job_id)
    return [(job, item) for job, item in session.execute(stmt)]


def start(session: Session, job: Job, *, worker_id: str, lease_s: float, now: datetime | None = None) -> None:
    """Mark a locked candidate as ours: running, one more attempt, a lease until now + lease_s."""
    now = now or clock.now()
    job.status = JobStatus.RUNNING
    job.attempts += 1
    job.lease_owner = worker_id
    job.lease_expires_at = now + timedelta(seconds=lease_s)
    job.heartbeat_at = now
    job.started_at = now
    job.finished_at = None
    job.stage, job.wait_reason = Stage.CLAIMED, None
    session.flush()


def heartbeat(
    session: Session, job_id: int, worker_id: str, *, lease_s: float, stage: Stage | None = None, now: datetime | None = None
) -> bool:
    """Renew our lease; False means the job is no longer ours (the reaper took it back)."""
    now = now or clock.now()
    values: dict[str, Any] = {"heartbeat_at": now, "lease_expires_at": now + timedelta(seconds=lease_s)}
    if stage:
        values["stage"] = stage
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == JobStatus.RUNNING)
        .values(**values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]  # a CursorResult at runtime


def _owned(session: Session, job_id: int, worker_id: str) -> Job | None:
    return session.scalars(
        select(Job).where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == JobStatus.RUNNING).with_for_update()
    ).first()


def complete(session: Session, job_id: int, worker_id: str, *, now: datetime | None = None) -> bool:
    """The job's work is done; False if the lease was lost meanwhile (someone else owns it now)."""
    job = _owned(session, job_id, worker_id)
    if job is None:
        return False
    job.status, job.stage = JobStatus.DONE, Stage.DONE
    job.finished_at = now or clock.now()
    job.lease_owner = job.lease_expires_at = None
    job.last_error = None
    return True


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential back-off with 'equal jitter': between half and all of base·2^(attempt-1), capped.

    The jitter keeps workers that failed together (an API outage) from retrying together.
    """
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


class FailOutcome(NamedTuple):
    status: JobStatus  # RETRY | DEAD
    run_after: datetime | None


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    return f"{type(error).__name__}: {error}"


def _settle_failure(
    session: Session, job: Job, message: str, *, retryable: bool, cause: FailureCause, now: datetime,
    rng: random.Random | None,
) -> FailOutcome:
    s = get_settings()
    item = session.get(MediaItem, job.media_item_id)
    job.last_error, job.failure_cause = message, cause
    job.lease_owner = job.lease_expires_at = None
    if retryable and job.attempts < job.max_attempts:
        run_after = now + timedelta(seconds=backoff_s(job.attempts, base_s=s.retry_base_s, max_s=s.retry_max_s, rng=rng))
        job.status, job.run_after = JobStatus.RETRY, run_after
        if item is not None and item.status not in SEARCHABLE:
            item.status = ItemStatus.QUEUED
            item.status_detail = f"retry {job.attempts + 1} of {job.max_attempts} after {run_after:%Y-%m-%d %H:%M} UTC — {message}"
        return FailOutcome(JobStatus.RETRY, run_after)
    job.status, job.finished_at = JobStatus.DEAD, now
    if item is not None:
        why = "permanent error" if not retryable else f"gave up after {job.attempts} attempts"
        if item.status not in SEARCHABLE:  # a failed re-transcription keeps the old index
            item.status = ItemStatus.DEAD
        item.status_detail = f"{why}: {message}"
    return FailOutcome(JobStatus.DEAD, None)


def fail(
    session: Session,
    job_id: int,
    worker_id: str,
    error: BaseException | str,
    *,
    retryable: bool,
    cause: FailureCause = FailureCause.OTHER,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> FailOutcome | None:
    """The run failed: retry later with back-off, or dead-letter it. None if the lease was lost.

    `cause` (core.backfill.failures.classify) is stored with the failure: the dead letter groups by it.
    """
    job = _owned(session, job_id, worker_id)
    if job is None:
        return None
    return _settle_failure(
        session, job, _describe(error), retryable=retryable, cause=cause, now=now or clock.now(), rng=rng
    )


def release(
    session: Session,
    job_id: int,
    worker_id: str,
    *,
    run_after: datetime | None = None,
    why: WaitReason,
    now: datetime | None = None,
) -> Job | None:
    """Give the job back unfinished without counting the attempt (shutdown, rate limit, no budget).

    Returns the job (its `stage` still says how far the run got, for the money), or None
    when it is no longer ours.
    """
    job = _owned(session, job_id, worker_id)
    if job is None:
        return None
    now = now or clock.now()
    job.status = JobStatus.QUEUED
    job.attempts = max(0, job.attempts - 1)
    job.lease_owner = job.lease_expires_at = None
    job.run_after = max(run_after or now, now)
    job.wait_reason = why
    return job


def defer(session: Session, job: Job, *, until: datetime, why: WaitReason, detail: str | None = None) -> None:
    """Leave a locked candidate queued until `until` (it cannot run now for an outside reason)."""
    job.run_after = until
    job.wait_reason = why
    if detail:
        item = session.get(MediaItem, job.media_item_id)
        if item is not None and item.status == ItemStatus.QUEUED:
            item.status_detail = detail


# ---------------------------------------------------------------------------------------------
# Reaper
# ---------------------------------------------------------------------------------------------


class Reaped(NamedTuple):
    job_id: int
    item_id: int
    stage: str | None
    outcome: JobStatus  # RETRY | DEAD


def reap_expired(session: Session, *, now: datetime | None = None, rng: random.Random | None = None) -> list[Reaped]:
    """Take back running jobs whose lease expired (their worker died, hung or lost the network).

    The lost run counts as an attempt. The job keeps the last stage it reported, which
    budget.reap_reservations reads to close its reservation (core.backfill.money).
    """
    now = now or clock.now()
    jobs = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
        .with_for_update(skip_locked=True)
    ).all()
    reaped = []
    for job in jobs:
        owner, stage = job.lease_owner, job.stage
        message = f"worker {owner} stopped answering during '{stage}' (lease expired)"
        outcome = _settle_failure(session, job, message, retryable=True, cause=FailureCause.WORKER_LOST, now=now, rng=rng)
        job.stage = stage  # keep the stage the lost run reached
        log.warning("reaped job %s (item %s): %s → %s", job.id, job.media_item_id, message, outcome.status)
        reaped.append(Reaped(job.id, job.media_item_id, stage, outcome.status))
    return reaped


# ---------------------------------------------------------------------------------------------
# Dead letter and admin actions
# ---------------------------------------------------------------------------------------------


def _dead_jobs(session: Session, job_id: int | None, item_id: int | None) -> list[Job]:
    if job_id is None and item_id is None:
        raise ValueError("name a job or an item")
    stmt = select(Job).where(Job.status == JobStatus.DEAD).with_for_update()
    stmt = stmt.where(Job.id == job_id) if job_id is not None else stmt.where(Job.media_item_id == item_id)
    return list(session.scalars(stmt))


def retry_dead(session: Session, job_id: int | None = None, *, item_id: int | None = None) -> int:
    """Give dead-lettered jobs a fresh set of attempts now; returns how many were revived."""
    revived = 0
    now = clock.now()
    for job in _dead_jobs(session, job_id, item_id):
        live = session.scalar(
            select(Job.id).where(
                Job.media_item_id == job.media_item_id, Job.kind == job.kind, Job.status.in_(LIVE_STATUSES)
            )
        )
        if live is not None:
            job.status = JobStatus.CANCELLED  # a newer job already does the work
            continue
        job.status, job.attempts, job.run_after, job.finished_at = JobStatus.QUEUED, 0, now, None
        job.stage = job.wait_reason = None
        item = session.get(MediaItem, job.media_item_id)
        if item is not None and item.status == ItemStatus.DEAD:
            item.status, item.status_detail = ItemStatus.QUEUED, f"retrying after: {job.last_error}"
        revived += 1
    return revived


def discard_dead(session: Session, job_id: int | None = None, *, item_id: int | None = None) -> int:
    """Give up on dead-lettered jobs for good: the item is marked skipped so syncs leave it alone."""
    discarded = 0
    for job in _dead_jobs(session, job_id, item_id):
        job.status = JobStatus.CANCELLED
        item = session.get(MediaItem, job.media_item_id)
        if item is not None and item.status == ItemStatus.DEAD:
            item.status, item.skipped = ItemStatus.SKIPPED, True
        discarded += 1
    return discarded


def cancel_live(session: Session, item_id: int) -> int:
    """Cancel an item's queued (not running) jobs, e.g. when the admin skips it."""
    result = session.execute(
        update(Job)
        .where(Job.media_item_id == item_id, Job.status.in_(CLAIMABLE_STATUSES))
        .values(status=JobStatus.CANCELLED, wait_reason=None, finished_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult at runtime


def skip_item(session: Session, item_id: int, skipped: bool = True) -> None:
    """A skipped item is never queued (queued jobs are cancelled); un-skipping queues it again."""
    item = session.get(MediaItem, item_id)
    if item is None:
        raise LookupError(f"no media item {item_id}")
    item.skipped = skipped
    if skipped:
        cancel_live(session, item_id)
        if item.status not in SEARCHABLE:
            item.status = ItemStatus.SKIPPED
    else:
        if item.status == ItemStatus.SKIPPED:
            item.status = ItemStatus.QUEUED
        session.flush()
        if item.status not in SEARCHABLE:
            enqueue(session, item_id)


def dead_letter(session: Session, *, limit: int = 200) -> list[Job]:
    """Dead jobs, newest first, for the admin's dead-letter view (last_error, attempts)."""
    return list(
        session.scalars(select(Job).where(Job.status == JobStatus.DEAD).order_by(Job.finished_at.desc().nullslast()).limit(limit))
    )


def counts(session: Session) -> dict[str, int]:
    """Jobs per status (the dashboards' queue summary)."""
    return dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).tuples().all())


def wake(session: Session, *, why: WaitReason, now: datetime | None = None) -> int:
    """Make jobs that wait for `why` (e.g. WaitReason.BUDGET) claimable now: budget raised, worker arrived."""
    now = now or clock.now()
    # SKIP LOCKED: a job a claimer holds right now is being looked at anyway, and waiting for
    # it here (while the caller may hold the budget lock the claimer wants) could deadlock.
    waiting = (
        select(Job.id)
        .where(and_(Job.status.in_(CLAIMABLE_STATUSES), Job.wait_reason == why, Job.run_after > now))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = session.execute(update(Job).where(Job.id.in_(waiting)).values(run_after=now))
    return result.rowcount  # type: ignore[attr-defined]  # a CursorResult at runtime
