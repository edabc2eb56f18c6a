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
