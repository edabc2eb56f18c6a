"""Realistic demo data for the admin console: the real channel listing, a month of backfill.

`seed_demo` registers the 572 videos of the real @anthonychaffeemd flat listing (read in
place from ../shared/data, never copied) as YouTube items, then replays a month of a
budget-capped backfill over them: about eleven items a day in priority order, captions when
the video has them, the paid API while the day's cap allows, the local model otherwise.
That leaves what a running archive really holds — indexed items with engines, costs and
chunk counts, ledger rows that respect the caps, a few items in review, failed attempts
waiting to retry, dead-lettered jobs with their real-looking last errors, the queue of the
rest, and the scheduler and workers with their heartbeats.

Nothing is transcribed or embedded: items carry chunk *counts*, not chunks, so search
stays empty; ingest a few items for that. Deterministic (seeded random).
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from core import admin_actions, audit, clock
from core.backfill import budget, priorities
from core.catalog import get_or_create_source, register_item
from core.config import PROJECT_ROOT, get_settings
from core.models import AuditEntry, Feedback, Job, LedgerEntry, LoginAttempt, MediaItem, QueryLogEntry, Worker
from core.sources.youtube import parse_flat_entry
from core.states import FailureCause, ItemStatus, JobStatus, Stage

LISTING = PROJECT_ROOT.parent / "shared" / "data" / "youtube" / "anthonychaffeemd_flat_playlist.jsonl"
DEMO_ACTOR = "seed-demo"
DEMO_ADMIN = "admin"  # the demo's history is told as the admin's own actions
DAYS = 30
ITEMS_PER_DAY = (8, 14)  # a CPU box with one GPU helper: this many items a day
CHUNK_STEP_S = 35.0  # 45-second windows overlapping by 10 s (core.chunking)
# Demo budget: a small creator's archive — tight enough that the cap visibly shapes the spend.
DEMO_BUDGET = {"daily": 3.0, "monthly": 80.0}  # under the configured safety limits ($15 / $300 by default)
DEMO_TOPICS = ["insulin", "cholesterol", "autoimmune", "plant toxins", "cancer", "ketosis"]

# (the error as raised, its cause as the worker classifies it: core.backfill.failures)
DEAD_ERRORS = (
    ("PrivateItem: This video is private", FailureCause.PRIVATE),
    ("MembersOnly: Join this channel to get access to members-only content like this video", FailureCause.PRIVATE),
    ("Unavailable: Video unavailable. This video has been removed by the uploader", FailureCause.REMOVED),
    ("AgeRestricted: Sign in to confirm your age. This video may be inappropriate for some users", FailureCause.PRIVATE),
    ("NoSpeech: the transcript is empty (no speech found)", FailureCause.NO_SPEECH),
    ("TranscriptionError: audio decode failed (ffmpeg exit 1): Invalid data found when processing input",
     FailureCause.ENGINE_FAILED),
    ("SourceUnreachable: YouTube says the request failed on the network: Failed to resolve 'www.youtube.com' "
     "([Errno -2] Name or service not known)", FailureCause.SOURCE_UNREACHABLE),
)
RETRY_ERRORS = (
    ("SourceUnreachable: Unable to download webpage: The read operation timed out", FailureCause.SOURCE_UNREACHABLE),
    ("APITimeoutError: Request timed out (openai transcription, 600 s)", FailureCause.ENGINE_FAILED),
)
REVIEW_REASONS = (
    "low speech density: 18 words/min (expected at least 60)",
    "many repeated lines (possible hallucination loop in the transcript)",
    "transcript much shorter than the audio (covers 41% of it)",
)
FEEDBACK_QUERIES = (
    ("what does dr chaffee say about cholesterol", 1),
    ("plant toxins oxalates", 1),
    ("insulin resistance", 1),
    ("autoimmune disease carnivore", -1),
    ("how much fat per day", 1),
    ("ketosis and cancer", -1),
)


class DemoError(RuntimeError):
    """The demo cannot be seeded here (database not empty, listing missing)."""


class DemoSummary(NamedTuple):
    items: int
    by_status: dict[str, int]
    ledger_rows: int
    spent_usd: float
    jobs: int
    workers: int


def database_is_empty(session: Session) -> bool:
    return not any(
        session.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {table})"))
        for table in ("media_items", "ledger", "jobs", "audit_log")
    )


def erase_all(session: Session) -> None:
    """Empty every app table (the --force of seed-demo): the demo starts from a clean slate."""
    session.execute(
        text(
            "TRUNCATE feedback, query_log, audit_log, login_attempts, ledger, reservations, jobs, workers, "
            "rate_buckets, app_settings, chunks, transcript_segments, media_items, sources RESTART IDENTITY CASCADE"
        )
    )


def _load_listing(path: Path) -> list[dict]:
    if not path.is_file():
        raise DemoError(f"the channel listing is missing: {path} (the demo reads ../shared/data in place)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def seed_demo(session: Session, *, force: bool = False, listing: Path = LISTING, seed: int = 42) -> DemoSummary:
    """Fill an empty database with the demo; `force` erases existing data first. The caller commits."""
    if not database_is_empty(session):
        if not force:
            raise DemoError("the database already holds data; use --force to erase it and seed the demo")
        erase_all(session)
    rng = random.Random(seed)
    now = clock.now()
    settings = get_settings()
    entries = _load_listing(listing)

    start = now - timedelta(days=DAYS, hours=3)
    _signed_in(session, start)
    with _dated(session, start + timedelta(minutes=4)):
        admin_actions.set_budget(session, DEMO_ADMIN, **DEMO_BUDGET)
        admin_actions.set_controls(session, DEMO_ADMIN, paid_routing="always")
    with _dated(session, start + timedelta(minutes=9)):
        admin_actions.set_topics(session, DEMO_ADMIN, DEMO_TOPICS)

    source = get_or_create_source(session, "youtube", "Anthony Chaffee MD", settings.channel_url)
    source.last_synced_at = now - timedelta(minutes=42)
    items: list[MediaItem] = []
    for position, entry in enumerate(entries):
        info = parse_flat_entry(entry)
        if info is None:
            continue
        item = register_item(session, source, info)
        # The channel's RSS feed dates only the newest 15 uploads; the rest stay "date unknown".
        if position < 15:
            item.published_at = now - timedelta(days=2 + position * 3, hours=rng.randint(0, 12))
        item.created_at = now - timedelta(days=DAYS + 2)
        items.append(item)
    session.flush()

    scorer = priorities.Scorer.load(session, now)
    order = sorted(items, key=lambda it: -scorer.score(it))
    prices = budget.get_prices(session)
    cap = budget.get_budget(session).daily_cap

    # Obvious non-talks (trailers, clips under two minutes) were skipped by the admin.
    skipped = [it for it in order if (it.duration_s or 0) < 120 or "trailer" in it.title.lower()][:8]
    with _dated(session, start + timedelta(days=1, minutes=17)):
        for it in skipped:
            admin_actions.skip_item(session, DEMO_ADMIN, it.id)
            it.status_detail = "skipped by the admin (not a talk)"
    todo = [it for it in order if not it.skipped]

    jobs: list[Job] = []
    ledger: list[LedgerEntry] = []
    cursor = 0
    first_day = (now - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(DAYS):
        start_of_day = first_day + timedelta(days=day)
        spent_today = 0.0
        share = min(1.0, (now - start_of_day).total_seconds() / 86400)  # today has only had its first hours
        for _ in range(round(rng.randint(*ITEMS_PER_DAY) * share)):
            if cursor >= len(todo) - 20:  # keep a real backlog
                break
            it = todo[cursor]
            cursor += 1
            # Today only up to half an hour ago: every simulated run has finished.
            latest = min(23 * 60 + 30, int((now - start_of_day).total_seconds() // 60) - 30)
            if latest < 20:
                break
            at = start_of_day + timedelta(minutes=rng.randint(20, latest))
            fate = rng.random()
            job = Job(media_item_id=it.id, kind="ingest", priority=scorer.score(it), created_at=it.created_at,
                      started_at=at - timedelta(minutes=rng.randint(3, 25)), max_attempts=3)
            if fate < 0.03:  # dead-lettered after its retries (or at once for a permanent error)
                error, job.failure_cause = rng.choice(DEAD_ERRORS)
                permanent = not error.startswith(("TranscriptionError", "NoSpeech", "SourceUnreachable"))
                job.status, job.attempts, job.finished_at, job.last_error = JobStatus.DEAD, 1 if permanent else 3, at, error
                it.status = ItemStatus.DEAD
                it.status_detail = ("permanent error: " if permanent else "gave up after 3 attempts: ") + error
                jobs.append(job)
                continue
            minutes = (it.duration_s or 3600) / 60
            cost = budget.cost(prices, "openai", audio_minutes=minutes)
            roll = rng.random()
            if roll < 0.4:
                engine, reason = "captions", "youtube has its own transcript (youtube:en (uploaded))"
            elif roll < 0.95 and spent_today + cost <= cap:
                engine, reason = "openai", "openai engine (no captions; within today's budget)"
            else:
                engine, reason = "local", "local engine (no captions; paid engine not allowed: daily budget spent)" \
                    if spent_today + cost > cap else "local engine (no captions)"
            job.status, job.attempts, job.finished_at, job.stage = JobStatus.DONE, 1 + (rng.random() < 0.06), at, Stage.DONE
            it.status = ItemStatus.REVIEW if rng.random() < 0.035 else ItemStatus.INDEXED
            it.status_detail = rng.choice(REVIEW_REASONS) if it.status == ItemStatus.REVIEW else None
            it.engine, it.route_reason, it.indexed_at = engine, reason, at
            it.chunk_count = max(1, int((it.duration_s or 600) / CHUNK_STEP_S))
            # The pipeline learns the upload date from the video's own metadata while ingesting.
            if it.published_at is None:
                it.published_at = now - timedelta(days=60 + cursor * 4 + rng.randint(0, 3))
            jobs.append(job)
            if engine == "openai":
                spent_today += cost
                it.cost_usd = Decimal(str(round(cost, 6)))
                ledger.append(LedgerEntry(at=at, media_item_id=it.id, engine="openai-transcribe",
                                          audio_minutes=round(minutes, 2), usd=round(cost, 6),
                                          note="whisper-1"))
    session.add_all(jobs)
    session.flush()
    for row in ledger:  # link each ledger row to its job now that jobs have ids
        row.job_id = next((j.id for j in jobs if j.media_item_id == row.media_item_id), None)
    session.add_all(ledger)

    rest = todo[cursor:]
    # A maintenance pause mid-month, a mistyped password, and two items pinned this morning.
    _signed_in(session, now - timedelta(days=12, hours=1))
    with _dated(session, now - timedelta(days=12)):
        admin_actions.set_paused(session, DEMO_ADMIN, True, "checking transcript quality of the local model")
    with _dated(session, now - timedelta(days=12) + timedelta(hours=2, minutes=25)):
        admin_actions.set_paused(session, DEMO_ADMIN, False)
    _signed_in(session, now - timedelta(hours=3, minutes=10), failures=1)
    with _dated(session, now - timedelta(hours=3)):
        for it in rest[:2]:
            admin_actions.pin_item(session, DEMO_ADMIN, it.id)
    scorer = priorities.Scorer.load(session, now)
    _seed_live_queue(session, rest, scorer, now, rng)
    _seed_workers(session, now)
    _seed_feedback(session, [it for it in todo[:cursor] if it.status == ItemStatus.INDEXED], now, rng)
    session.flush()
    for it in items:
        it.updated_at = it.indexed_at or (now - timedelta(hours=rng.randint(1, 48)))
    session.flush()
    result = summary(session)
    audit.record(session, DEMO_ACTOR, "demo.seed", "database", None,
                 {"items": result.items, "ledger_rows": result.ledger_rows, "listing": listing.name})
    return result


@contextmanager
def _dated(session: Session, at: datetime) -> Iterator[None]:
    """Audit rows written inside the block get `at` as their time: the demo's history happened then."""
    session.flush()
    last = session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0)))
    yield
    session.flush()
    session.execute(update(AuditEntry).where(AuditEntry.id > last).values(at=at))


def _signed_in(session: Session, at: datetime, *, failures: int = 0) -> None:
    for i in range(failures):
        session.add(LoginAttempt(at=at - timedelta(seconds=40 * (failures - i)), username=DEMO_ADMIN, success=False))
    session.add(LoginAttempt(at=at, username=DEMO_ADMIN, success=True))
    with _dated(session, at):
        audit.record(session, DEMO_ADMIN, "auth.sign_in", "admin console", None, {"method": "password"})


def _seed_live_queue(session: Session, rest: list[MediaItem], scorer: priorities.Scorer, now: datetime, rng: random.Random) -> None:
    """The items not reached yet: two in flight, a few failed attempts waiting to retry, the rest queued."""
    for i, it in enumerate(rest):
        job = Job(media_item_id=it.id, kind="ingest", priority=scorer.score(it), created_at=it.created_at,
                  run_after=now - timedelta(hours=1), max_attempts=3)
        if i < 2:
            stage = Stage.FETCHING if i == 0 else Stage.TRANSCRIBING
            job.status, job.attempts, job.stage = JobStatus.RUNNING, 1, stage
            job.started_at = now - timedelta(minutes=4 + 9 * i)
            job.heartbeat_at = now - timedelta(seconds=8)
            job.lease_expires_at = now + timedelta(minutes=2)
            job.lease_owner = "gpu-box:4117:demo" if i else "archive-1:2231:demo"
            it.status = ItemStatus(stage.value)  # the item shows the stage its job is in
        elif i < 6:
            error, job.failure_cause = rng.choice(RETRY_ERRORS)
            job.status, job.attempts, job.last_error = JobStatus.RETRY, 1 + (i % 2), error
            job.started_at = now - timedelta(days=rng.randint(0, 6), hours=rng.randint(1, 20))
            job.run_after = now + timedelta(minutes=10 * i)
            it.status = "failed"
            it.status_detail = f"retry {job.attempts + 1} of 3 after {job.run_after:%Y-%m-%d %H:%M} UTC — {error}"
        else:
            job.status, job.stage = JobStatus.QUEUED, None
        session.add(job)


def _seed_workers(session: Session, now: datetime) -> None:
    session.flush()
    busy = {j.lease_owner: j.id for j in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING))}
    session.add_all(
        [
            Worker(id="archive-1:2231:demo", role="scheduler", hostname="archive-1", pid=2231,
                   capabilities={"device": "cpu", "cores": 2, "engines": ["captions", "local", "openai"],
                                 "whisper_model": "tiny.en", "slots": 1},
                   current_job_id=busy.get("archive-1:2231:demo"),
                   started_at=now - timedelta(days=6, hours=3), heartbeat_at=now - timedelta(seconds=12)),
            Worker(id="gpu-box:4117:demo", role="worker", hostname="gpu-box", pid=4117,
                   capabilities={"device": "cuda", "gpu": "NVIDIA L4 (24 GB)", "engines": ["local"],
                                 "whisper_model": "large-v3", "slots": 2},
                   current_job_id=busy.get("gpu-box:4117:demo"),
                   started_at=now - timedelta(days=2, hours=5), heartbeat_at=now - timedelta(seconds=8)),
            Worker(id="laptop:881:demo", role="worker", hostname="laptop", pid=881,
                   capabilities={"device": "cpu", "cores": 8, "engines": ["captions", "local"],
                                 "whisper_model": "small.en", "slots": 1},
                   started_at=now - timedelta(days=1, hours=9), heartbeat_at=now - timedelta(hours=3, minutes=14)),
        ]
    )


def _seed_feedback(session: Session, indexed: list[MediaItem], now: datetime, rng: random.Random) -> None:
    for i, (query, vote) in enumerate(FEEDBACK_QUERIES):
        for j in range(1 + i % 3):
            it = rng.choice(indexed) if indexed else None
            session.add(Feedback(at=now - timedelta(hours=3 * i + j), query=query,
                                 media_item_id=it.id if it else None, start_s=float(rng.randint(60, 3000)),
                                 vote=vote if j == 0 else rng.choice((1, -1))))
    for i in range(60):
        query, _ = FEEDBACK_QUERIES[i % len(FEEDBACK_QUERIES)]
        session.add(QueryLogEntry(at=now - timedelta(hours=i * 5), query=query, result_count=rng.randint(3, 40), verdict="answered",
                                  latency_ms=rng.uniform(25, 140)))


def summary(session: Session) -> DemoSummary:
    by_status: dict[str, int] = dict(
        session.execute(select(MediaItem.status, func.count()).group_by(MediaItem.status)).tuples().all()
    )
    return DemoSummary(
        items=sum(by_status.values()),
        by_status={k: int(v) for k, v in sorted(by_status.items())},
        ledger_rows=int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0),
        spent_usd=float(session.scalar(select(func.coalesce(func.sum(LedgerEntry.usd), 0))) or 0),
        jobs=int(session.scalar(select(func.count()).select_from(Job)) or 0),
        workers=int(session.scalar(select(func.count()).select_from(Worker)) or 0),
    )
