"""Viewer search on read replicas: reads go to SEARCH_DATABASE_URL, writes to the primary.

`SEARCH_DATABASE_URL` names one replica or several (comma-separated). Each read takes the next
one in turn; a replica that cannot be reached (or cancels a query, as a hot standby does on a
replay conflict) is skipped for a few seconds and the read runs on the next, then on the
primary. With no replicas configured every read runs on the primary, as before.

Two rules make replicas safe to cache from:

* **One snapshot per read.** A read runs in one REPEATABLE READ, READ ONLY transaction, and a
  cached value is stored under the content version (core/search/cache.py) read *inside that
  same snapshot*. A lagging replica therefore computes and caches only under its own, older
  version, which fresher readers never look up: it can never store its stale result under a
  newer content version, nor be handed a newer version's key for its old content.
* **Writes never ride on a read.** The query log and thumbs votes are written to the primary
  by `writes`; when the primary is briefly away they wait in memory and are retried in
  order with back-off (`writes.pending()` counts them; a write still pending when the process
  exits is logged with its count, never dropped silently).
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from core.config import get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

DOWN_S = 5.0  # a replica that failed is tried last for this long
CONNECT_TIMEOUT_S = 3  # a replica on a host that vanished must not hold a search for libpq's default (forever)
PRIMARY = "primary"


class SearchUnavailable(RuntimeError):
    """Neither a replica nor the primary answered; the message says so in words."""


def _connection_lost(exc: BaseException) -> bool:
    """Errors that mean "this server cannot serve the read now", not "the read is wrong"."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass
class _Target:
    name: str  # "replica 1", …, or PRIMARY (never a URL: it holds the password)
    engine_factory: Callable[[], Engine]
    down_until: float = 0.0
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine


def _replica_engine(url: str) -> Callable[[], Engine]:
    def build() -> Engine:
        from core.db import make_engine

        u = make_url(url)
        if "connect_timeout" not in u.query:
            u = u.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
        # Never migrated: a replica is read-only and follows the primary's schema.
        return make_engine(u.render_as_string(hide_password=False))

    return build


def _primary_engine() -> Engine:
    from core.db import get_engine

    return get_engine()


class ReadRouter:
    """Replicas in turn, failover to the next and then to the primary."""

    def __init__(self, replica_urls: list[str]):
        self.replicas = [_Target(f"replica {i + 1}", _replica_engine(u)) for i, u in enumerate(replica_urls)]
        self.primary = _Target(PRIMARY, _primary_engine)
        self._turn = 0
        self._lock = threading.Lock()
        self.last_served_by: str | None = None  # for the admin's health page and the tests

    def _order(self) -> list[_Target]:
        with self._lock:
            n = len(self.replicas)
            start = self._turn % n if n else 0
            self._turn += 1
        now = time.monotonic()
        turn = self.replicas[start:] + self.replicas[:start]
        # Healthy replicas first, in turn; then the primary; replicas that just failed last
        # (they may be back, and with the primary away they are all there is).
        return [t for t in turn if t.down_until <= now] + [self.primary] + [t for t in turn if t.down_until > now]

    def read(self, fn: Callable[[Session], T]) -> T:
        """fn(session) on the first server that answers, in one read-only snapshot."""
        errors: list[str] = []
        for target in self._order():
            try:
                with _snapshot(target.engine) as session:
                    value = fn(session)
            except Exception as exc:
                if not _connection_lost(exc):
                    raise
                target.down_until = time.monotonic() + DOWN_S
                errors.append(f"{target.name}: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}")
                log.warning("search read failed on %s, trying the next server: %s", target.name, errors[-1])
                continue
            target.down_until = 0.0
            self.last_served_by = target.name
            return value
        raise SearchUnavailable("Search is briefly unavailable: no database server answered (" + "; ".join(errors) + ").")

    def dispose(self) -> None:
        for t in self.replicas:
            if t._engine is not None:
                t._engine.dispose()
                t._engine = None


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Session]:
    # REPEATABLE READ: the content version and everything read after it see one snapshot
    # (a hot standby allows it; SERIALIZABLE it does not). READ ONLY: a write on this path is a
    # bug, and on the primary it must fail exactly as it would on a replica.
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        conn.execute(text("SET TRANSACTION READ ONLY"))
        session = Session(bind=conn, join_transaction_mode="rollback_only")
        try:
            yield session
        finally:
            session.close()
            conn.rollback()


_router_lock = threading.Lock()
_router: ReadRouter | None = None


def router() -> ReadRouter:
    global _router
    with _router_lock:
        if _router is None:
            _router = ReadRouter(get_settings().search_database_url)
        return _router


def reset() -> None:
    """Forget the replicas (tests and settings changes); pending writes stay queued."""
    global _router
    with _router_lock:
        if _router is not None:
            _router.dispose()
        _router = None


def read(fn: Callable[[Session], T]) -> T:
    return router().read(fn)


# ---------------------------------------------------------------------------------------------
# Values cached per content version — the version read in the value's own snapshot
# ---------------------------------------------------------------------------------------------

_cached: dict[Hashable, tuple[tuple, float, object]] = {}
_cached_lock = threading.Lock()
MAX_CACHED = 1024


def read_cached(key: Hashable, fn: Callable[[Session], T], *, ttl_s: float = 60.0) -> T:
    """fn(session), cached under (key, the content version of the same snapshot) for ttl_s."""
    from core.search import cache

    def run(session: Session) -> T:
        version = cache.content_version(session)
        with _cached_lock:
            hit = _cached.get(key)
        if hit is not None and hit[0] == version and time.monotonic() - hit[1] < ttl_s:
            return hit[2]  # type: ignore[return-value]
        value = fn(session)
        with _cached_lock:
            _cached[key] = (version, time.monotonic(), value)
            if len(_cached) > MAX_CACHED:
                _cached.pop(next(iter(_cached)))
        return value

    return read(run)


# ---------------------------------------------------------------------------------------------
# What the viewer page and the CLI call
# ---------------------------------------------------------------------------------------------


def content_version() -> tuple:
    from core.search import cache

    return read(cache.content_version)


def search(query: str, *, log: bool = True, **kwargs):
    """core.search.search() on a replica; the query log is written to the primary (`writes`).

    The response's own result cache is keyed by the version read in the same snapshot
    (engine.search reads it first thing), so what a replica caches is its own version's.
    `response.content_version` is that version, for callers that cache derived values (answers).
    """
    from core.search import cache
    from core.search import search as run_search

    include_hidden = bool(kwargs.get("include_hidden"))

    def run(session: Session):
        version = cache.content_version(session)
        response = run_search(session, query, log=False, **kwargs)
        response.content_version = version
        return response

    response = read(run)
    if log and not include_hidden:
        log_search(response)
    return response


def log_search(response) -> None:
    """Queue the query-log row of one viewer search for the primary."""
    cleaned = response.prepared.cleaned
    groups, total_ms = len(response.groups), response.total_ms
    verdict = response.verdict.verdict.value if response.verdict else None

    def write(session: Session) -> None:
        from core.search.suggest import log_query

        log_query(session, cleaned, groups, total_ms, verdict=verdict)

    writes.submit("query log", write)


def record_vote(query: str, chunk_id: int, vote: int) -> None:
    """A thumbs vote, for the primary (queued when it is briefly away). Bad votes raise now."""
    if vote not in (1, -1):
        raise ValueError("vote must be +1 or -1")

    def write(session: Session) -> None:
        from core.search.feedback import record_feedback

        try:
            record_feedback(session, query, chunk_id, vote)
        except ValueError as exc:  # the moment was re-indexed away meanwhile: nothing to vote on
            log.info("vote dropped: %s", exc)

    writes.submit("feedback", write)


def trending(*, limit: int = 8, include_hidden: bool = False):
    from core.search.trending import trending as run

    return read_cached(("trending", limit, include_hidden), lambda s: run(s, limit=limit, include_hidden=include_hidden))


def popular_queries(*, limit: int = 40, include_hidden: bool = False):
    from core.search.suggest import popular_queries as run

    return read_cached(("popular", limit, include_hidden),
                       lambda s: run(s, limit=limit, include_hidden=include_hidden))


def autocomplete(prefix: str, *, limit: int = 8, include_hidden: bool = False):
    from core.search.suggest import autocomplete as run

    return read_cached(("autocomplete", prefix, limit, include_hidden),
                       lambda s: run(s, prefix, limit=limit, include_hidden=include_hidden))


# ---------------------------------------------------------------------------------------------
# Writes for the primary, retried while it is away
# ---------------------------------------------------------------------------------------------


@dataclass
class _Write:
    what: str  # "query log" | "feedback": for the log line, never the user's text
    fn: Callable[[Session], None]
    tries: int = 0


class PrimaryWrites:
    """Writes run at once on the primary; while it is away they queue (in order) and a
    background thread retries them with back-off until they land.

    In memory only: a process that exits with writes still queued logs how many it could
    not deliver. The queue holds MAX_PENDING; past that the oldest are dropped and counted in
    `dropped` (logged each time), so a long outage cannot grow the UI process without bound.
    """

    MAX_PENDING = 10_000
    RETRY_FIRST_S = 0.5
    RETRY_MAX_S = 30.0

    def __init__(self) -> None:
        self._queue: deque[_Write] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.delivered = 0

    def submit(self, what: str, fn: Callable[[Session], None]) -> None:
        write = _Write(what, fn)
        with self._cond:
            queued_before = bool(self._queue)
        if not queued_before and self._try(write):  # order: never overtake queued writes
            return
        with self._cond:
            self._queue.append(write)
            while len(self._queue) > self.MAX_PENDING:
                lost = self._queue.popleft()
                self.dropped += 1
                log.error("primary away too long: dropped a queued %s write (%d dropped so far)", lost.what, self.dropped)
            self._ensure_thread()
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued write landed (True) or timeout_s passed (False)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._cond.notify()
            while self._queue and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return not self._queue

    def _try(self, write: _Write) -> bool:
        from core.db import session_scope

        write.tries += 1
        try:
            with session_scope() as session:
                write.fn(session)
        except Exception as exc:
            if not _connection_lost(exc):
                log.exception("a %s write failed (not retried)", write.what)
                return True  # a bad write is a bug to see in the log, not to retry forever
            if write.tries == 1:
                log.warning("primary unavailable, %s write queued for retry", write.what)
            return False
        self.delivered += 1
        return True

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="primary-writes", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self.RETRY_FIRST_S
        while True:
            with self._cond:
                if not self._queue:
                    return
                head = self._queue[0]
            if self._try(head):
                with self._cond:
                    if self._queue and self._queue[0] is head:
                        self._queue.popleft()
                    self._cond.notify_all()
                delay = self.RETRY_FIRST_S
                continue
            with self._cond:
                self._cond.wait(delay)
            delay = min(delay * 2, self.RETRY_MAX_S)

    def _at_exit(self) -> None:
        if self.pending() and not self.flush(5.0):
            log.error("exiting with %d query-log/feedback writes the primary never received", self.pending())


writes = PrimaryWrites()
atexit.register(writes._at_exit)
