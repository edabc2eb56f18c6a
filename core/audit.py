"""The audit trail: who did what to which thing, the value before and after, and when.

Every admin action calls `record` inside the same transaction as the change itself, so an
action and its audit row are committed together or not at all. Other modules (budget,
queue, Zoom settings …) call `record` too; the admin console lists the rows.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.models import AuditEntry

# The audit table stores JSON objects; scalars and lists are wrapped under this key.
_SCALAR_KEY = "value"


class AuditRow(NamedTuple):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    before: dict | None
    after: dict | None


def _jsonable(value: Any) -> Any:
    """Decimals, dates, paths and sets as JSON values (the ORM hands us Numeric as Decimal)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _as_object(value: Any) -> dict | None:
    if value is None:
        return None
    value = _jsonable(value)
    if isinstance(value, dict):
        return value
    return {_SCALAR_KEY: value}


def record(
    session: Session,
    actor: str,
    action: str,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    """Add one audit row to the caller's transaction (committed with the change it describes).

    `action` is a short verb phrase ("budget.set", "item.pin"); `target` names the thing
    ("budget", "item 42"); `before`/`after` may be any JSON-able value.
    """
    if not actor or not actor.strip():
        raise ValueError("an audit row needs an actor")
    entry = AuditEntry(
        actor=actor.strip(),
        action=action,
        target=target,
        before=_as_object(before),
        after=_as_object(after),
    )
    session.add(entry)
    session.flush()
    return entry


def _filtered(stmt, *, actor: str | None, action: str | None, search: str | None):
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if search:
        # Bound parameter, wildcards in the user's text escaped: it is matched literally.
        like = "%" + escape_like(search.strip()) + "%"
        stmt = stmt.where(
            or_(
                AuditEntry.target.ilike(like, escape="\\"),
                AuditEntry.action.ilike(like, escape="\\"),
                AuditEntry.actor.ilike(like, escape="\\"),
            )
        )
    return stmt


def list_entries(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[AuditRow]:
    """Newest first, filtered and paged in SQL (the index on `at` keeps it fast)."""
    stmt = select(
        AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action,
        AuditEntry.target, AuditEntry.before, AuditEntry.after,
    )
    stmt = _filtered(stmt, actor=actor, action=action, search=search)
    stmt = stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(max(1, limit)).offset(max(0, offset))
    return [AuditRow(*row) for row in session.execute(stmt)]


def count_entries(
    session: Session, *, actor: str | None = None, action: str | None = None, search: str | None = None
) -> int:
    stmt = _filtered(select(func.count()).select_from(AuditEntry), actor=actor, action=action, search=search)
    return int(session.scalar(stmt) or 0)


def distinct_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def distinct_actors(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)))


def describe_change(before: dict | None, after: dict | None) -> str:
    """A one-line "before → after" for tables: only the keys that changed, compactly."""
    def short(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= 60 else text[:57] + "…"

    if before is None and after is None:
        return ""
    if before is None:
        return "→ " + _flat(after)
    if after is None:
        return _flat(before) + " → (removed)"
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    if not keys:
        return "(no change)"
    if keys == [_SCALAR_KEY]:
        return f"{short(before.get(_SCALAR_KEY))} → {short(after.get(_SCALAR_KEY))}"
    return "; ".join(f"{k}: {short(before.get(k))} → {short(after.get(k))}" for k in keys)


def _flat(obj: dict | None) -> str:
    if not obj:
        return ""
    if list(obj) == [_SCALAR_KEY]:
        return json.dumps(obj[_SCALAR_KEY], ensure_ascii=False, default=str)
    return ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False, default=str)}" for k, v in obj.items())


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so the user's text matches literally (used with escape='\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
