"""Result cache, dropped whenever the searchable content changes.

Every search first reads a small fingerprint of the content (one cheap query): a counter in
app_settings that `invalidate()` bumps, plus the newest chunk id (re-indexing writes new ids) and a
digest of the media items' visibility and index times. Any process that indexes,
deletes, hides or publishes an item therefore changes the key that every other process
(UI, CLI, scheduler) looks results up under — even one that forgot to call
`invalidate()` — and a result cached while an item was visible is never served after
the admin hides it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, Hashable, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

T = TypeVar("T")

VERSION_KEY = "search_cache"
MAX_ENTRIES = 512

_FINGERPRINT_SQL = text(
    """
    SELECT
      (SELECT coalesce((value->>'version')::bigint, 0) FROM app_settings WHERE key = :key),
      (SELECT coalesce(max(id), 0) FROM chunks),
      (SELECT count(*) || ':' || coalesce(sum(CASE WHEN visible THEN id ELSE -id END), 0)
              || ':' || coalesce(extract(epoch FROM max(indexed_at)), 0)
              || ':' || coalesce(extract(epoch FROM max(updated_at)), 0)
       FROM media_items)
    """
)


def content_version(session: Session) -> tuple:
    """A value that changes whenever the searchable content (or its visibility) changes."""
    row = session.execute(_FINGERPRINT_SQL, {"key": VERSION_KEY}).one()
    return tuple(row)


def invalidate(session: Session | None = None) -> None:
    """Drop cached results everywhere: call after indexing, deleting or re-publishing items.

    With a session the bump joins the caller's transaction (it becomes visible to other
    processes when the caller commits); without one it commits on its own.
    """
    _results.clear()
    sql = text(
        "INSERT INTO app_settings (key, value) VALUES (:key, '{\"version\": 1}'::jsonb) "
        "ON CONFLICT (key) DO UPDATE SET value = jsonb_build_object('version', "
        "coalesce((app_settings.value->>'version')::bigint, 0) + 1), updated_at = now()"
    )
    if session is not None:
        session.execute(sql, {"key": VERSION_KEY})
        return
    from core.db import session_scope

    with session_scope() as own:
        own.execute(sql, {"key": VERSION_KEY})


class _LRU:
    def __init__(self, size: int):
        self._size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_results = _LRU(MAX_ENTRIES)


def get(key: Hashable) -> Any | None:
    return _results.get(key)


def put(key: Hashable, value: Any) -> None:
    _results.put(key, value)


def clear() -> None:
    """Forget this process's cached results (tests, benchmarks)."""
    _results.clear()


# ---------------------------------------------------------------------------------------------
# Values derived from the content, one per content version
# ---------------------------------------------------------------------------------------------


class PerVersion(Generic[T]):
    """`build(session)` once per content version and process; a new version replaces the old value.

    For what every query reads but only a content change (or an admin edit, which bumps the
    version) can change: the vocabulary, keyword statistics, the admin's search settings. Two
    threads meeting a new version may both build it; the value is the same, so that is
    cheaper than holding a lock across a database read.
    """

    def __init__(self, build: Callable[[Session], T]):
        self._build = build
        self._lock = threading.Lock()
        self._version: Hashable | None = None
        self._value: T | None = None
        self._filled = False

    def __call__(self, session: Session, version: Hashable) -> T:
        with self._lock:
            if self._filled and self._version == version:
                return self._value  # type: ignore[return-value]
        value = self._build(session)
        with self._lock:
            self._version, self._value, self._filled = version, value, True
        return value

    def clear(self) -> None:
        with self._lock:
            self._version, self._value, self._filled = None, None, False


def per_version(build: Callable[[Session], T]) -> PerVersion[T]:
    """Wrap `build(session)` as `fn(session, version)`, built once per content version."""
    return PerVersion(build)
