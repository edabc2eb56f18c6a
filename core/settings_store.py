"""The admin's knobs in `app_settings`: one JSON row per key, each read and written in its typed shape.

Every module that keeps state in app_settings reads and writes it here, so the keys, their
shapes and the row lock live in one place. Domain rules (what a valid budget is, how a
control is validated) stay with their owners (core.backfill.budget, core.backfill.queue,
core.search.fusion …); this module only knows how each value is stored.

`lock=True` holds the key's row (SELECT … FOR UPDATE) until the caller commits: the `budget`
row is the lock that serialises reservations across workers, and read-modify-write of the
other keys uses it so two admins or workers never lose each other's change.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypedDict, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core import clock
from core.models import AppSetting


class Key(StrEnum):
    """Every app_settings key the code uses, with its owner."""

    CONTROLS = "backfill"  # core.backfill.queue: pause, concurrency, attempts, routing, …
    BUDGET = "budget"  # core.backfill.budget: caps and safety limits (and the reservation lock)
    PRICES = "prices"  # core.backfill.budget: price overrides per ledger name
    PRIORITIES = "priorities"  # core.backfill.priorities: strategy order, topics
    BACKFILL_STOPPED = "backfill_stopped"  # core.backfill.storage: storage limit reached
    BACKFILL_RUN = "backfill_run"  # core.backfill.progress: the current run
    PROGRESS = "progress"  # core.backfill.progress: the scheduler's snapshot
    SYNC_REQUEST = "sync_requested"  # core.admin_actions: the admin's "sync now"
    FUSION = "search"  # core.search.fusion: ranking knobs
    SYNONYMS = "synonyms"  # core.search.preprocess: synonym groups
    CACHE_VERSION = "search_cache"  # core.search.cache: bumped on every content change


# ---------------------------------------------------------------------------------------------
# Raw JSON by key
# ---------------------------------------------------------------------------------------------


def read_json(session: Session, key: Key | str, default: Any = None, *, lock: bool = False) -> Any:
    """The JSON value of one key; `lock=True` holds its row until commit (creating it empty first)."""
    stmt = select(AppSetting.value).where(AppSetting.key == str(key))
    if lock:
        # The row must exist to be locked: create it empty first (a no-op when it exists).
        session.execute(pg_insert(AppSetting).values(key=str(key), value={}).on_conflict_do_nothing())
        stmt = stmt.with_for_update()
    value = session.scalar(stmt)
    return default if value in (None, {}) and default is not None else value


def write_json(session: Session, key: Key | str, value: Any) -> None:
    stmt = pg_insert(AppSetting).values(key=str(key), value=value, updated_at=clock.now())
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[AppSetting.key], set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}
        )
    )


def _dict(session: Session, key: Key, lock: bool) -> dict[str, Any]:
    value = read_json(session, key, {}, lock=lock)
    return dict(value) if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
# Typed slots: keys whose value is one JSON object of a known shape
# ---------------------------------------------------------------------------------------------

ShapeT = TypeVar("ShapeT", bound=Mapping[str, Any])


@dataclass(frozen=True)
class Slot(Generic[ShapeT]):
    """One key's JSON object, read as its typed shape ({} when never written)."""

    key: Key

    def load(self, session: Session, *, lock: bool = False) -> ShapeT:
        return cast(ShapeT, _dict(session, self.key, lock))

    def save(self, session: Session, value: ShapeT) -> None:
        write_json(session, self.key, dict(value))


# The admin's changes to core.backfill.queue.Controls, by field name: that NamedTuple is the one
# typed record (with the types queue validates against); what is stored is only its overrides.
ControlOverrides = dict[str, Any]


class BudgetValue(TypedDict, total=False):
    daily_usd: float
    monthly_usd: float
    timezone: str  # (the safety limits are configuration, never stored)


class PrioritiesValue(TypedDict, total=False):
    order: list[str]
    topics: list[str]


class StoppedValue(TypedDict, total=False):
    reason: str
    at: str


class RunValue(TypedDict, total=False):
    started_at: str
    label: str


CONTROLS: Slot[ControlOverrides] = Slot(Key.CONTROLS)
BUDGET: Slot[BudgetValue] = Slot(Key.BUDGET)
PRIORITIES: Slot[PrioritiesValue] = Slot(Key.PRIORITIES)
BACKFILL_STOPPED: Slot[StoppedValue] = Slot(Key.BACKFILL_STOPPED)
BACKFILL_RUN: Slot[RunValue] = Slot(Key.BACKFILL_RUN)
# The last progress snapshot (core.backfill.progress.Progress as JSON, plus percent/remaining/at).
PROGRESS: Slot[dict[str, Any]] = Slot(Key.PROGRESS)


# ---------------------------------------------------------------------------------------------
# Keys with a shape of their own
# ---------------------------------------------------------------------------------------------


class PriceValue(TypedDict, total=False):
    per_audio_minute: float
    per_million_tokens: float
    per_hour: float


def load_prices(session: Session, *, lock: bool = False) -> dict[str, PriceValue]:
    """Price overrides by ledger name (the defaults live in core.backfill.budget)."""
    return {name: cast(PriceValue, dict(p)) for name, p in _dict(session, Key.PRICES, lock).items() if isinstance(p, dict)}


def save_prices(session: Session, value: Mapping[str, PriceValue]) -> None:
    write_json(session, Key.PRICES, {name: dict(p) for name, p in value.items()})


class SyncRequest(TypedDict):
    at: str
    by: str
    source_id: int | None


def load_sync_request(session: Session, *, lock: bool = False) -> SyncRequest | None:
    value = _dict(session, Key.SYNC_REQUEST, lock)
    return cast(SyncRequest, value) if value else None


def save_sync_request(session: Session, value: SyncRequest | None) -> None:
    write_json(session, Key.SYNC_REQUEST, dict(value) if value else {})


def load_fusion(session: Session) -> dict[str, Any] | None:
    """The stored ranking knobs (core.search.fusion.FusionConfig fields), None when never saved."""
    value = read_json(session, Key.FUSION)
    return dict(value) if isinstance(value, dict) else None


def save_fusion(session: Session, value: Mapping[str, Any]) -> None:
    write_json(session, Key.FUSION, dict(value))


def load_synonyms(session: Session) -> dict[str, Any] | None:
    """The stored synonym groups ({"mapping": {term: [alternatives]}}), None when never saved."""
    value = read_json(session, Key.SYNONYMS)
    return dict(value) if isinstance(value, dict) else None


def save_synonyms(session: Session, mapping: Mapping[str, list[str]]) -> None:
    write_json(session, Key.SYNONYMS, {"mapping": dict(mapping)})


def load_cache_version(session: Session) -> int:
    """The search cache's counter (core.search.cache bumps it atomically in SQL)."""
    return int(_dict(session, Key.CACHE_VERSION, False).get("version", 0) or 0)
