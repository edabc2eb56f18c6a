"""Claiming: the best job this worker can run now, routed, within budget — one transaction.

`claim_next` locks the claim queue, checks pause and max concurrency, walks the best
candidates (SKIP LOCKED), routes each (core.transcribe.router), reserves its estimated
cost (core.backfill.budget, under the budget lock) and marks it running. A job that cannot
run now is deferred with its wait reason, or left untouched when another live worker can
take it. A job of a paused source (core.backfill.breaker) waits, unless it is that source's
one probe. The reservation made here is closed by core.backfill.budget.close when the run ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock, engines, item_extra
from core.backfill import breaker, budget, queue
from core.backfill.workers import live_workers
from core.config import get_settings
from core.engines import EngineInfo
from core.models import Job, MediaItem, Source
from core.states import Stage, WaitReason
from core.transcribe.router import Policy, Route, RouteItem, WorkerCaps, route

# How long a job that cannot run waits before it is looked at again (woken earlier by events).
WAIT_S = {WaitReason.WORKER: 600.0, WaitReason.BUDGET: 3600.0, WaitReason.SOURCE: 300.0}
CANDIDATES_PER_CLAIM = 50


class RateSlot(NamedTuple):
    """A paid API call a run makes: a slot of `key` is taken as `stage` begins."""

    stage: Stage
    key: str  # rate_buckets key (core.engines.EngineInfo.rate_key)


class Claim(NamedTuple):
    job_id: int
    item_id: int
    source_id: int
    attempt: int
    route: Route
    reservation_id: int | None
    reserved_usd: float
    rate_slots: tuple[RateSlot, ...]
    rate_limit: int  # calls per window to each paid API, all workers together (0 = none)
    wait_until: datetime | None  # when a captions-only try finds nothing: retry then


@dataclass(frozen=True)
class _Context:
    """What every candidate of one claim is routed and priced against."""

    me: WorkerCaps
    live: list[WorkerCaps]
    policy: Policy
    prices: dict[str, budget.Price]
    paid: frozenset[str]  # transcription engines that cost money at today's prices
    embedder: EngineInfo | None  # the paid embedding engine, if embeddings cost money
    now: datetime


def _route_item(item: MediaItem, source_kind: str) -> RouteItem:
    return RouteItem(item.id, source_kind, item.published_at, bool(item.pinned), item_extra.read(item).captions)


def _plan(ctx: _Context, job: Job, item: MediaItem, kind: str, refusal: str | None) -> tuple[Route, budget.Estimate]:
    """The route for the item (given any budget refusal) and what it may cost."""
    r = route(
        _route_item(item, kind), me=ctx.me, live=ctx.live, paid_engines=ctx.paid, policy=ctx.policy, now=ctx.now,
        forced=job.engine, budget_refusal=refusal,
    )
    est = budget.estimate(
        ctx.prices, duration_s=item.duration_s, transcriber=r.paid,
        embedding_paid=ctx.embedder.ledger if ctx.embedder else None,
        gpu=ctx.me.gpu and any(e != "captions" and e not in ctx.paid for e in r.engines),
    )
    return r, est


def _reserve(session: Session, est: budget.Estimate, job: Job, item: MediaItem, now: datetime) -> budget.ReserveResult:
    return budget.reserve(
        session, usd=est.usd, engine=est.engine, job_id=job.id, item_id=item.id, now=now,
        parts=[name for name, _ in est.parts],
    )


def _route_within_budget(
    session: Session, ctx: _Context, job: Job, item: MediaItem, kind: str
) -> tuple[Route, budget.ReserveResult | None, budget.ReserveResult | None]:
    """(route to run, its reservation, the refusal if money was short).

    Without money for the paid engine, the route is planned again without it (captions,
    or another worker's whisper); without money even for that (paid embeddings), nothing runs.
    """
    r, est = _plan(ctx, job, item, kind, None)
    if not r.engines or est.usd <= 0:
        return r, None, None
    granted = _reserve(session, est, job, item, ctx.now)
    if granted.ok:
        return r, granted, None
    if r.paid is None:
        return r._replace(engines=(), wait=WaitReason.BUDGET, reason=granted.reason), None, granted
    r, est = _plan(ctx, job, item, kind, granted.reason)
    if not r.engines or est.usd <= 0:
        return r, None, granted
    second = _reserve(session, est, job, item, ctx.now)
    if second.ok:
        return r, second, granted
    return r._replace(engines=(), wait=WaitReason.BUDGET, reason=f"{r.reason}; {second.reason}"), None, second


def _wait_until(r: Route, refused: budget.ReserveResult | None, now: datetime) -> datetime:
    retry_at = refused.retry_at if (refused and r.wait == WaitReason.BUDGET) else None
    return retry_at or now + timedelta(seconds=WAIT_S.get(r.wait or WaitReason.WORKER, 600.0))


def _rate_slots(r: Route, embedder: EngineInfo | None) -> tuple[RateSlot, ...]:
    """The paid calls of this route that share a rate limit (one limit per provider)."""
    calls = ((Stage.TRANSCRIBING, engines.engine(r.paid) if r.paid else None), (Stage.EMBEDDING, embedder))
    return tuple(RateSlot(stage, e.rate_key) for stage, e in calls if e is not None and e.rate_key)


def claim_next(
    session: Session, me: WorkerCaps, *, lease_s: float, now: datetime | None = None, job_id: int | None = None
) -> Claim | None:
    """Claim the best job (or job `job_id`) this worker can run now, with its route and reservation (one transaction)."""
    now = now or clock.now()
    settings = get_settings()
    queue.lock_claims(session)
    controls = queue.get_controls(session)
    if controls.paused or queue.running_count(session, now) >= controls.max_concurrency:
        return None
    paused = breaker.open_sources(session)
    prices = budget.get_prices(session)
    policy = Policy(tuple(settings.transcription_engines), controls.paid_routing, controls.urgent_days)
    embedder = engines.embedding_engine(settings.embedding_provider)
    ctx = _Context(
        me=me,
        live=live_workers(session, now=now),
        policy=policy,
        prices=prices,
        paid=frozenset(e for e in policy.allowed if budget.is_paid(prices, e)),
        embedder=embedder if embedder and not prices.get(embedder.ledger, budget.Price()).free else None,
        now=now,
    )
    kinds: dict[int, str] = dict(session.execute(select(Source.id, Source.kind)).tuples().all())

    for job, item in queue.candidates(session, now=now, limit=CANDIDATES_PER_CLAIM, job_id=job_id):
        if item.source_id in paused:
            # A paused source: its jobs wait for the next probe, and one job at a time is the probe.
            hold = breaker.admit_probe(session, item.source_id, job.id, lease_s=lease_s, now=now)
            if hold is not None:
                queue.defer(session, job, until=hold.until, why=WaitReason.SOURCE, detail=hold.why)
                continue
        r, reservation, refused = _route_within_budget(session, ctx, job, item, kinds.get(item.source_id, "upload"))
        if not r.engines:
            if r.elsewhere:
                continue  # another live worker can do it: leave it claimable for them, untouched
            detail = r.reason if "waiting" in r.reason else f"waiting: {r.reason}"
            queue.defer(session, job, until=_wait_until(r, refused, now), why=r.wait or WaitReason.WORKER, detail=detail)
            continue
        queue.start(session, job, worker_id=me.worker_id, lease_s=lease_s, now=now)
        wait_until = None
        if r.wait and r.elsewhere:
            wait_until = now  # no captions: hand it straight to the worker that can transcribe it
        elif r.wait:
            wait_until = _wait_until(r, refused, now)
        return Claim(
            job.id, item.id, item.source_id, job.attempts, r,
            reservation.reservation_id if reservation else None, reservation.usd if reservation else 0.0,
            _rate_slots(r, ctx.embedder), controls.paid_calls_per_minute, wait_until,
        )
    return None
