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
  by `writes` (core/primary_writes.py); when the primary is briefly away they wait in memory
  and are retried in order with back-off (`writes.pending()` counts them; a write still
  pending when the process exits is logged with its count, never dropped silently).

Everything the viewer page reads goes through here (search, suggestions, trending, the speaker
list, the player and its transcript, the cited answer, this tab's votes), and so does the CLI's
`search`: one path. The functions of core/search take a session; this module hands them one
on a replica.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.config import get_settings
from core.primary_writes import PrimaryWrites
from core.primary_writes import connection_lost as _connection_lost

log = logging.getLogger(__name__)
T = TypeVar("T")

DOWN_S = 5.0  # a replica that failed is tried last for this long
CONNECT_TIMEOUT_S = 3  # a replica on a host that vanished must not hold a search for libpq's default (forever)
PRIMARY = "primary"


class SearchUnavailable(RuntimeError):
    """Neither a replica nor the primary answered; the message says so in words."""


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
        last: BaseException | None = None
        for target in self._order():
            try:
                with _snapshot(target.engine) as session:
                    value = fn(session)
            except Exception as exc:
                if not _connection_lost(exc):
                    raise
                last = exc
                target.down_until = time.monotonic() + DOWN_S
                errors.append(f"{target.name}: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}")
                log.warning("search read failed on %s, trying the next server: %s", target.name, errors[-1])
                continue
            target.down_until = 0.0
            self.last_served_by = target.name
            return value
        # `from last`: the UI's outage handling (core.outage.is_connection_lost) sees a lost connection.
        raise SearchUnavailable(
            "Search is briefly unavailable: no database server answered (" + "; ".join(errors) + ")."
        ) from last

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
    """Forget the replicas and the values cached from them (tests, settings changes); pending writes stay queued."""
    global _router
    with _router_lock:
        if _router is not None:
            _router.dispose()
        _router = None
    from core.search import cache

    cache.clear()


def read(fn: Callable[[Session], T]) -> T:
    return router().read(fn)


# ---------------------------------------------------------------------------------------------
# Values cached per content version — the version read in the value's own snapshot
# ---------------------------------------------------------------------------------------------

# In core.search.cache's LRU beside the search results, so that what clears those (cache.clear(),
# cache.invalidate()) clears these too; the version is part of the key.
_MISS = object()


def _cache_get(key: Hashable, version: tuple | None, ttl_s: float) -> object:
    from core.search import cache

    hit = cache.get(("search_db", key, version)) if version is not None else None
    if hit is not None and time.monotonic() - hit[0] < ttl_s:
        return hit[1]
    return _MISS


def _cache_put(key: Hashable, version: tuple, value: object) -> None:
    from core.search import cache

    cache.put(("search_db", key, version), (time.monotonic(), value))


def read_cached(key: Hashable, fn: Callable[[Session], T], *, ttl_s: float = 60.0) -> T:
    """fn(session), cached under (key, the content version of the same snapshot) for ttl_s."""
    from core.search import cache

    def run(session: Session) -> T:
        version = cache.content_version(session)
        hit = _cache_get(key, version, ttl_s)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        value = fn(session)
        _cache_put(key, version, value)
        return value

    return read(run)


# ---------------------------------------------------------------------------------------------
# Reads: what the viewer page and the CLI call
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


def answer(response, *, embedder=None):
    """The cited answer for a search response (core/search/answers.py), its clips read on a replica.

    Cached per response under the response's own content version, and only when the clips were
    read in a snapshot of that same version: a lagging replica never fills the cache of a newer
    response. The chat model's spend is still reserved on the primary (answers.chat_answer);
    with the primary away that call is skipped and the answer quotes the clips instead."""
    from core.search import answers, cache

    picked = tuple(m.chunk_id for _, m in answers.answering_moments(response))
    key = ("answer", response.prepared.cleaned, picked)
    hit = _cache_get(key, response.content_version, ttl_s=600.0)
    if hit is not _MISS:
        return hit
    version, clips = read(lambda s: (cache.content_version(s), answers.clips_of(s, response)))
    result = answers.answer(None, response, embedder=embedder, clips=clips)
    # An answer that fell back to quoting because the chat call failed is not kept: the next
    # rerun asks again (a rerun with the same answer must not pay the model twice, hence the cache).
    if version == response.content_version and (result.engine == "chat" or not answers.chat_configured()):
        _cache_put(key, version, result)
    return result


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


def box_suggestions(*, include_hidden: bool = False):
    """What the search box offers while typing: answered past questions, then video titles."""
    from core.search.suggest import box_suggestions as run

    return read_cached(("box", include_hidden), lambda s: run(s, include_hidden=include_hidden))


def speakers(*, include_hidden: bool = False) -> list[str]:
    """The speaker filter's names."""
    from core.search.engine import speakers_list

    return read_cached(("speakers", include_hidden), lambda s: speakers_list(s, include_hidden=include_hidden),
                       ttl_s=300.0)


def archive_is_empty(*, include_hidden: bool = False) -> bool:
    from core.search.engine import archive_is_empty as run

    return read_cached(("empty", include_hidden), lambda s: run(s, include_hidden=include_hidden))


def player_item(item_id: int, *, include_hidden: bool = False):
    """The item the player (or "Only in: …") names; None when unknown or hidden from this reader."""
    from core.search.engine import player_item as run

    return read_cached(("item", int(item_id), include_hidden),
                       lambda s: run(s, item_id, include_hidden=include_hidden), ttl_s=300.0)


def player_panel(item_id: int, *, include_hidden: bool = False):
    """The player's item and its whole transcript, in one snapshot (core/search/transcript.panel)."""
    from core.search.transcript import panel

    return read_cached(("panel", int(item_id), include_hidden),
                       lambda s: panel(s, item_id, include_hidden=include_hidden), ttl_s=300.0)


def session_votes(session_key: str | None, query: str):
    """This browser tab's stored votes for a query, as a replica has them (core.search.feedback.TabVotes
    lays the tab's own newer votes over them: a replica may not have replayed them yet)."""
    from core.search.feedback import session_votes as run

    if not session_key:
        return {}
    return read(lambda s: run(s, session_key, query))


# ---------------------------------------------------------------------------------------------
# Writes: for the primary, retried while it is away (core/primary_writes.py)
# ---------------------------------------------------------------------------------------------

writes = PrimaryWrites()
atexit.register(writes.at_exit)


def log_search(response, *, session_key: str | None = None) -> bool:
    """Queue the query-log row of one viewer search for the primary; True when it landed already.

    With the browser tab's `session_key` (the page) the row is stored once per session and
    query, so a retry after an ambiguous failure never counts the search twice."""
    cleaned = response.prepared.cleaned
    groups, total_ms = len(response.groups), response.total_ms
    verdict = response.verdict.verdict.value if response.verdict else None

    def write(session: Session) -> None:
        from core.search.suggest import log_query

        log_query(session, cleaned, groups, total_ms, verdict=verdict, session_key=session_key)

    return writes.submit("query log", write)


def record_vote(query: str, chunk_id: int, vote: int) -> None:
    """A thumbs vote without a browser session (one row per call), for the primary. Bad votes raise now."""
    if vote not in (1, -1):
        raise ValueError("vote must be +1 or -1")

    def write(session: Session) -> None:
        from core.search.feedback import record_feedback

        try:
            record_feedback(session, query, chunk_id, vote)
        except ValueError as exc:  # the moment was re-indexed away meanwhile: nothing to vote on
            log.info("vote dropped: %s", exc)

    writes.submit("feedback", write)


def set_vote(query: str, chunk_id: int, session_key: str, vote) -> bool:
    """This browser tab's vote on one moment (up, down or none), for the primary; True when it landed.

    The vote is stored as a state, not a change (core.search.feedback.set_vote), so a retried
    write and the toggles queued during an outage end where the viewer left them."""
    from core.search.feedback import Vote

    vote = Vote(int(vote))
    if not session_key:
        raise ValueError("a vote needs the browser session it belongs to")

    def write(session: Session) -> None:
        from core.search.feedback import set_vote as store

        try:
            store(session, query, chunk_id, session_key, vote)
        except ValueError as exc:  # the moment was re-indexed away meanwhile: nothing to vote on
            log.info("vote dropped: %s", exc)

    return writes.submit("feedback", write)
