"""Who can work: a process's capabilities, the `workers` registry and which workers are alive.

Each worker process registers a row with what it can transcribe with (engines, device,
model) and renews its heartbeat; the router reads the live ones to leave work to a better
placed worker (a GPU), and the reaper drops rows long silent.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core import clock
from core.config import Settings, get_settings
from core.models import Worker as WorkerRow
from core.transcribe.router import WorkerCaps

log = logging.getLogger(__name__)


def detect_capabilities(settings: Settings, engines: Sequence[str] | None = None) -> dict[str, Any]:
    """What this machine can transcribe with: local whisper (+ device, model), the paid API if keyed.

    Engines asked for explicitly are filtered the same way: a worker never advertises an
    engine it cannot run (the API without a key), so the router never sends work to it.
    """
    from core.transcribe.registry import available_engines, unavailable_reason

    wanted = [e for e in (engines if engines is not None else settings.transcription_engines) if e != "captions"]
    for name in wanted:
        if (why := unavailable_reason(name, settings)) is not None:
            log.info("engine %s not offered by this worker: %s", name, why)
    offered = available_engines(wanted, settings)
    device = None
    if "local" in offered:
        try:
            from core.transcribe.local import resolve_device

            device = resolve_device(settings.whisper_device)[0]
        except Exception:  # ctranslate2 missing or refusing: the worker still does captions/API
            device = "cpu"
    return {"engines": list(offered), "device": device, "model": settings.whisper_model or ("tiny.en" if device else None)}


def caps_of(row: WorkerRow) -> WorkerCaps:
    c = row.capabilities or {}
    return WorkerCaps(row.id, tuple(c.get("engines") or ()), c.get("device"), c.get("model"))


def live_workers(session: Session, *, now: datetime | None = None, stale_s: float | None = None) -> list[WorkerCaps]:
    now = now or clock.now()
    stale_s = stale_s if stale_s is not None else max(30.0, 2 * get_settings().lease_s)
    rows = session.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= now - timedelta(seconds=stale_s)))
    return [caps_of(r) for r in rows]


def prune_workers(session: Session, *, now: datetime | None = None, older_than_s: float = 3600.0) -> int:
    cutoff = (now or clock.now()) - timedelta(seconds=older_than_s)
    return int(session.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < cutoff)).rowcount)  # type: ignore[attr-defined]  # a CursorResult at runtime
