"""The states an item and a job go through, as enums (the database stores their values).

StrEnum members compare equal to their values, so a row read back as a plain string and
a member test the same; writing a member writes its value.
"""
from __future__ import annotations

from enum import StrEnum


class ItemStatus(StrEnum):
    """A media item's life cycle, shown in the library page."""

    QUEUED = "queued"
    FETCHING = "fetching"
    TRANSCRIBING = "transcribing"
    INDEXED = "indexed"
    REVIEW = "review"  # indexed, held back by a quality gate
    FAILED = "failed"
    SKIPPED = "skipped"
    DEAD = "dead"  # dead-lettered after its retries


# Searchable: a re-transcription or a failed retry keeps these and their index.
SEARCHABLE = (ItemStatus.INDEXED, ItemStatus.REVIEW)
# Need no (re)ingestion by a channel sync: done, held, or an admin decision.
SETTLED_ITEMS = (ItemStatus.INDEXED, ItemStatus.REVIEW, ItemStatus.SKIPPED, ItemStatus.DEAD)


class JobStatus(StrEnum):
    """A job in the queue (see core.backfill.queue for the transitions)."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRY = "retry"
    DONE = "done"
    DEAD = "dead"
    CANCELLED = "cancelled"


LIVE_JOBS = (JobStatus.QUEUED, JobStatus.RETRY, JobStatus.RUNNING)
CLAIMABLE_JOBS = (JobStatus.QUEUED, JobStatus.RETRY)


class Stage(StrEnum):
    """How far a running job got: the pipeline reports each as it begins (heartbeat)."""

    CLAIMED = "claimed"
    CAPTIONS = "captions"
    FETCHING = "fetching"
    TRANSCRIBING = "transcribing"
    EMBEDDING = "embedding"
    INDEXING = "indexing"
    DONE = "done"


class WaitReason(StrEnum):
    """Why a queued job is not running: it waits for something outside it (jobs.wait_reason)."""

    BUDGET = "budget"  # money: next period, or a raised budget
    SOURCE = "source"  # the source answered 429 / a bot wall and rests
    WORKER = "worker"  # a worker that can transcribe it
    INTERRUPTED = "interrupted"  # the person stopped `ingest`: run it again to continue
    SHUTDOWN = "shutdown"  # its worker shut down mid-run: any worker takes it next


class Outcome(StrEnum):
    """How a run ended, for the one function that closes its reservation (core.backfill.money)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # an exception from the pipeline (retry or dead)
    RELEASED = "released"  # given back unfinished: shutdown, interrupt, rate limit, no captions
    LOST = "lost"  # the reaper took it back: its worker stopped answering


class FailureCause(StrEnum):
    """Why a run failed, in a few kinds a person can act on (jobs.failure_cause).

    Decided once, from the exception's type, when the failure is recorded
    (core.backfill.failures.classify); the admin pages group and word failures by it.
    """

    SOURCE_UNREACHABLE = "source_unreachable"  # DNS, refused or reset connections, timeouts, HTTP 5xx
    RATE_LIMITED = "rate_limited"  # HTTP 429, a bot wall, a spent request allowance
    PRIVATE = "private"  # private, members-only or age-restricted: needs an account's cookies
    REMOVED = "removed"  # deleted, removed, never existed
    REGION_BLOCKED = "region_blocked"
    NOT_STARTED = "not_started"  # a live stream or premiere that has not ended
    REFUSED = "refused"  # the source refused us (HTTP 403, credentials, missing scope)
    BAD_INPUT = "bad_input"  # a malformed address or file
    NO_SPEECH = "no_speech"  # the recording holds no speech
    CORRUPT_MEDIA = "corrupt_media"  # the file cannot be decoded as audio
    NO_TRANSCRIPT = "no_transcript"  # no allowed engine could transcribe it
    ENGINE_FAILED = "engine_failed"  # a transcription engine was unavailable or failed
    TIMED_OUT = "timed_out"  # ran past the job timeout
    WORKER_LOST = "worker_lost"  # its worker stopped answering (killed, crashed, lost the network)
    OTHER = "other"  # anything else (a bug, an unknown site error): the details say what


# Failures that say the source as a whole is down, not this item: they trip its circuit breaker.
SOURCE_WIDE_CAUSES = frozenset({FailureCause.SOURCE_UNREACHABLE, FailureCause.RATE_LIMITED})


class BreakerState(StrEnum):
    """A source's circuit breaker (source_breakers.state)."""

    CLOSED = "closed"  # work flows
    OPEN = "open"  # the source is down: its jobs wait (no attempt burned) while one probe at a time tries it
