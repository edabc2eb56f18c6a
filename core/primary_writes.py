"""Writes for the primary that a viewer makes (the query log, votes), never lost while it is briefly away.

Every write goes through one background thread, in order. The caller waits up to SYNC_WAIT_S
for its own write to land, so in normal operation a vote is stored before the page draws
itself again; while the primary is away the caller goes on after that wait (or at once, when
writes are already queued behind an outage) and the thread retries the head of the queue with
back-off until it lands. A write is retried only for a lost connection: any other error is a
bug, logged and not retried forever.

A retry after an ambiguous failure (the commit reached the server, its answer did not) runs the
write again, so the page's writes are idempotent: a vote stores an absolute state, and a logged
search is one row per browser session and query (core/search/suggest.log_query).

In memory only: a process that exits with writes still queued logs how many it could not
deliver. The queue holds MAX_PENDING; past that the oldest are dropped and counted in `dropped`
(logged each time), so a long outage cannot grow the UI process without bound.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def connection_lost(exc: BaseException) -> bool:
    """Errors that mean "this server cannot serve the statement now", not "the statement is wrong"."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass
class _Write:
    what: str  # "query log" | "feedback": for the log line, never the user's text
    fn: Callable[[Session], None]
    tries: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class PrimaryWrites:
    MAX_PENDING = 10_000
    SYNC_WAIT_S = 2.0  # how long a caller waits for its write before the page goes on without it
    RETRY_FIRST_S = 0.5
    RETRY_MAX_S = 30.0

    def __init__(self) -> None:
        self._queue: deque[_Write] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._next_try = 0.0  # monotonic time of the next retry of the head (back-off)
        self.dropped = 0
        self.delivered = 0

    def submit(self, what: str, fn: Callable[[Session], None], *, wait_s: float | None = None) -> bool:
        """Queue fn(session) for the primary; True when it landed within the wait.

        The caller waits (up to wait_s, default SYNC_WAIT_S) only when nothing is queued before
        it: behind an outage the primary is known to be away and the page must not stall."""
        write = _Write(what, fn)
        with self._cond:
            behind = bool(self._queue)
            self._queue.append(write)
            while len(self._queue) > self.MAX_PENDING:
                lost = self._queue.popleft()
                self.dropped += 1
                log.error("primary away too long: dropped a queued %s write (%d dropped so far)", lost.what, self.dropped)
            self._ensure_thread()
            self._cond.notify_all()
        if not behind:
            write.done.wait(self.SYNC_WAIT_S if wait_s is None else wait_s)
        return write.done.is_set()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Retry now and wait until every queued write landed (True) or timeout_s passed (False)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._next_try = 0.0
            self._cond.notify_all()
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
            if not connection_lost(exc):
                log.exception("a %s write failed (not retried)", write.what)
                return True  # a bad write is a bug to see in the log, not to retry forever
            if write.tries == 1:
                log.warning("primary unavailable, %s write queued for retry", write.what)
            return False
        self.delivered += 1
        return True

    def _ensure_thread(self) -> None:
        # One thread for the process's lifetime (it sleeps on the condition when idle): a thread
        # that exits when the queue is empty races with a submit that finds it still alive.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="primary-writes", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self.RETRY_FIRST_S
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                wait = self._next_try - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)  # a flush() wakes it early
                    continue
                head = self._queue[0]
            landed = self._try(head)
            with self._cond:
                if landed:
                    if self._queue and self._queue[0] is head:
                        self._queue.popleft()
                    head.done.set()
                    delay, self._next_try = self.RETRY_FIRST_S, 0.0
                else:
                    self._next_try = time.monotonic() + delay
                    delay = min(delay * 2, self.RETRY_MAX_S)
                self._cond.notify_all()

    def at_exit(self) -> None:
        if self.pending() and not self.flush(5.0):
            log.error("exiting with %d query-log/feedback writes the primary never received", self.pending())
