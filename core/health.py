"""Is the machine working? Scheduler heartbeat, queue depth, workers, storage against its limit.

Everything here is a handful of small aggregate queries, cheap enough to run every few
seconds from the health page's live fragment.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.backfill import breaker
from core.backfill.storage import database_bytes, dir_bytes
from core.config import Settings
from core.models import ITEM_STATUSES, JOB_STATUSES, Job, MediaItem, Worker
from core.states import CLAIMABLE_JOBS, JobStatus


class Heartbeat(NamedTuple):
    alive: bool
    worker_id: str | None
    hostname: str | None
    last_at: datetime | None
    age_s: float | None  # None: no scheduler has ever reported

    @property
    def label(self) -> str:
        if self.last_at is None:
            return "never seen"
        return "alive" if self.alive else "stale"


class WorkerRow(NamedTuple):
    id: str
    role: str
    hostname: str
    pid: int
    alive: bool
    age_s: float
    started_at: datetime
    heartbeat_at: datetime
    current_job_id: int | None
    capabilities: dict


class Storage(NamedTuple):
    database_bytes: int
    media_bytes: int
    limit_bytes: int

    @property
    def used_bytes(self) -> int:
        return self.database_bytes + self.media_bytes

    @property
    def fraction(self) -> float:
        return self.used_bytes / self.limit_bytes if self.limit_bytes else 0.0


class QueueDepth(NamedTuple):
    jobs: dict[str, int]  # every job status, zero when none
    items: dict[str, int]  # every item status, zero when none
    oldest_queued_at: datetime | None  # how long the head of the queue has waited

    @property
    def waiting(self) -> int:
        return self.jobs.get(JobStatus.QUEUED, 0) + self.jobs.get(JobStatus.RETRY, 0)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def scheduler_heartbeat(session: Session, settings: Settings, *, now: datetime | None = None) -> Heartbeat:
    """The freshest scheduler heartbeat; stale when older than `scheduler_stale_after_s`."""
    now = now or _now()
    row = session.execute(
        select(Worker.id, Worker.hostname, Worker.heartbeat_at)
        .where(Worker.role == "scheduler")
        .order_by(Worker.heartbeat_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return Heartbeat(False, None, None, None, None)
    age = max(0.0, (now - row.heartbeat_at).total_seconds())
    return Heartbeat(age <= settings.scheduler_stale_after_s, row.id, row.hostname, row.heartbeat_at, age)


def paused_sources(session: Session) -> list[breaker.SourceStatus]:
    """Sources whose circuit breaker is open: the archive is degraded even while every process is alive."""
    return breaker.paused_sources(session)


def queue_depth(session: Session) -> QueueDepth:
    jobs = {s: 0 for s in JOB_STATUSES}
    jobs.update({s: int(n) for s, n in session.execute(select(Job.status, func.count()).group_by(Job.status))})
    items = {s: 0 for s in ITEM_STATUSES}
    items.update(
        {s: int(n) for s, n in session.execute(select(MediaItem.status, func.count()).group_by(MediaItem.status))}
    )
    oldest = session.scalar(select(func.min(Job.created_at)).where(Job.status.in_(CLAIMABLE_JOBS)))
    return QueueDepth(jobs, items, oldest)


def workers(session: Session, settings: Settings, *, now: datetime | None = None) -> list[WorkerRow]:
    """Every registered process, freshest first, with whether its heartbeat is recent."""
    now = now or _now()
    rows = session.scalars(select(Worker).order_by(Worker.role, Worker.heartbeat_at.desc())).all()
    out = []
    for w in rows:
        age = max(0.0, (now - w.heartbeat_at).total_seconds())
        out.append(
            WorkerRow(
                w.id, w.role, w.hostname, w.pid, age <= settings.scheduler_stale_after_s, age,
                w.started_at, w.heartbeat_at, w.current_job_id, dict(w.capabilities or {}),
            )
        )
    return out


def storage(session: Session, settings: Settings, *, include_media: bool = True) -> Storage:
    """Database size (pg_database_size) plus downloaded media, against `storage_limit_gb`."""
    db_bytes = database_bytes(session)
    media = dir_bytes(settings.media_dir) if include_media and settings.media_dir.exists() else 0
    return Storage(db_bytes, media, int(settings.storage_limit_gb * 1024**3))


def largest_tables(session: Session, limit: int = 6) -> list[tuple[str, int]]:
    """The biggest tables with their indexes and TOAST, for "where does the space go"."""
    rows = session.execute(
        text(
            "SELECT c.relname, pg_total_relation_size(c.oid) AS bytes FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = current_schema() "
            "ORDER BY bytes DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [(name, int(size)) for name, size in rows]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} d ago"
