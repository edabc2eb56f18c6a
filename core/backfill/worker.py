"""The worker: threads and leases — claim, run the pipeline, close the run, with heartbeats.

One process (a standalone `python -m core worker`, or the scheduler's backfill tick) runs
up to `slots` jobs at once, each in a daemon thread. Any number of such processes on any
number of machines share the database:

- it registers in `workers` with its capabilities (core.backfill.workers) and renews its
  heartbeat and its jobs' leases every lease/3 seconds from a background thread;
- a claim (core.backfill.dispatch) is one transaction: routed, reserved and marked running;
- the pipeline's `heartbeat(stage)` callback records the stage and is where a timed-out,
  taken-back or shut-down job stops (between stages);
- a job running past its timeout stops renewing its lease, so the reaper hands it to
  someone else even if its thread hangs;
- SIGTERM: no new claims; running jobs get `shutdown_grace_s` to finish, then are
  released (the attempt is not counted) and the process exits;
- past the storage limit (core.backfill.storage) no new work is claimed;
- a lost database connection (a PostgreSQL restart) never ends the process: the loop, the
  heartbeats and the recording of a run's outcome wait for it with backoff (core/outage.py),
  and a run the outage interrupted is released without counting an attempt.

However a run ends, its reservation is closed by one function, core.backfill.budget.close,
with the outcome and the stage the run reached.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core import clock, interrupts, item_extra
from core.backfill import breaker, budget, queue, ratelimit
from core.backfill.dispatch import Claim, claim_next
from core.backfill.failures import classify, label
from core.backfill.reaper import reap
from core.backfill.storage import storage_block
from core.backfill.workers import detect_capabilities
from core.config import Settings, get_settings
from core.db import session_scope
from core.models import Job, MediaItem
from core.models import Worker as WorkerRow
from core.outage import Backoff, OutageLog, is_connection_lost
from core.sources.base import SourceError
from core.states import SEARCHABLE, SOURCE_WIDE_CAUSES, FailureCause, ItemStatus, Outcome, Stage, WaitReason
from core.transcribe.base import TranscriptionError
from core.transcribe.router import WorkerCaps

log = logging.getLogger(__name__)

STORAGE_CHECK_S = 60.0


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


class JobTimeout(Exception):
    retryable = True
    failure_cause = FailureCause.TIMED_OUT


class LeaseLost(Exception):
    """The reaper gave our job to someone else: stop and write nothing."""


class ShutdownRequested(Exception):
    """SIGTERM and the grace period is over: release the job."""


Processor = Callable[..., Any]  # core.pipeline.process_item's signature


# ---------------------------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------------------------


@dataclass
class _Running:
    claim: Claim
    started: float  # time.monotonic()
    stage: Stage = Stage.CLAIMED
    prev_stage: Stage = Stage.CLAIMED
    lost: bool = False
    released: bool = False  # shutdown gave it back; the thread's late result is ignored


@dataclass
class Worker:
    """A claiming, heartbeating worker. `serve()` for a process of its own; `fill()` from a scheduler tick."""

    engines: Sequence[str] | None = None
    device: str | None = None
    model: str | None = None
    slots: int | None = None
    role: str = "worker"
    processor: Processor | None = None
    settings: Settings = field(default_factory=get_settings)

    def __post_init__(self) -> None:
        s = self.settings
        caps = detect_capabilities(s, self.engines)
        if self.device is not None:
            caps["device"] = self.device
        if self.model is not None:
            caps["model"] = self.model
        self.capabilities = caps
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.caps = WorkerCaps(self.id, tuple(caps["engines"]), caps.get("device"), caps.get("model"))
        self.slots = self.slots or s.worker_slots
        self.lease_s = s.lease_s
        self._running: dict[int, _Running] = {}
        # Re-entrant: a signal handler runs in the main thread, possibly while it holds this lock.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._beater: threading.Thread | None = None
        self._storage_checked = -1e9
        self._storage_message: str | None = None
        self._timeout_s = s.job_timeout_s  # the admin's value replaces it at each claim and heartbeat
        self.jobs_done = 0

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        # Import the pipeline here, in one thread, before job threads exist: two threads making
        # the first import of core.search at once can meet a partly initialised module (Python's
        # import-deadlock escape), which failed a job with an ImportError in the soak bench.
        self._processor()
        now = clock.now()
        with session_scope() as s:
            s.add(WorkerRow(
                id=self.id, role=self.role, hostname=socket.gethostname(), pid=os.getpid(),
                capabilities=self.capabilities, started_at=now, heartbeat_at=now,
            ))
            # A worker that can transcribe arrived: jobs that waited for one (or for money
            # it may not need) may run now.
            if self.caps.engines:
                queue.wake(s, why=WaitReason.WORKER, now=now)
                queue.wake(s, why=WaitReason.BUDGET, now=now)
        self._beater = threading.Thread(target=self._beat_loop, name="worker-heartbeat", daemon=True)
        self._beater.start()
        log.info("worker %s started: %s", self.id, self.capabilities)

    def close(self) -> None:
        self._stop.set()
        try:
            with session_scope() as s:
                s.execute(delete(WorkerRow).where(WorkerRow.id == self.id))
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
            # The row goes stale and the reaper prunes it; nothing else depends on it.
            log.warning("worker %s: database unavailable at exit; its row will be pruned", self.id)

    def request_stop(self, grace_s: float | None = None) -> None:
        """Claim nothing more; running jobs may finish within the grace period."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        if self._deadline is None:  # a second signal does not extend the grace
            self._deadline = time.monotonic() + grace
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def busy(self) -> int:
        with self._lock:
            return sum(not r.released for r in self._running.values())

    def drain(self) -> int:
        """After request_stop: wait for running jobs until the deadline, then release the rest."""
        deadline = self._deadline or time.monotonic()
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        released = 0
        with self._lock:
            leftovers = [r for r in self._running.values() if not r.released]
            for r in leftovers:
                r.released = True
        for r in leftovers:
            with session_scope() as s:
                if queue.release(s, r.claim.job_id, self.id, why=WaitReason.SHUTDOWN):
                    # Its thread may be inside a paid call right now: no error, the stage it reached.
                    self._close_money(s, r, Outcome.RELEASED, None)
                    released += 1
            log.warning("released job %s at shutdown (stage %s)", r.claim.job_id, r.stage)
        return released

    # -- heartbeats ----------------------------------------------------------------------------

    def _beat_s(self) -> float:
        return max(0.2, min(self.lease_s / 3.0, 15.0))

    def _beat_loop(self) -> None:
        outage = OutageLog(f"worker {self.id} heartbeat", log)
        while True:
            try:
                self.beat()
                outage.back()
            except Exception as exc:  # the database may blink; the next beat tries again
                if is_connection_lost(exc):
                    outage.lost(exc)
                else:
                    log.exception("heartbeat failed")
            if self._stop.wait(self._beat_s()) and not self.busy():
                return

    def beat(self) -> None:
        """Renew this worker's row and the leases of its jobs (not of jobs past their timeout)."""
        now = clock.now()
        with session_scope() as s:
            timeout = self._timeout_s = queue.get_controls(s).job_timeout_s
            with self._lock:
                running = [r for r in self._running.values() if not r.released]
            current = running[0].claim.job_id if running else None
            s.execute(update(WorkerRow).where(WorkerRow.id == self.id).values(heartbeat_at=now, current_job_id=current))
            for r in running:
                if time.monotonic() - r.started > timeout:
                    continue  # let the lease run out: the reaper gives the job to a healthy worker
                if not queue.heartbeat(s, r.claim.job_id, self.id, lease_s=self.lease_s, now=now):
                    r.lost = True

    def _stage_callback(self, run: _Running) -> Callable[[Stage], None]:
        def on_stage(stage: Stage) -> None:
            if why := interrupts.received():  # an interrupt whose raise was lost: `stage` never began
                raise KeyboardInterrupt(why)
            run.prev_stage, run.stage = run.stage, stage
            if run.lost or run.released:
                raise LeaseLost(f"job {run.claim.job_id} was taken back")
            timeout = self._timeout_s
            if time.monotonic() - run.started > timeout:
                raise JobTimeout(f"timed out: still running after {_duration(timeout)} (at '{stage}')")
            with session_scope() as s:
                if not queue.heartbeat(s, run.claim.job_id, self.id, lease_s=self.lease_s, stage=stage):
                    run.lost = True
                    raise LeaseLost(f"job {run.claim.job_id} was taken back")
            if self._deadline is not None and time.monotonic() > self._deadline:
                raise ShutdownRequested("shutting down")
            for slot in run.claim.rate_slots:
                if slot.stage == stage:
                    # As late as possible: the paid call follows this stage's start, and an item
                    # the captions served never takes a slot.
                    ratelimit.acquire(slot.key, limit=run.claim.rate_limit, window_s=self.settings.rate_window_s)

        return on_stage

    # -- claiming --------------------------------------------------------------------------------

    def _storage_ok(self) -> bool:
        """Storage against its limit, looked at once a minute (walking the media folder is not free)."""
        if time.monotonic() - self._storage_checked >= STORAGE_CHECK_S:
            with session_scope() as s:
                limit = queue.get_controls(s).storage_limit_gb
                self._storage_message = storage_block(s, self.settings, limit)
            self._storage_checked = time.monotonic()
            if self._storage_message:
                log.error(self._storage_message)
        return self._storage_message is None

    def claim(self, job_id: int | None = None) -> Claim | None:
        if self.stopping or not self._storage_ok():
            return None
        with session_scope() as s:
            self._timeout_s = queue.get_controls(s).job_timeout_s
            return claim_next(s, self.caps, lease_s=self.lease_s, job_id=job_id)

    def run_item(self, item_id: int, *, engine: str | None = None) -> tuple[int | None, str]:
        """Queue one item and run it now, inside the budget (for `ingest`-style commands).

        A job already waiting for the item (a retry after a failed attempt, a queued backfill
        job) is taken over (queue.take_over). Returns (job id, what happened): "done", "retry",
        "dead", or why it could not start (the budget's reason, paused, another worker running it).
        """
        reap()  # a job whose worker died (an ingest killed with -9) is taken back first, its money settled
        with session_scope() as s:
            job_id, busy = queue.take_over(s, item_id, priority=2e13, engine=engine)
            if job_id is None:
                return None, f"not started: {busy}"
        claim = self.claim(job_id)
        if claim is None:
            with session_scope() as s:
                job = s.get_one(Job, job_id)  # just taken over above: a missing row is a real error
                item = s.get(MediaItem, item_id)
                why = (item.status_detail if item is not None and item.status_detail else None) or job.wait_reason or "not claimable now"
            return job_id, f"not started: {why}"
        self._execute(self._track(claim))
        with session_scope() as s:
            return job_id, s.get_one(Job, job_id).status

    def fill(self) -> int:
        """Claim work for every free slot and run each job in its own thread; returns jobs started."""
        started = 0
        while not self.stopping and self.busy() < (self.slots or 1):
            claim = self.claim()
            if claim is None:
                break
            run = self._track(claim)
            threading.Thread(target=self._execute, args=(run,), name=f"job-{claim.job_id}", daemon=True).start()
            started += 1
        return started

    def _track(self, claim: Claim) -> _Running:
        run = _Running(claim, time.monotonic())
        with self._lock:
            self._running[claim.job_id] = run
        return run

    def run_one(self) -> bool:
        """Claim and run one job in this thread (tests, `worker --once`); False when nothing was claimable."""
        claim = self.claim()
        if claim is None:
            return False
        self._execute(self._track(claim))
        return True

    def serve(self, *, max_jobs: int | None = None, exit_when_idle: bool = False, until_drained: bool = False) -> int:
        """The standalone loop: keep the slots busy until stopped; returns jobs finished."""
        idle = self.settings.worker_idle_s
        reap_every = max(1.0, min(self.lease_s, 60.0))
        last_reap = -1e9
        backoff, outage = Backoff(first=0.5, most=10.0), OutageLog(f"worker {self.id}", log)
        try:
            while not self.stopping:
                try:
                    if time.monotonic() - last_reap >= reap_every:
                        # Standalone workers reap too: a worker machine may run without a scheduler.
                        try:
                            reap()
                        except Exception as exc:  # a database blink: the next round tries again
                            if is_connection_lost(exc):
                                raise
                            log.exception("reaping expired leases failed")
                        last_reap = time.monotonic()
                    started = self.fill()
                    if max_jobs is not None and self.jobs_done >= max_jobs and not self.busy():
                        break
                    if not started and not self.busy():
                        if exit_when_idle:
                            break
                        if until_drained and self._queue_drained():
                            break
                except Exception as exc:
                    # One whole iteration lost its database: say so once, wait, go on. A claim is
                    # one transaction, so a claim cut short left nothing half-done behind.
                    if not is_connection_lost(exc):
                        raise
                    outage.lost(exc)
                    self._stop.wait(backoff.delay())
                    continue
                outage.back()
                backoff.reset()
                self._stop.wait(idle if not started and not self.busy() else 0.05)
        finally:
            if self.stopping:
                self.drain()
        return self.jobs_done

    def _queue_drained(self) -> bool:
        with session_scope() as s:
            return not s.scalar(select(func.count()).select_from(Job).where(Job.status.in_(queue.LIVE_STATUSES)))

    # -- running one job ---------------------------------------------------------------------------

    def _processor(self) -> Processor:
        if self.processor is None:
            from core.pipeline import process_item

            self.processor = process_item
        return self.processor

    def _execute(self, run: _Running) -> None:
        claim = run.claim
        try:
            result = self._processor()(claim.item_id, engines=list(claim.route.engines), heartbeat=self._stage_callback(run))
        except BaseException as raised:  # noqa: BLE001 - every failure is recorded, then the thread ends
            exc = self._as_interrupt(raised)
            if not run.released:
                try:
                    if is_connection_lost(exc):
                        self._through_outage(run, self._release_after_outage, run, exc)
                    else:
                        self._through_outage(run, self._on_failure, run, exc)
                except Exception:
                    log.exception("could not record the failure of job %s", claim.job_id)
            if exc is not raised:
                raise exc from raised
            if not isinstance(exc, Exception):
                raise
        else:
            if not run.released:
                # The work is done: its outcome (and its money) is written once the database
                # answers again, while the heartbeats keep the lease ours.
                self._through_outage(run, self._on_success, run, result)
        finally:
            with self._lock:
                self._running.pop(claim.job_id, None)
            self.jobs_done += 1

    def _through_outage(self, run: _Running, fn: Callable[..., None], *args: Any) -> None:
        """fn(*args), retried with backoff while the database is away (each try is one transaction)."""
        backoff, outage = Backoff(first=0.5, most=5.0), OutageLog(f"job {run.claim.job_id}", log)
        while True:
            try:
                fn(*args)
                outage.back()
                return
            except Exception as exc:
                if not is_connection_lost(exc) or run.lost or run.released:
                    raise
                outage.lost(exc)
                time.sleep(backoff.delay())

    def _release_after_outage(self, run: _Running, exc: BaseException) -> None:
        """The run stopped because the database went away: give the job back, no attempt counted.

        Its reservation is closed by the one rule (budget.close): charged as far as the stage
        it reached may have cost money, so the rerun pays only for its own calls.
        """
        claim = run.claim
        with session_scope() as s:
            if queue.release(s, claim.job_id, self.id, why=WaitReason.SHUTDOWN):
                self._close_money(s, run, Outcome.RELEASED, exc)
                log.warning("job %s released after a database outage during '%s' (no attempt counted)",
                            claim.job_id, run.stage)

    def _on_success(self, run: _Running, result: Any) -> None:
        claim = run.claim
        now = clock.now()
        usage = list(getattr(result, "usage", []) or [])
        elapsed_h = (time.monotonic() - run.started) / 3600.0
        if self.caps.gpu and result.engine in self.caps.engines and result.engine not in ("captions", claim.route.paid):
            usage.append(budget.UsageLike("gpu", hours=elapsed_h))
        with session_scope() as s:
            owned = queue.complete(s, claim.job_id, self.id, now=now)
            note = f"{result.engine}" + (f" ({result.model})" if getattr(result, "model", None) else "")
            self._close_money(s, run, Outcome.SUCCEEDED, None, usage=usage, note=note, now=now)
            item = s.get(MediaItem, claim.item_id)
            if item is not None:
                item_extra.update(item, route=claim.route.reason)
                if result.engine == "captions":
                    item_extra.update(item, captions=True)
                if item.published_at is not None:
                    # Freshness: publication → searchable, per item (the dashboards average it).
                    item_extra.update(item, freshness_lag_s=max(0.0, (now - item.published_at).total_seconds()))
                item.route_reason = f"{result.route_reason} — routing: {claim.route.reason}"
            breaker.record_answer(s, claim.source_id, now=now)
        if not owned:
            log.warning("job %s finished after its lease was lost; its result stands (the index is idempotent)", claim.job_id)

    def _close_money(
        self, s: Session, run: _Running, outcome: Outcome, exc: BaseException | None, *,
        usage: Sequence[Any] | None = None, note: str | None = None, now: datetime | None = None,
    ) -> None:
        """Close the run's reservation (core.backfill.budget.close) with the stage it reached."""
        claim = run.claim
        if usage is None and exc is not None:
            usage = getattr(exc, "usage", None)  # a failed run that knows what it was billed says so
        budget.close(
            s, claim.reservation_id, outcome, stage=self._stage_reached(run, exc), usage=usage, error=exc,
            job_id=claim.job_id, item_id=claim.item_id, note=note, now=now,
        )

    @staticmethod
    def _stage_reached(run: _Running, exc: BaseException | None) -> Stage:
        # Our own stop signals are raised as a stage *begins*: nothing of it has run yet.
        if isinstance(exc, (ShutdownRequested, JobTimeout, LeaseLost)):
            return run.prev_stage
        return run.stage

    def _as_interrupt(self, exc: BaseException) -> BaseException:
        """The failure a job's thread raised, as the person's interrupt when one came first.

        The handler's KeyboardInterrupt can land inside a native extension's first import
        (onnxruntime, loaded by faster-whisper's VAD as transcription starts, and numpy under
        it): the extension then reports an ImportError of its own with no link to the signal,
        and the library wraps that in its own error ("Applying the VAD filter requires the
        onnxruntime package"). Counted as the item's failure, a Ctrl-C would burn an attempt.
        """
        if isinstance(exc, Exception) and (why := interrupts.received()):
            return KeyboardInterrupt(why)
        return exc

    def _on_failure(self, run: _Running, exc: BaseException) -> None:
        from core.pipeline import NoUsableTranscript

        claim = run.claim
        now = clock.now()
        if isinstance(exc, LeaseLost):
            log.warning("job %s: %s", claim.job_id, exc)
            return
        with session_scope() as s:
            if isinstance(exc, KeyboardInterrupt):
                # Ctrl-C, SIGTERM or a closed terminal under `ingest`: the person stopped it, the
                # item did nothing wrong. Give the job back now; no attempt is counted.
                if queue.release(s, claim.job_id, self.id, why=WaitReason.INTERRUPTED, now=now):
                    self._close_money(s, run, Outcome.RELEASED, exc)
                    item = s.get(MediaItem, claim.item_id)
                    if item is not None and item.status not in SEARCHABLE:
                        item.status = ItemStatus.QUEUED
                        item.status_detail = f"interrupted during '{run.stage}'; run the ingest again to continue"
                return
            if isinstance(exc, ShutdownRequested):
                if queue.release(s, claim.job_id, self.id, why=WaitReason.SHUTDOWN, now=now):
                    self._close_money(s, run, Outcome.RELEASED, exc)
                return
            cause = classify(exc)
            if cause in SOURCE_WIDE_CAUSES:
                # The source is down or pushing back, not this item: its breaker counts it, and
                # once the source is paused the job waits for it without burning an attempt.
                trip = breaker.record_failure(
                    s, claim.source_id, cause, str(exc), job_id=claim.job_id,
                    retry_after_s=getattr(exc, "retry_after_s", None), now=now,
                )
                if trip.open:
                    if queue.release(s, claim.job_id, self.id, run_after=trip.until, why=WaitReason.SOURCE, now=now):
                        self._close_money(s, run, Outcome.RELEASED, exc)
                        item = s.get(MediaItem, claim.item_id)
                        if item is not None and item.status not in SEARCHABLE:
                            kind = item.source.kind if item.source is not None else None
                            item.status = ItemStatus.QUEUED
                            item.status_detail = f"waiting: {label(cause, kind)}; no attempt counted"
                    return
            elif isinstance(exc, SourceError):
                breaker.record_answer(s, claim.source_id, now=now)  # it answered about this item: it is up
            if isinstance(exc, NoUsableTranscript) and claim.route.wait:
                # Captions were the only free option and there are none: remember, then wait
                # for what the router said (a transcription worker, or next period's money).
                item = s.get(MediaItem, claim.item_id)
                if item is not None:
                    item_extra.update(item, captions=False)
                    item.status, item.status_detail = ItemStatus.QUEUED, f"no captions; {claim.route.reason}"
                if queue.release(s, claim.job_id, self.id, run_after=claim.wait_until, why=claim.route.wait, now=now):
                    self._close_money(s, run, Outcome.RELEASED, exc)
                return
            retryable = bool(getattr(exc, "retryable", True)) if isinstance(exc, (SourceError, TranscriptionError, JobTimeout)) else True
            outcome = queue.fail(s, claim.job_id, self.id, exc, retryable=retryable, cause=cause, now=now)
            if outcome is not None:
                self._close_money(s, run, Outcome.FAILED, exc)
                log.warning("job %s (item %s) failed → %s: %s", claim.job_id, claim.item_id, outcome.status, exc)


# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------


def install_signal_handlers(worker: Worker, on_stop: Callable[[], None] | None = None) -> None:
    """SIGTERM / SIGINT: stop claiming; running jobs finish within the grace period or are released.

    The handler only records the signal: it interrupts the main thread wherever it is, maybe
    inside a lock the stopping code needs. A watcher thread does the stopping.
    """
    received: list[int] = []

    def handler(signum, _frame) -> None:
        received.append(signum)  # no locks, no I/O

    def watch() -> None:
        while not received:
            time.sleep(0.1)
        log.warning("signal %s: no new work; running jobs finish or are released", received[0])
        worker.request_stop()
        if on_stop is not None:
            on_stop()

    threading.Thread(target=watch, name="signal-watch", daemon=True).start()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


__all__ = [
    "JobTimeout",
    "LeaseLost",
    "ShutdownRequested",
    "Worker",
    "install_signal_handlers",
]
