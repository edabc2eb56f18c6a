"""Tables. Alembic migrations under core/migrations/ create them; this module is their map.

Layout of the data, one way: sources → media_items → transcript_segments → chunks (+ vectors).
Around it: jobs (the queue), reservations + ledger (money), app_settings (admin knobs),
workers (heartbeats), audit_log, query_log, feedback, webhook_events, login_attempts.

Vectors: `chunks.embedding` is an untyped `vector`; `chunks.embedding_space_id` says which
model made it. Each embedding space gets its own partial HNSW index on
`(embedding::vector(dim))`, so changing the model re-embeds into a new space and
vectors of different models are never compared (see core/embeddings.py, core/search/).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.states import ItemStatus, JobStatus


class Base(DeclarativeBase):
    pass


# Item life cycle, shown in the library page (core.states.ItemStatus).
ITEM_STATUSES = tuple(s.value for s in ItemStatus)
SOURCE_KINDS = ("youtube", "zoom", "upload")


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # youtube | zoom | upload
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)  # channel URL, Zoom account id, …
    # New items of this source are visible to viewers unless the admin says otherwise (Zoom: False).
    publish_by_default: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    config: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("kind", "url", name="uq_sources_kind_url"),)


class MediaItem(Base):
    __tablename__ = "media_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))  # YouTube id, Zoom meeting uuid, file hash
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # None = unknown
    duration_s: Mapped[float | None] = mapped_column(Float)
    view_count: Mapped[int | None] = mapped_column(BigInteger)
    url: Mapped[str] = mapped_column(Text)  # canonical link; deep links add the second
    host: Mapped[str | None] = mapped_column(Text)
    media_path: Mapped[str | None] = mapped_column(Text)  # local file (uploads, Zoom downloads)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    status_detail: Mapped[str | None] = mapped_column(Text)  # review reason, last error, …
    visible: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))  # shown to viewers
    pinned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    skipped: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    engine: Mapped[str | None] = mapped_column(String(32))  # engine that made the transcript
    route_reason: Mapped[str | None] = mapped_column(Text)  # why the router chose it
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default="0")  # Numeric reads back as Decimal
    chunk_count: Mapped[int] = mapped_column(Integer, server_default="0")
    extra: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    # Title (weight A) and description (weight B), searched by core/search/titles.py: a title
    # finds its video even before (or without) a transcript that says the words.
    search_tsv = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
            "setweight(to_tsvector('english', coalesce(description, '')), 'B')",
            persisted=True,
        ),
    )

    source: Mapped[Source] = relationship()

    __table_args__ = (
        UniqueConstraint("source_id", "external_id", name="uq_media_items_source_external"),
        Index("ix_media_items_status", "status"),
        Index("ix_media_items_published_at", "published_at"),
        Index("ix_media_items_search_tsv", "search_tsv", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
    )


class TranscriptSegment(Base):
    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    media_item_id: Mapped[int] = mapped_column(ForeignKey("media_items.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    speaker: Mapped[str | None] = mapped_column(Text)
    # Who set `speaker`: NULL = the transcript (Zoom VTT, an inline "Name:" label); "voice" = the
    # diarization stage (core/speakers/), replaced by each of its runs; "admin" = a rename.
    speaker_by: Mapped[str | None] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("media_item_id", "idx", name="uq_segments_item_idx"),
        Index("ix_segments_item_start", "media_item_id", "start_s"),  # a hit window's segments (search)
    )


class SpeakerProfile(Base):
    """An enrolled voice (core/speakers/): segments whose voice matches it get its name."""

    __tablename__ = "speaker_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    embedding = mapped_column(Vector(), nullable=False)  # the voice encoder's unit vector
    encoder: Mapped[str] = mapped_column(String(64))  # which encoder made it (vectors of two never mix)
    seconds: Mapped[float] = mapped_column(Float)  # voiced audio the profile was made from
    origin: Mapped[str | None] = mapped_column(Text)  # "item 12, 1:05–1:35" or "clip host.wav"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("name", name="uq_speaker_profiles_name"),)


class EmbeddingSpace(Base):
    """One embedding model = one vector space; chunks say which space their vector is in."""

    __tablename__ = "embedding_spaces"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(Text)
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("provider", "model", name="uq_embedding_spaces_model"),)


class Chunk(Base):
    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    media_item_id: Mapped[int] = mapped_column(ForeignKey("media_items.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    speakers: Mapped[str | None] = mapped_column(Text)  # comma-separated names (Zoom VTT)
    embedding = mapped_column(Vector(), nullable=True)
    embedding_space_id: Mapped[int | None] = mapped_column(ForeignKey("embedding_spaces.id"))
    tsv = mapped_column(TSVECTOR, Computed("to_tsvector('english', text)", persisted=True))

    media_item: Mapped[MediaItem] = relationship()

    __table_args__ = (
        UniqueConstraint("media_item_id", "idx", name="uq_chunks_item_idx"),
        Index("ix_chunks_tsv", "tsv", postgresql_using="gin"),
        Index("ix_chunks_space", "embedding_space_id"),
    )


class SentenceVector(Base):
    """One transcript sentence's vector (core/sentence_index.py): the sentence locator picks the
    sentence a moment's link opens at by its similarity to the query. Keyed by the sentence's
    start second as core/search/moments.py cuts the item's segments into sentences; derived
    data, rebuilt whenever the item's segments are."""

    __tablename__ = "sentence_vectors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    media_item_id: Mapped[int] = mapped_column(ForeignKey("media_items.id", ondelete="CASCADE"))
    start_s: Mapped[float] = mapped_column(Float)
    embedding = mapped_column(Vector(), nullable=False)
    embedding_space_id: Mapped[int] = mapped_column(ForeignKey("embedding_spaces.id", ondelete="CASCADE"))

    __table_args__ = (Index("ix_sentence_vectors_item_start", "media_item_id", "start_s"),)


# ---------------------------------------------------------------------------------------------
# Queue and money
# ---------------------------------------------------------------------------------------------

JOB_STATUSES = tuple(s.value for s in JobStatus)


class Job(Base):
    """A unit of ingestion work, claimed with SELECT … FOR UPDATE SKIP LOCKED."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    media_item_id: Mapped[int] = mapped_column(ForeignKey("media_items.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32), server_default="ingest")  # ingest | reembed | retranscribe
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    priority: Mapped[float] = mapped_column(Float, server_default="0")  # higher runs first
    engine: Mapped[str | None] = mapped_column(String(32))  # forced engine (re-transcribe), else router
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="3")
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stage: Mapped[str | None] = mapped_column(String(32))  # last pipeline stage reached (core.states.Stage)
    wait_reason: Mapped[str | None] = mapped_column(String(32))  # why it is queued, not running (WaitReason)
    last_error: Mapped[str | None] = mapped_column(Text)
    # What kind of failure last_error is (core.states.FailureCause), decided from the exception's type.
    failure_cause: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_jobs_claim", "status", "priority", "run_after"),
        # One live job per item and kind: enqueueing twice is a no-op, never a duplicate.
        Index(
            "uq_jobs_live_item",
            "media_item_id",
            "kind",
            unique=True,
            postgresql_where=text("status IN ('queued','running','retry')"),
        ),
    )


class SourceBreaker(Base):
    """One source's circuit breaker (core.backfill.breaker): closed, or open since when, why, next probe.

    Shared by every worker: read and changed under this row's lock, never kept in a process.
    """

    __tablename__ = "source_breakers"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), server_default="closed")  # core.states.BreakerState
    cause: Mapped[str | None] = mapped_column(String(32))  # core.states.FailureCause of the last source-wide failure
    reason: Mapped[str | None] = mapped_column(Text)  # that failure's own words
    failures: Mapped[int] = mapped_column(Integer, server_default="0")  # source-wide failures in a row
    hits: Mapped[int] = mapped_column(Integer, server_default="0")  # openings + failed probes: doubles the wait
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # open since
    next_probe_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    probe_job_id: Mapped[int | None] = mapped_column(BigInteger)  # the one job trying the source now
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Reservation(Base):
    """Money set aside for a job before it runs; settled into ledger rows when it ends."""

    __tablename__ = "reservations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    media_item_id: Mapped[int | None] = mapped_column(ForeignKey("media_items.id", ondelete="SET NULL"))
    engine: Mapped[str] = mapped_column(String(32))
    usd: Mapped[float] = mapped_column(Numeric(12, 6))
    status: Mapped[str] = mapped_column(String(16), server_default="open")  # open | settled | released
    # The ledger names the money is for (the estimate's parts): how a run that ended early is closed.
    parts: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_reservations_open", "status", "created_at"),)


class LedgerEntry(Base):
    """Every paid call: what it was, how much audio or how many tokens, how many dollars."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    media_item_id: Mapped[int | None] = mapped_column(ForeignKey("media_items.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id", ondelete="SET NULL"))
    engine: Mapped[str] = mapped_column(String(32))  # openai-transcribe, openai-embed, gpu, chat …
    audio_minutes: Mapped[float] = mapped_column(Float, server_default="0")
    tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    usd: Mapped[float] = mapped_column(Numeric(12, 6))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_ledger_at", "at"),)


class AppSetting(Base):
    """Admin-editable knobs as JSON by key: budgets, strategy order, topics, synonyms, paused …

    The `budget` row is also the lock that serialises reservations across workers.
    """

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Worker(Base):
    """A live scheduler/worker process and what it can do (device, model, engines)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:uuid
    role: Mapped[str] = mapped_column(String(32))  # scheduler | worker
    hostname: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    capabilities: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    current_job_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RateBucket(Base):
    """Calls made in one window to one rate-limited API, shared by every worker."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, server_default="0")


# ---------------------------------------------------------------------------------------------
# People and events
# ---------------------------------------------------------------------------------------------


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict | None] = mapped_column(JSONB)
    after: Mapped[dict | None] = mapped_column(JSONB)

    __table_args__ = (Index("ix_audit_at", "at"),)


class LoginAttempt(Base):
    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    username: Mapped[str] = mapped_column(Text)
    success: Mapped[bool] = mapped_column(Boolean)
    # Who tried (the browser's IP as the UI server saw it): the throttle is per client and name,
    # so a stranger's wrong passwords never lock the real admin out.
    client: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_login_attempts_user_at", "username", "at"),
        Index("ix_login_attempts_client_user_at", "client", "username", "at"),
    )


class AdminSession(Base):
    """A signed-in admin, kept server-side; the browser holds only an HttpOnly cookie with the token.

    Only hashes are stored: `token_hash` (the cookie's value) and, until the browser fetched its
    cookie once, `handoff_hash` (a one-use code, valid a minute) — a leaked table signs no one in.
    """

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16))  # password | oidc
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    handoff_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    client: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class QueryLogEntry(Base):
    """Normalised query text and counts only: no user, no IP (trending + autocomplete)."""

    __tablename__ = "query_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    query: Mapped[str] = mapped_column(Text)
    result_count: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    # The search's verdict: 'answered' | 'related' | 'nothing'; NULL when logged without one.
    # Trending and autocomplete count only 'answered' queries.
    verdict: Mapped[str | None] = mapped_column(String(16))
    # A random token the viewer's browser tab keeps (sessionStorage): trending counts distinct
    # sessions. NULL for searches made outside the page (the CLI, benchmarks).
    session_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_query_log_at", "at"),
        # The page logs a search once per session and query (suggest.log_query looks it up).
        Index("ix_query_log_session_query", "session_key", "query", postgresql_where=text("session_key IS NOT NULL")),
        CheckConstraint("verdict IS NULL OR verdict IN ('answered', 'related', 'nothing')", name="ck_query_log_verdict"),
    )


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    query: Mapped[str] = mapped_column(Text)
    chunk_id: Mapped[int | None] = mapped_column(ForeignKey("chunks.id", ondelete="SET NULL"))
    media_item_id: Mapped[int | None] = mapped_column(ForeignKey("media_items.id", ondelete="CASCADE"))
    start_s: Mapped[float | None] = mapped_column(Float)
    vote: Mapped[int] = mapped_column(SmallInteger)  # +1 / -1
    # The viewer's browser-tab token: one vote per (session, query, moment), toggled in place.
    session_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("uq_feedback_session_vote", "session_key", "query", "chunk_id", unique=True,
              postgresql_where=text("session_key IS NOT NULL")),
    )


class TrendingHidden(Base):
    """A term the admin hid from viewers' "Trending" list."""

    __tablename__ = "trending_hidden"

    term: Mapped[str] = mapped_column(Text, primary_key=True)
    hidden_by: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookEvent(Base):
    """Each delivered webhook event once: a repeated delivery finds its id here and stops."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    payload: Mapped[dict] = mapped_column(JSONB)


class PeriodicRun(Base):
    """The last firing of each shared scheduler job and who ran it (scheduler/firing.py).

    A process runs a firing only by moving `slot` forward, so each firing runs once however
    many scheduler processes fire it.
    """

    __tablename__ = "periodic_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_by: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ok: Mapped[bool | None] = mapped_column(Boolean)
