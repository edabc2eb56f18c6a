"""Money: prices, estimates, reservations, the ledger and the daily/monthly caps.

The rule that keeps the caps: a job reserves its estimated cost *before* it runs, inside
the transaction that claims it, and a reservation is only granted while

    spent in the period (ledger) + all open reservations + this estimate ≤ the period's cap

for both the day and the month. Every reserve, settle and release first locks the
app_settings row `budget` (SELECT … FOR UPDATE), so those checks run one at a time across
all workers on all machines and concurrent workers can never overspend together. A job's
actual cost is written as ledger rows when it ends (settle), in the same locked way.

Periods are calendar days and months in the budget's timezone (UTC by default) and are
computed from core.clock, so spending pauses at a cap and resumes at the next midnight or
the first of the next month by itself.

app_settings keys owned here (stored through core.settings_store):
- `budget`: {"daily_usd", "monthly_usd", "timezone"} (missing values = Settings defaults:
  $10/day, $200/month, UTC). The safety limits ($15/$300 by default) are the hard ceiling
  and come from configuration only (DAILY_SAFETY_LIMIT_USD, MONTHLY_SAFETY_LIMIT_USD): no
  stored value, page or call can raise them, and the budgets can never be set above them.
- `prices`: {"<ledger engine>": {"per_audio_minute": $, "per_million_tokens": $, "per_hour": $}}
  over DEFAULT_PRICES. Ledger names come from core.engines ("openai" → "openai-transcribe",
  "openai-embed", "gpu", and any name a plug-in reports); "captions" and "local" cost nothing.

A reservation's life, claim to ledger: core.backfill.dispatch reserves it (`reserve`, with the
route's paid parts), and when the run ends — done, failed, released, or lost and reaped —
`close` books it: the actual usage, the whole reservation, or nothing, by one rule
(`may_have_paid`) from the outcome, the stage reached and the parts reserved for.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from core import clock, settings_store
from core.backfill.queue import wake
from core.config import get_settings
from core.engines import ENGINES, EngineKind, ledger_name
from core.engines import engine as engine_info
from core.models import Job, LedgerEntry, MediaItem, Reservation
from core.settings_store import BudgetValue, PriceValue
from core.states import JobStatus, Outcome, Stage, WaitReason
from core.transcribe.base import TranscriptionError

log = logging.getLogger(__name__)

# The seed's estimate ($144 for 1,200 × 20 min) is whisper-1's $0.006 per audio minute.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "openai-transcribe": {"per_audio_minute": 0.006},
    "openai-embed": {"per_million_tokens": 0.02},  # text-embedding-3-small
    "gpu": {"per_hour": 0.0},  # set it to what a rented GPU machine costs an hour
    "chat": {"per_million_tokens": 0.60},  # cited answers (core/search/answers.py), gpt-4o-mini class
    "captions": {},
    "local": {},
}
# How fast a GPU transcribes (× real time): converts audio length into GPU hours for estimates.
GPU_REALTIME_FACTOR = 30.0
# Estimates err high so actual ≤ reserved; an item of unknown length is assumed this long.
ESTIMATE_MARGIN = 1.10
UNKNOWN_DURATION_S = 3 * 3600.0
# Spoken English ≈ 150 words/min ≈ 200 tokens/min; chunks overlap (10 s of 45 s) ≈ ×1.3.
EMBED_TOKENS_PER_AUDIO_MINUTE = 200 * 1.3
# A reservation blocked only by other jobs' open reservations is tried again this soon.
RESERVATION_RETRY_S = 60.0
# Reservation states (reservations.status).
RES_OPEN, RES_SETTLED, RES_RELEASED = "open", "settled", "released"
# A paid call outside the queue (a viewer's cited answer) holds its reservation without a job:
# the reaper leaves it alone this long (the call's timeout with retries), then books it as spent.
CALL_RESERVATION_TIMEOUT_S = 600.0


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetLimits:
    daily_usd: float
    monthly_usd: float
    daily_safety_usd: float
    monthly_safety_usd: float
    timezone: str = "UTC"

    @property
    def daily_cap(self) -> float:
        return min(self.daily_usd, self.daily_safety_usd)

    @property
    def monthly_cap(self) -> float:
        return min(self.monthly_usd, self.monthly_safety_usd)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def validate_limits(limits: BudgetLimits) -> None:
    """Budgets ≥ 0, daily ≤ monthly, each budget ≤ its (configured) safety limit; else ValueError."""
    problems = []
    values = (limits.daily_usd, limits.monthly_usd, limits.daily_safety_usd, limits.monthly_safety_usd)
    if any(not math.isfinite(v) for v in values):
        problems.append("amounts must be finite numbers")
    if any(v < 0 for v in values):
        problems.append("amounts must not be negative")
    if limits.daily_usd > limits.monthly_usd:
        problems.append(f"the daily budget (${limits.daily_usd:,.2f}) exceeds the monthly budget (${limits.monthly_usd:,.2f})")
    if limits.daily_usd > limits.daily_safety_usd:
        problems.append(f"the daily budget (${limits.daily_usd:,.2f}) exceeds the daily safety limit "
                        f"(${limits.daily_safety_usd:,.2f}, set in configuration: DAILY_SAFETY_LIMIT_USD)")
    if limits.monthly_usd > limits.monthly_safety_usd:
        problems.append(f"the monthly budget (${limits.monthly_usd:,.2f}) exceeds the monthly safety limit "
                        f"(${limits.monthly_safety_usd:,.2f}, set in configuration: MONTHLY_SAFETY_LIMIT_USD)")
    try:
        ZoneInfo(limits.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"unknown timezone {limits.timezone!r}")
    if problems:
        raise ValueError("; ".join(problems))


def _default_limits() -> BudgetLimits:
    s = get_settings()
    return BudgetLimits(
        s.daily_budget_usd, s.monthly_budget_usd, s.daily_safety_limit_usd, s.monthly_safety_limit_usd, s.budget_timezone
    )


def _limits_from(raw: BudgetValue) -> BudgetLimits:
    """The stored budgets under the configured safety limits (a stored safety value, from before
    they became configuration only, is ignored)."""
    d = _default_limits()
    return BudgetLimits(
        float(raw.get("daily_usd", d.daily_usd)),
        float(raw.get("monthly_usd", d.monthly_usd)),
        d.daily_safety_usd,
        d.monthly_safety_usd,
        str(raw.get("timezone", d.timezone)),
    )


def get_budget(session: Session) -> BudgetLimits:
    return _limits_from(settings_store.BUDGET.load(session))


def set_budget(session: Session, daily: float, monthly: float, *, timezone: str | None = None) -> BudgetLimits:
    """Store new budgets (validated; ValueError names the broken rule and nothing changes).

    The safety limits are not a parameter: they come from configuration only. Raising a
    budget wakes jobs that were waiting for money.
    """
    current = _limits_from(settings_store.BUDGET.load(session, lock=True))
    limits = BudgetLimits(
        float(daily), float(monthly), current.daily_safety_usd, current.monthly_safety_usd, timezone or current.timezone
    )
    validate_limits(limits)
    settings_store.BUDGET.save(
        session, {"daily_usd": limits.daily_usd, "monthly_usd": limits.monthly_usd, "timezone": limits.timezone}
    )
    wake(session, why=WaitReason.BUDGET)
    return limits


# ---------------------------------------------------------------------------------------------
# Prices and estimates
# ---------------------------------------------------------------------------------------------


class Price(NamedTuple):
    per_audio_minute: float = 0.0
    per_million_tokens: float = 0.0
    per_hour: float = 0.0

    @property
    def free(self) -> bool:
        return not (self.per_audio_minute or self.per_million_tokens or self.per_hour)


def get_prices(session: Session) -> dict[str, Price]:
    table: dict[str, dict[str, float]] = {name: dict(p) for name, p in DEFAULT_PRICES.items()}
    for name, override in settings_store.load_prices(session).items():
        # A PriceValue holds only floats, but mypy reads any TypedDict as Mapping[str, object].
        table[name] = {**table.get(name, {}), **cast(dict[str, float], override)}
    return {name: Price(**{k: float(v) for k, v in p.items() if k in Price._fields}) for name, p in table.items()}


def set_price(
    session: Session,
    engine: str,
    *,
    per_audio_minute: float | None = None,
    per_million_tokens: float | None = None,
    per_hour: float | None = None,
) -> Price:
    """Change one ledger engine's price (e.g. when OpenAI changes theirs)."""
    raw = settings_store.load_prices(session, lock=True)
    entry: PriceValue = raw.get(engine, {})
    for key, value in (("per_audio_minute", per_audio_minute), ("per_million_tokens", per_million_tokens), ("per_hour", per_hour)):
        if value is not None:
            if value < 0:
                raise ValueError(f"{key} must not be negative")
            entry[key] = float(value)  # type: ignore[literal-required]
    raw[engine] = entry
    settings_store.save_prices(session, raw)
    return get_prices(session)[engine]


def is_paid(prices: dict[str, Price], engine: str) -> bool:
    price = prices.get(ledger_name(engine))
    return price is not None and price.per_audio_minute > 0


def cost(prices: dict[str, Price], engine: str, *, audio_minutes: float = 0.0, tokens: int = 0, hours: float = 0.0) -> float:
    """Dollars for one usage record; an engine without a price costs nothing (logged once)."""
    price = prices.get(ledger_name(engine))
    if price is None:
        log.warning("no price for engine %r: counted as free", engine)
        return 0.0
    return price.per_audio_minute * audio_minutes + price.per_million_tokens * tokens / 1e6 + price.per_hour * hours


class Estimate(NamedTuple):
    usd: float
    engine: str  # the ledger engine the money is mostly for (reservation label)
    parts: tuple[tuple[str, float], ...]


def estimate(
    prices: dict[str, Price],
    *,
    duration_s: float | None,
    transcriber: str | None,
    embedding_paid: str | None = None,
    gpu: bool = False,
) -> Estimate:
    """What one item may cost: paid transcription + paid embeddings + GPU time, with a margin.

    `transcriber` is the paid transcription engine the route may use (None = free only);
    `embedding_paid` the ledger engine of a paid embedding provider (e.g. "openai-embed").
    """
    minutes = (duration_s or UNKNOWN_DURATION_S) / 60.0
    parts: list[tuple[str, float]] = []
    if transcriber:
        parts.append((ledger_name(transcriber), cost(prices, transcriber, audio_minutes=minutes)))
    if embedding_paid:
        parts.append((embedding_paid, cost(prices, embedding_paid, tokens=int(minutes * EMBED_TOKENS_PER_AUDIO_MINUTE))))
    if gpu and prices.get("gpu", Price()).per_hour:
        parts.append(("gpu", cost(prices, "gpu", hours=minutes / 60.0 / GPU_REALTIME_FACTOR)))
    parts = [(name, usd) for name, usd in parts if usd > 0]
    total = round(sum(usd for _, usd in parts) * ESTIMATE_MARGIN, 6)
    main = max(parts, key=lambda p: p[1])[0] if parts else "free"
    return Estimate(total, main, tuple(parts))


# ---------------------------------------------------------------------------------------------
# Periods and spend
# ---------------------------------------------------------------------------------------------


class Periods(NamedTuple):
    day_start: datetime
    day_end: datetime
    month_start: datetime
    month_end: datetime


def periods(now: datetime, tz: ZoneInfo) -> Periods:
    """The budget day and month containing `now`, as aware datetimes (DST-safe: built from dates)."""
    local = now.astimezone(tz)
    today = local.date()
    day_start = datetime.combine(today, datetime.min.time(), tz)
    day_end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tz)
    month_first = today.replace(day=1)
    next_first = (month_first + timedelta(days=32)).replace(day=1)
    return Periods(
        day_start,
        day_end,
        datetime.combine(month_first, datetime.min.time(), tz),
        datetime.combine(next_first, datetime.min.time(), tz),
    )


def _money(value: Any) -> float:
    return float(value or Decimal(0))


class BudgetState(NamedTuple):
    """Spend against the caps right now: what the dashboards show."""

    now: datetime
    limits: BudgetLimits
    spent_today: float
    spent_month: float
    reserved: float  # open reservations (jobs running now)
    periods: Periods

    @property
    def left_today(self) -> float:
        return max(0.0, self.limits.daily_cap - self.spent_today - self.reserved)

    @property
    def left_month(self) -> float:
        return max(0.0, self.limits.monthly_cap - self.spent_month - self.reserved)

    @property
    def left(self) -> float:
        return min(self.left_today, self.left_month)

    @property
    def paid_paused_until(self) -> datetime | None:
        """When paid work resumes by itself, if a cap is spent now (ignoring open reservations)."""
        if self.spent_month >= self.limits.monthly_cap - 1e-9:
            return self.periods.month_end
        if self.spent_today >= self.limits.daily_cap - 1e-9:
            return self.periods.day_end
        return None


def state(session: Session, now: datetime | None = None, *, limits: BudgetLimits | None = None) -> BudgetState:
    now = now or clock.now()
    limits = limits or get_budget(session)
    p = periods(now, limits.tz)
    # One statement, one snapshot: ledger and reservations are read at the same instant.
    row = session.execute(
        select(
            select(func.coalesce(func.sum(LedgerEntry.usd), 0))
            .where(LedgerEntry.at >= p.day_start, LedgerEntry.at < p.day_end)
            .scalar_subquery(),
            select(func.coalesce(func.sum(LedgerEntry.usd), 0))
            .where(LedgerEntry.at >= p.month_start, LedgerEntry.at < p.month_end)
            .scalar_subquery(),
            select(func.coalesce(func.sum(Reservation.usd), 0)).where(Reservation.status == RES_OPEN).scalar_subquery(),
        )
    ).one()
    return BudgetState(now, limits, _money(row[0]), _money(row[1]), _money(row[2]), p)


# ---------------------------------------------------------------------------------------------
# Reserve, settle, release
# ---------------------------------------------------------------------------------------------


class ReserveResult(NamedTuple):
    ok: bool
    reservation_id: int | None
    usd: float
    reason: str  # why not (empty when ok)
    retry_at: datetime | None  # when trying again may succeed; None = never at the current caps


def lock(session: Session) -> BudgetLimits:
    """Take the budget lock for this transaction (the `budget` app_settings row) and return the limits."""
    return _limits_from(settings_store.BUDGET.load(session, lock=True))


def reserve(
    session: Session,
    *,
    usd: float,
    engine: str,
    job_id: int | None,
    item_id: int | None,
    now: datetime | None = None,
    parts: Sequence[str] = (),
) -> ReserveResult:
    """Set `usd` aside for a job if both caps allow it; call inside the claiming transaction.

    `parts` are the ledger names the money is for (the estimate's parts): `close` reads
    them to decide what a run that ended early may have spent. The lock is held until that
    transaction commits, so the check and the new open reservation become visible to the
    next reserver together.
    """
    now = now or clock.now()
    limits = lock(session)
    st = state(session, now, limits=limits)
    p = st.periods
    for label, cap, spent, period_end in (
        ("monthly", limits.monthly_cap, st.spent_month, p.month_end),
        ("daily", limits.daily_cap, st.spent_today, p.day_end),
    ):
        if spent + st.reserved + usd <= cap + 1e-9:
            continue
        if usd > cap + 1e-9:
            return ReserveResult(False, None, usd, f"estimate ${usd:.2f} exceeds the {label} cap ${cap:.2f}", None)
        if spent + usd > cap + 1e-9:  # spent money only comes back with the next period
            when = period_end.astimezone(limits.tz)
            reason = f"{label} budget spent (${spent:.2f} of ${cap:.2f}); paid work resumes {when:%Y-%m-%d %H:%M %Z}"
            return ReserveResult(False, None, usd, reason, period_end)
        reason = f"{label} budget held by running jobs (${st.reserved:.2f} reserved, ${spent:.2f} of ${cap:.2f} spent)"
        return ReserveResult(False, None, usd, reason, now + timedelta(seconds=RESERVATION_RETRY_S))
    res = Reservation(
        job_id=job_id, media_item_id=item_id, engine=engine, usd=round(usd, 6), status=RES_OPEN, created_at=now,
        parts=list(parts or (engine,)),
    )
    session.add(res)
    session.flush()
    return ReserveResult(True, res.id, usd, "", None)


def reserve_call(session: Session, engine: str, *, tokens: int, item_id: int | None = None,
                 now: datetime | None = None) -> ReserveResult:
    """Reserve a paid call made outside the queue (e.g. a chat answer): its estimated tokens at
    the engine's price, with the estimate margin, under the same lock and caps as the jobs.

    Commit it before the call, settle() it with the actual tokens after, release() it when the
    call fails. A free engine reserves nothing (ok, no reservation id).
    """
    usd = round(cost(get_prices(session), engine, tokens=tokens) * ESTIMATE_MARGIN, 6)
    if usd <= 0:
        return ReserveResult(True, None, 0.0, "", None)
    return reserve(session, usd=usd, engine=ledger_name(engine), job_id=None, item_id=item_id, now=now)


class UsageLike(NamedTuple):
    engine: str
    audio_minutes: float = 0.0
    tokens: int = 0
    hours: float = 0.0


def _as_usage(u: Any) -> UsageLike:
    return UsageLike(u.engine, float(getattr(u, "audio_minutes", 0) or 0), int(getattr(u, "tokens", 0) or 0), float(getattr(u, "hours", 0) or 0))


def settle(
    session: Session,
    reservation_id: int | None,
    usage: Iterable[Any],
    *,
    job_id: int | None,
    item_id: int | None,
    now: datetime | None = None,
    note: str | None = None,
) -> float:
    """Write the actual cost as ledger rows and close the reservation; returns the dollars.

    Usage records have .engine (ledger name or transcription engine), .audio_minutes,
    .tokens and optionally .hours (the pipeline's Usage fits). Free usage writes no row.
    A reservation already closed (the reaper charged it while this worker was presumed
    dead) is not charged twice.
    """
    now = now or clock.now()
    lock(session)
    prices = get_prices(session)
    res = session.get(Reservation, reservation_id, with_for_update=True) if reservation_id else None
    if res is not None and res.status == RES_SETTLED:
        log.warning("reservation %s was already charged by the reaper; not charging again", reservation_id)
        return 0.0
    total = 0.0
    for u in map(_as_usage, usage):
        usd = round(cost(prices, u.engine, audio_minutes=u.audio_minutes, tokens=u.tokens, hours=u.hours), 6)
        if usd <= 0:
            continue
        session.add(
            LedgerEntry(
                at=now,
                media_item_id=item_id,
                job_id=job_id,
                reservation_id=res.id if res is not None else None,
                engine=ledger_name(u.engine),
                audio_minutes=u.audio_minutes,
                tokens=u.tokens,
                usd=usd,
                note=note,
            )
        )
        total += usd
    if res is not None:
        if res.status == RES_OPEN:
            res.status, res.closed_at = RES_SETTLED, now
        if total > float(res.usd) + 1e-6:
            log.warning("job %s cost $%.4f, more than its reservation $%.4f", job_id, total, float(res.usd))
    session.flush()
    if total and item_id is not None:
        sync_item_cost(session, item_id)
    return total


def sync_item_cost(session: Session, item_id: int) -> None:
    """An item's cost_usd is the sum of its ledger rows, estimates of lost runs included.

    Recomputed (not incremented) after every ledger row written for the item, so the
    library's figure and the ledger can never drift apart, whichever path booked the money.
    """
    session.flush()
    spent = select(func.coalesce(func.sum(LedgerEntry.usd), 0)).where(LedgerEntry.media_item_id == item_id).scalar_subquery()
    session.execute(
        update(MediaItem).where(MediaItem.id == item_id).values(cost_usd=spent).execution_options(synchronize_session="fetch")
    )


def release(session: Session, reservation_id: int | None, *, now: datetime | None = None) -> None:
    """Give an unused reservation back (the job failed before any paid call, or ran free)."""
    if not reservation_id:
        return
    lock(session)
    res = session.get(Reservation, reservation_id, with_for_update=True)
    if res is not None and res.status == RES_OPEN:
        res.status, res.closed_at = RES_RELEASED, now or clock.now()


def charge_reserved(session: Session, reservation_id: int, *, note: str, now: datetime | None = None) -> float:
    """Book the whole reservation as spent: a run died after it may have called a paid API.

    Erring high keeps the cap true: the money may really have been spent and we cannot ask.
    """
    lock(session)
    res = session.get(Reservation, reservation_id, with_for_update=True)
    if res is None or res.status != RES_OPEN:
        return 0.0
    now = now or clock.now()
    session.add(
        LedgerEntry(
            at=now, media_item_id=res.media_item_id, job_id=res.job_id, reservation_id=res.id,
            engine=res.engine, usd=res.usd, note=note,
        )
    )
    res.status, res.closed_at = RES_SETTLED, now
    if res.media_item_id is not None:
        sync_item_cost(session, res.media_item_id)
    return float(res.usd)


def record_spend(
    session: Session, engine: str, *, audio_minutes: float = 0.0, tokens: int = 0, note: str | None = None,
    item_id: int | None = None,
) -> float:
    """Book a paid call that had no reservation; counts against the caps (paid calls should
    reserve first: reserve_call)."""
    return settle(session, None, [UsageLike(engine, audio_minutes, tokens)], job_id=None, item_id=item_id, note=note)


# ---------------------------------------------------------------------------------------------
# Closing a reservation: the one rule for what a run spent
# ---------------------------------------------------------------------------------------------

# Stages before any paid call: captions are free, fetching downloads the audio.
FREE_STAGES = frozenset({None, Stage.CLAIMED, Stage.CAPTIONS, Stage.FETCHING})
# Ledger engines whose calls are reserved by reserve_call (no job, no stages): the cited answers' chat.
CALL_ENGINES = frozenset(e.ledger for e in ENGINES.values() if e.kind is EngineKind.CHAT)


def may_have_paid(stage: str | None, parts: Sequence[str], error: BaseException | None) -> bool:
    """Whether a run that ended at `stage` without reporting its usage may have been billed.

    `parts` are the ledger names its reservation was for; `error` what ended it (None when
    its worker vanished, or it was released at shutdown mid-call).
    """
    kinds = {engine_info(p).kind for p in parts}
    if EngineKind.CHAT in kinds:
        # A call outside the queue has no stages: the call is the paid part. One that raised was
        # not billed; one cut off or lost with its process may have been.
        return not isinstance(error, Exception)
    if stage in FREE_STAGES:
        return False
    transcriber = EngineKind.TRANSCRIBE in kinds
    if stage == Stage.TRANSCRIBING:
        # A request the API refused or failed is not billed; a run killed or broken mid-way may have been.
        return transcriber and not isinstance(error, TranscriptionError)
    if stage == Stage.EMBEDDING:
        # The transcript was bought; an embedding call that raised was not billed, one cut off may have been.
        return transcriber or (EngineKind.EMBED in kinds and not isinstance(error, Exception))
    return True  # indexing or later: everything before it was paid for


def close(
    session: Session,
    reservation_id: int | None,
    outcome: Outcome,
    *,
    stage: str | None,
    usage: Iterable[Any] | None = None,
    error: BaseException | None = None,
    job_id: int | None = None,
    item_id: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> float:
    """Book a run's money when it ends, whatever the way; returns the dollars booked.

    A run that reports its usage (it succeeded, or its error carries `.usage`) is settled at
    that actual cost. Otherwise the reservation is charged in full when the stage reached may
    have cost money (erring high keeps the caps true: we cannot ask the API what it billed),
    else released. Every path calls this: the worker on success, failure and release, and
    the reaper for runs whose worker vanished.
    """
    if usage is not None:
        why = note or ("failed run" if outcome is not Outcome.SUCCEEDED else None)
        return settle(session, reservation_id, usage, job_id=job_id, item_id=item_id, now=now, note=why)
    if not reservation_id:
        return 0.0
    res = session.get(Reservation, reservation_id)
    if res is None or res.status != RES_OPEN:
        return 0.0
    parts = list(res.parts or [res.engine])
    if may_have_paid(stage, parts, error):
        verb = {Outcome.LOST: "run lost", Outcome.RELEASED: "run released"}.get(outcome, "run failed")
        return charge_reserved(session, reservation_id, note=note or f"estimated: {verb} during '{stage}'", now=now)
    release(session, reservation_id, now=now)
    return 0.0


def reap_reservations(session: Session, *, now: datetime | None = None) -> list[tuple[int, str]]:
    """Close open reservations whose job is no longer running (its worker died; the reaper took it back).

    Each is closed as a lost run at the stage its job last reported (`close`). A reservation
    of an older claim of a job that runs again is charged. Returns
    (reservation id, "charged"|"released").
    """
    now = now or clock.now()
    rows = session.execute(
        select(Reservation.id, Job.status, Job.stage, Reservation.created_at < Job.started_at, Reservation.job_id,
               Reservation.created_at)
        .outerjoin(Job, Job.id == Reservation.job_id)
        .where(
            Reservation.status == RES_OPEN,
            # Not running any more, or running again under a newer claim than this reservation's.
            or_(Job.status.is_distinct_from(JobStatus.RUNNING), Reservation.created_at < Job.started_at),
        )
    ).all()
    done = []
    for res_id, status, stage, older_run, job_id, created in rows:
        if job_id is None and session.get_one(Reservation, res_id).engine in CALL_ENGINES:  # the row was just read
            # A call outside the queue (reserve_call): in flight until its timeout, then lost
            # after it may have been paid for. (A job deleted since keeps its old rule below.)
            if created > now - timedelta(seconds=CALL_RESERVATION_TIMEOUT_S):
                continue
            close(session, res_id, Outcome.LOST, stage=None, now=now, note="estimated: answer call lost")
        else:
            # The run this reservation paid for is over; a stage from a newer run says nothing about it.
            known_stage = Stage.INDEXING if status == JobStatus.RUNNING or older_run else stage
            close(session, res_id, Outcome.LOST, stage=known_stage, now=now, note=f"estimated: run lost during '{stage}'")
        closed = session.get(Reservation, res_id)
        done.append((res_id, "charged" if closed is not None and closed.status == RES_SETTLED else "released"))
    return done


def roll_over(session: Session, *, now: datetime | None = None) -> int:
    """At a new day or month: wake jobs that wait for budget if money is available again."""
    st = state(session, now)
    if st.paid_paused_until is not None:
        return 0
    return wake(session, why=WaitReason.BUDGET, now=st.now)


# ---------------------------------------------------------------------------------------------
# Reports for the dashboards
# ---------------------------------------------------------------------------------------------


class DaySpend(NamedTuple):
    day: date
    usd: float


def spend_by_day(session: Session, days: int = 30, *, now: datetime | None = None) -> list[DaySpend]:
    """Dollars per budget day for the last `days` days (oldest first, zero days included)."""
    now = now or clock.now()
    limits = get_budget(session)
    tz = limits.tz
    start = periods(now, tz).day_start - timedelta(days=days - 1)
    local_day = func.date(func.timezone(limits.timezone, LedgerEntry.at))
    rows: dict[date, Decimal | None] = dict(
        session.execute(
            select(local_day, func.sum(LedgerEntry.usd)).where(LedgerEntry.at >= start).group_by(local_day)
        ).tuples().all()
    )
    first = start.astimezone(tz).date()
    return [DaySpend(first + timedelta(days=i), _money(rows.get(first + timedelta(days=i)))) for i in range(days)]


class EngineSpend(NamedTuple):
    engine: str
    audio_minutes: float
    tokens: int
    usd: float
    calls: int


def spend_by_engine(session: Session, *, since: datetime | None = None) -> list[EngineSpend]:
    """Ledger totals per engine (all time, or since a time), costliest first."""
    stmt = select(
        LedgerEntry.engine,
        func.coalesce(func.sum(LedgerEntry.audio_minutes), 0),
        func.coalesce(func.sum(LedgerEntry.tokens), 0),
        func.coalesce(func.sum(LedgerEntry.usd), 0),
        func.count(),
    ).group_by(LedgerEntry.engine)
    if since is not None:
        stmt = stmt.where(LedgerEntry.at >= since)
    rows = [EngineSpend(e, float(m), int(t), _money(u), int(c)) for e, m, t, u, c in session.execute(stmt)]
    return sorted(rows, key=lambda r: -r.usd)


def total_spent(session: Session, *, since: datetime | None = None, item_ids: Sequence[int] | None = None) -> float:
    stmt = select(func.coalesce(func.sum(LedgerEntry.usd), 0))
    if since is not None:
        stmt = stmt.where(LedgerEntry.at >= since)
    if item_ids is not None:
        stmt = stmt.where(LedgerEntry.media_item_id.in_(item_ids))
    return _money(session.scalar(stmt))
