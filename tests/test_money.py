"""One path for money: however a paid run ends, core.backfill.budget.close books it by one rule.

Each test claims a paid job through the real worker (real Postgres, real claim, real
reservation), lets a stand-in pipeline reach a stage and end there — done, failed,
interrupted, or lost with its worker — and reads the reservation and the ledger.
"""
from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from core import clock
from core.backfill import budget, queue
from core.backfill.reaper import reap
from core.backfill.worker import Worker
from core.catalog import get_or_create_source, register_item
from core.config import load_settings
from core.db import session_scope
from core.models import Job, LedgerEntry, Reservation
from core.pipeline import ProcessResult, Usage
from core.records import ItemInfo
from core.states import JobStatus, Stage, WaitReason
from core.transcribe.base import TranscriptionError

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)
RESERVED = 0.066  # 10 min at $0.006/min, with the 10 % margin


@pytest.fixture(autouse=True)
def frozen_clock():
    clock.set_now(T0)
    yield
    clock.set_now(None)


def paid_item() -> int:
    with session_scope() as s:
        src = get_or_create_source(s, "upload", "Uploads", None)
        item = register_item(s, src, ItemInfo("sha-1", "Talk", "file://1", duration_s=600)).id
        queue.set_controls(s, paid_routing="always", paid_calls_per_minute=0)
        queue.enqueue(s, item)
    return item


def pipeline(*stages: Stage, error: BaseException | None = None, usage: list[Usage] | None = None):
    """A stand-in for process_item: reports `stages` through the worker's heartbeat, then ends."""

    def process(item_id: int, *, engines, heartbeat):
        for stage in stages:
            heartbeat(stage)
        if error is not None:
            raise error
        return ProcessResult(item_id, "indexed", "openai", "whisper-1", "openai engine", 600.0, 3, usage or [])

    return process


def run(process) -> Job:
    worker = Worker(engines=["openai"], settings=load_settings(openai_api_key="test-key"), processor=process)
    try:
        assert worker.run_one(), "the paid job was not claimed"
    finally:
        worker.close()
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        s.expunge(job)
        return job


def money() -> tuple[str, float]:
    """(the reservation's state, dollars in the ledger)."""
    with session_scope() as s:
        res = s.scalars(select(Reservation)).one()
        assert float(res.usd) == pytest.approx(RESERVED) and res.parts == ["openai-transcribe"]
        return res.status, float(s.scalar(select(func.coalesce(func.sum(LedgerEntry.usd), 0))))


def test_success_books_the_actual_usage(db):
    item = paid_item()
    job = run(pipeline(Stage.FETCHING, Stage.TRANSCRIBING, Stage.EMBEDDING, Stage.INDEXING,
                       usage=[Usage("openai-transcribe", audio_minutes=9.5)]))
    assert job.status == JobStatus.DONE
    assert money() == ("settled", pytest.approx(0.057))
    with session_scope() as s:
        row = s.scalars(select(LedgerEntry)).one()
        assert (row.media_item_id, row.engine, row.audio_minutes) == (item, "openai-transcribe", 9.5)


def test_a_request_the_api_refused_is_not_charged(db):
    paid_item()
    job = run(pipeline(Stage.FETCHING, Stage.TRANSCRIBING, error=TranscriptionError("400: audio too long")))
    assert job.status == JobStatus.DEAD
    assert money() == ("released", 0.0)


def test_a_run_broken_mid_call_is_charged_its_reservation(db):
    paid_item()
    job = run(pipeline(Stage.FETCHING, Stage.TRANSCRIBING, error=ConnectionResetError("connection reset by peer")))
    assert job.status == JobStatus.RETRY
    assert money() == ("settled", pytest.approx(RESERVED))
    with session_scope() as s:
        assert "failed during 'transcribing'" in s.scalars(select(LedgerEntry.note)).one()


def test_a_failure_while_embedding_is_charged_because_the_transcript_was_bought(db):
    paid_item()
    run(pipeline(Stage.FETCHING, Stage.TRANSCRIBING, Stage.EMBEDDING, error=RuntimeError("embedding API 500")))
    assert money() == ("settled", pytest.approx(RESERVED))


def test_a_failure_that_reports_its_usage_books_that_usage(db):
    paid_item()
    error = RuntimeError("indexing failed")
    error.usage = [Usage("openai-transcribe", audio_minutes=4.0)]  # type: ignore[attr-defined]
    run(pipeline(Stage.FETCHING, Stage.TRANSCRIBING, Stage.EMBEDDING, error=error))
    assert money() == ("settled", pytest.approx(0.024))
    with session_scope() as s:
        assert s.scalars(select(LedgerEntry.note)).one() == "failed run"


def test_an_interrupt_before_the_paid_call_releases_and_gives_the_job_back(db):
    paid_item()
    with pytest.raises(KeyboardInterrupt):
        run(pipeline(Stage.FETCHING, error=KeyboardInterrupt()))
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        assert (job.status, job.attempts, job.wait_reason, job.stage) == ("queued", 0, WaitReason.INTERRUPTED, "fetching")
    assert money() == ("released", 0.0)


def test_a_signal_a_library_turned_into_its_own_error_still_gives_the_job_back(db):
    # Seen in the suite: a SIGTERM to `ingest` landed inside onnxruntime's first import (under
    # faster-whisper's VAD); the extension reported an ImportError with no link to the signal,
    # faster-whisper a RuntimeError, and the job burned an attempt. Here `ingest`'s own signal
    # handler receives a real SIGTERM, and the stand-in pipeline loses the KeyboardInterrupt as
    # the extension does.
    from core import interrupts
    from core.cli.ingest import _interrupt_on_signals

    def process(item_id: int, *, engines, heartbeat):
        heartbeat(Stage.FETCHING)
        try:
            signal.raise_signal(signal.SIGTERM)
        except KeyboardInterrupt:
            pass
        raise RuntimeError("Applying the VAD filter requires the onnxruntime package")

    paid_item()
    worker = Worker(engines=["openai"], settings=load_settings(openai_api_key="test-key"), processor=process)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        _interrupt_on_signals()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            worker.run_one()
    finally:
        interrupts.forget()
        for sig, handler in before.items():
            signal.signal(sig, handler)
        worker.close()
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        assert (job.status, job.attempts, job.wait_reason) == ("queued", 0, WaitReason.INTERRUPTED)
    assert money() == ("released", 0.0)


def test_a_signal_python_dropped_still_stops_the_job_at_its_next_stage(db, capfd):
    # Seen in the suite: a Ctrl-C to `ingest` landed in one of SQLAlchemy's weakref callbacks,
    # where Python prints an exception as "Exception ignored in … Traceback" and drops it; the
    # transcription ran to the end and the item was indexed. Here the real SIGINT arrives inside a
    # __del__, which Python treats the same way.
    import gc
    import sys

    from core import interrupts
    from core.cli.ingest import _interrupt_on_signals

    class SignalsWhenCollected:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    def process(item_id: int, *, engines, heartbeat):
        heartbeat(Stage.FETCHING)
        SignalsWhenCollected()  # collected at once: the handler's exception is dropped
        gc.collect()
        heartbeat(Stage.TRANSCRIBING)
        return ProcessResult(item_id, "indexed", "openai", "whisper-1", "openai engine", 600.0, 3, [])

    paid_item()
    worker = Worker(engines=["openai"], settings=load_settings(openai_api_key="test-key"), processor=process)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    hook = sys.unraisablehook
    try:
        _interrupt_on_signals()
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            worker.run_one()
    finally:
        interrupts.forget()
        sys.unraisablehook = hook
        for sig, handler in before.items():
            signal.signal(sig, handler)
        worker.close()
    assert "Traceback" not in capfd.readouterr().err
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        assert (job.status, job.attempts, job.wait_reason, job.stage) == ("queued", 0, WaitReason.INTERRUPTED, "fetching")
    assert money() == ("released", 0.0)


def test_an_interrupt_during_the_paid_call_is_charged(db):
    paid_item()
    with pytest.raises(KeyboardInterrupt):
        run(pipeline(Stage.FETCHING, Stage.TRANSCRIBING, error=KeyboardInterrupt()))
    assert money() == ("settled", pytest.approx(RESERVED))


@pytest.mark.parametrize(("stage", "expected"), [
    (Stage.FETCHING, ("released", 0.0)),
    (Stage.TRANSCRIBING, ("settled", pytest.approx(RESERVED))),
    (Stage.EMBEDDING, ("settled", pytest.approx(RESERVED))),  # the worker's rule and the reaper's agree here now
])
def test_a_run_lost_with_its_worker_is_closed_by_the_same_rule(db, stage, expected):
    paid_item()
    worker = Worker(engines=["openai"], settings=load_settings(openai_api_key="test-key"))
    claim = worker.claim()
    assert claim is not None and claim.reservation_id is not None
    with session_scope() as s:
        assert queue.heartbeat(s, claim.job_id, worker.id, lease_s=60, stage=stage)
    clock.set_now(T0 + timedelta(minutes=20))  # the worker died: its lease ran out
    report = reap()
    assert (report.jobs, report.reservations) == (1, 1)
    assert money() == expected
    with session_scope() as s:
        assert s.scalars(select(Job.status)).one() == JobStatus.RETRY


def test_the_rule_itself_one_table(db):
    transcript, embeddings = ["openai-transcribe"], ["openai-embed"]
    assert not budget.may_have_paid(Stage.CAPTIONS, transcript, None)
    assert not budget.may_have_paid(Stage.FETCHING, transcript, None)
    assert budget.may_have_paid(Stage.TRANSCRIBING, transcript, None)
    assert not budget.may_have_paid(Stage.TRANSCRIBING, transcript, TranscriptionError("refused"))
    assert not budget.may_have_paid(Stage.TRANSCRIBING, embeddings, None)  # local whisper: nothing paid yet
    assert budget.may_have_paid(Stage.EMBEDDING, embeddings, None)  # cut off mid-call: may be billed
    assert not budget.may_have_paid(Stage.EMBEDDING, embeddings, RuntimeError("500"))  # the call failed
    assert budget.may_have_paid(Stage.INDEXING, embeddings, RuntimeError("disk full"))


def test_an_answer_call_lost_past_its_timeout_is_closed_by_the_same_function(db):
    with session_scope() as s:
        held = budget.reserve_call(s, "chat", tokens=20_000)
    assert held.ok and held.reservation_id
    clock.set_now(T0 + timedelta(seconds=budget.CALL_RESERVATION_TIMEOUT_S - 1))
    with session_scope() as s:
        assert budget.reap_reservations(s) == []  # still in flight
    clock.set_now(T0 + timedelta(seconds=budget.CALL_RESERVATION_TIMEOUT_S + 1))
    with session_scope() as s:
        assert budget.reap_reservations(s) == [(held.reservation_id, "charged")]
        row = s.scalars(select(LedgerEntry)).one()
        assert (row.engine, row.note) == ("chat", "estimated: answer call lost")
        assert float(row.usd) == pytest.approx(held.usd)
