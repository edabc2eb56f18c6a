"""Every admin action as one function: change the database and write its audit row, together.

Each function takes the caller's session and the `actor` (the signed-in admin), delegates
the domain rule to the module that owns it (budget, queue, priorities, search), records
`before → after` with core.audit in the same transaction, and raises `AdminActionError`
with a message fit to show when the action is refused. The caller commits (pages use
core.db.session_scope), so the change and its audit row land together or not at all.

app_settings key owned here:
- `sync_requested`: {"at": ISO time, "by": actor, "source_id": int | null}. "Sync now" writes
  it; the scheduler's sync job reads it on its next tick, runs a channel sync at once and
  deletes the key (`take_sync_request`). The admin page shows a pending request.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from core import audit, clock, dashboard, settings_store
from core.backfill import budget, priorities, queue
from core.backfill.failures import label
from core.config import ENGINES, get_settings
from core.models import Chunk, Job, MediaItem, Source
from core.search.trending import hidden_terms as trending_hidden_terms
from core.search.trending import hide_term, unhide_term
from core.states import JobStatus

log = logging.getLogger(__name__)
# The result type of a domain call passed through _refuse_on_domain_error.
T = TypeVar("T")



class AdminActionError(Exception):
    """The action was refused; the message says why in words an admin understands."""


class NothingToSave(AdminActionError):
    """The form's values equal what is stored: nothing was written (and no audit row)."""


def dollars(what: str, value: object) -> float:
    """A form's amount in dollars ("12.50", "$1,000", 7) or a refusal naming the field."""
    try:
        usd = float(value.strip().lstrip("$").replace(",", "")) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AdminActionError(f"The {what} must be a number of dollars, such as 10 or 12.50 (got {str(value)!r}).") from None
    if not math.isfinite(usd):
        raise AdminActionError(f"The {what} must be a number of dollars, such as 10 or 12.50 (got {str(value)!r}).")
    if usd < 0:
        raise AdminActionError(f"The {what} cannot be negative (got {str(value).strip()}); 0 stops paid work.")
    return round(usd, 2)


def _refuse_on_domain_error(fn: Callable[[], T]) -> T:
    """Domain modules raise ValueError/LookupError for bad input: turn those into one error type."""
    try:
        return fn()
    except (ValueError, LookupError) as exc:
        raise AdminActionError(str(exc)) from exc


def _item(session: Session, item_id: int) -> MediaItem:
    item = session.get(MediaItem, int(item_id))
    if item is None:
        raise AdminActionError(f"There is no item {item_id} (it may have been deleted).")
    return item


def _target(item: MediaItem) -> str:
    return f"item {item.id}: {item.title[:80]}"


# ---------------------------------------------------------------------------------------------
# Budgets and backfill controls
# ---------------------------------------------------------------------------------------------


def set_budget(session: Session, actor: str, *, daily: object, monthly: object) -> budget.BudgetLimits:
    """New daily/monthly budgets (numbers or the form's text) under the configured safety limits.

    Refused with a sentence when a value is not a number of dollars, negative, or breaks a rule
    (budget.validate_limits: daily ≤ monthly, each ≤ its safety limit); NothingToSave when both
    equal what is stored. The safety limits themselves are configuration, never set here.
    """
    daily_usd, monthly_usd = dollars("daily budget", daily), dollars("monthly budget", monthly)
    before = budget.get_budget(session)
    if (daily_usd, monthly_usd) == (before.daily_usd, before.monthly_usd):
        raise NothingToSave("Nothing to save: the budget is unchanged.")
    after = _refuse_on_domain_error(lambda: budget.set_budget(session, daily_usd, monthly_usd))
    audit.record(session, actor, "budget.set", "budget", asdict(before), asdict(after))
    return after


def set_paused(session: Session, actor: str, paused: bool, reason: str | None = None) -> queue.Controls:
    """Pause or resume the backfill everywhere (running jobs finish; nothing new is claimed)."""
    before = queue.get_controls(session)
    queue.set_paused(session, paused, reason)
    after = queue.get_controls(session)
    audit.record(
        session, actor, "backfill.pause" if paused else "backfill.resume", "backfill",
        {"paused": before.paused, "reason": before.pause_reason}, {"paused": after.paused, "reason": after.pause_reason},
    )
    return after


def set_controls(session: Session, actor: str, **changes: object) -> queue.Controls:
    """Safety knobs of the backfill (concurrency, attempts, paid routing, …), validated by core.backfill.queue."""
    before = queue.get_controls(session)
    after = _refuse_on_domain_error(lambda: queue.set_controls(session, **changes))
    names = [n for n in changes if getattr(before, n) != getattr(after, n)]
    if not names:
        raise NothingToSave("Nothing to save: the limits are unchanged.")
    audit.record(
        session, actor, "backfill.controls", "backfill",
        {n: getattr(before, n) for n in names}, {n: getattr(after, n) for n in names},
    )
    return after


def set_price(
    session: Session, actor: str, engine: str, *, per_audio_minute: float | None = None,
    per_million_tokens: float | None = None, per_hour: float | None = None,
) -> budget.Price:
    """Change one ledger engine's price (core.backfill.budget.set_price), e.g. when the provider changes theirs."""
    before = budget.get_prices(session).get(engine)
    after = _refuse_on_domain_error(lambda: budget.set_price(
        session, engine, per_audio_minute=per_audio_minute, per_million_tokens=per_million_tokens, per_hour=per_hour))
    audit.record(session, actor, "budget.price", f"price of {engine}", before._asdict() if before else None,
                 after._asdict())
    return after


def request_sync(session: Session, actor: str, source_id: int | None = None) -> settings_store.SyncRequest:
    """Ask the scheduler to list the channel (or one source) now instead of at its next interval."""
    if source_id is not None and session.get(Source, source_id) is None:
        raise AdminActionError(f"There is no source {source_id}.")
    before = settings_store.load_sync_request(session)
    request: settings_store.SyncRequest = {"at": clock.now().isoformat(), "by": actor, "source_id": source_id}
    settings_store.save_sync_request(session, request)
    audit.record(session, actor, "sync.request", "channel sync" if source_id is None else f"source {source_id}", before, request)
    return request


def pending_sync_request(session: Session) -> settings_store.SyncRequest | None:
    """The "sync now" request the scheduler has not picked up yet, if any."""
    return settings_store.load_sync_request(session)


def take_sync_request(session: Session) -> settings_store.SyncRequest | None:
    """For the scheduler: read and clear the request in one locked step (two schedulers never both run it)."""
    value = settings_store.load_sync_request(session, lock=True)
    if not value:
        return None
    settings_store.save_sync_request(session, None)
    return value


# ---------------------------------------------------------------------------------------------
# Priorities
# ---------------------------------------------------------------------------------------------


def set_strategy_order(session: Session, actor: str, order: Sequence[str]) -> list[str]:
    before = priorities.get_strategy_order(session)
    after = _refuse_on_domain_error(lambda: priorities.set_strategy_order(session, order))
    audit.record(session, actor, "priorities.order", "strategy order", before, after)
    return after  # type: ignore[return-value]


def set_topics(session: Session, actor: str, keywords: Iterable[str]) -> list[str]:
    before = priorities.get_topics(session)
    after = _refuse_on_domain_error(lambda: priorities.set_topics(session, list(keywords)))
    audit.record(session, actor, "priorities.topics", "topic keywords", before, after)
    return after  # type: ignore[return-value]


def set_priorities(session: Session, actor: str, order: Sequence[str], keywords: Iterable[str]) -> bool:
    """The priorities form in one transaction: order and topics, each saved (and audited) only if changed.

    Returns False when nothing changed.
    """
    keywords = list(keywords)
    changed = False
    if list(order) != priorities.get_strategy_order(session):
        set_strategy_order(session, actor, order)
        changed = True
    if [k.strip() for k in keywords if k.strip()] != priorities.get_topics(session):
        set_topics(session, actor, keywords)
        changed = True
    return changed


def pin_item(session: Session, actor: str, item_id: int, pinned: bool = True) -> None:
    item = _item(session, item_id)
    before = item.pinned
    _refuse_on_domain_error(lambda: priorities.pin_item(session, item.id, pinned))
    audit.record(session, actor, "item.pin" if pinned else "item.unpin", _target(item), {"pinned": before}, {"pinned": pinned})


def skip_item(session: Session, actor: str, item_id: int, skipped: bool = True) -> None:
    item = _item(session, item_id)
    before = {"skipped": item.skipped, "status": item.status}
    _refuse_on_domain_error(lambda: queue.skip_item(session, item.id, skipped))
    session.flush()
    audit.record(
        session, actor, "item.skip" if skipped else "item.unskip", _target(item), before,
        {"skipped": item.skipped, "status": item.status},
    )


# ---------------------------------------------------------------------------------------------
# Dead letter, re-transcription, deletion
# ---------------------------------------------------------------------------------------------


def _dead_snapshot(session: Session, job_id: int | None, item_id: int | None) -> tuple[list[dict], str]:
    stmt = select(Job).where(Job.status == JobStatus.DEAD)
    stmt = stmt.where(Job.id == job_id) if job_id is not None else stmt.where(Job.media_item_id == item_id)
    jobs = list(session.scalars(stmt))
    if not jobs:
        what = f"job {job_id}" if job_id is not None else f"item {item_id}"
        raise AdminActionError(f"No dead-lettered job for {what} (it may have been retried or discarded already).")
    item = session.get(MediaItem, jobs[0].media_item_id)
    target = _target(item) if item is not None else f"job {jobs[0].id}"
    snap = [{"job": j.id, "kind": j.kind, "status": j.status, "attempts": j.attempts, "last_error": j.last_error} for j in jobs]
    return snap, target


def retry_dead(session: Session, actor: str, *, job_id: int | None = None, item_id: int | None = None) -> int:
    """Give dead-lettered jobs fresh attempts (core.backfill.queue.retry_dead); returns how many."""
    before, target = _dead_snapshot(session, job_id, item_id)
    n = _refuse_on_domain_error(lambda: queue.retry_dead(session, job_id, item_id=item_id))
    audit.record(session, actor, "dead.retry", target, before, {"revived": n, "status": JobStatus.QUEUED.value})
    return int(n)


def discard_dead(session: Session, actor: str, *, job_id: int | None = None, item_id: int | None = None) -> int:
    """Give up on dead-lettered jobs for good (the item becomes skipped); returns how many."""
    before, target = _dead_snapshot(session, job_id, item_id)
    n = _refuse_on_domain_error(lambda: queue.discard_dead(session, job_id, item_id=item_id))
    audit.record(session, actor, "dead.discard", target, before, {"discarded": n, "status": JobStatus.CANCELLED.value})
    return int(n)


def _group_jobs(session: Session, cause: str | None, source_kind: str | None) -> tuple[list[int], str]:
    ids = dashboard.dead_job_ids(session, cause, source_kind)
    words = label(cause, source_kind)
    if not ids:
        raise AdminActionError(f"No dead-lettered job left in “{words}” (it may have been retried or discarded already).")
    return ids, words


def retry_dead_group(session: Session, actor: str, *, cause: str | None, source_kind: str | None) -> int:
    """Fresh attempts for every dead job of one cause and source ("YouTube could not be reached (38)")."""
    ids, words = _group_jobs(session, cause, source_kind)
    n = sum(queue.retry_dead(session, job_id) for job_id in ids)
    audit.record(session, actor, "dead.retry_group", f"dead letter: {words}",
                 {"cause": cause, "source": source_kind, "jobs": ids}, {"revived": n, "status": JobStatus.QUEUED.value})
    return n


def discard_dead_group(session: Session, actor: str, *, cause: str | None, source_kind: str | None) -> int:
    """Give up on every dead job of one cause and source (their items become skipped)."""
    ids, words = _group_jobs(session, cause, source_kind)
    n = sum(queue.discard_dead(session, job_id) for job_id in ids)
    audit.record(session, actor, "dead.discard_group", f"dead letter: {words}",
                 {"cause": cause, "source": source_kind, "jobs": ids},
                 {"discarded": n, "status": JobStatus.CANCELLED.value})
    return n


def retranscribe(session: Session, actor: str, item_id: int, engine: str) -> int:
    """Queue a new transcription of an item with a chosen engine; the old index stays until it is replaced."""
    if engine not in ENGINES:
        raise AdminActionError(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    item = _item(session, item_id)
    if item.skipped:
        raise AdminActionError("This item is skipped: un-skip it first.")
    before = {"engine": item.engine, "status": item.status}
    job_id = queue.enqueue(session, item.id, kind="retranscribe", engine=engine)
    if job_id is None:
        raise AdminActionError("A re-transcription of this item is already queued or running.")
    audit.record(session, actor, "item.retranscribe", _target(item), before, {"engine": engine, "job": job_id})
    return job_id


def _files_of(item: MediaItem) -> list[Path]:
    """Files we stored for the item, only inside our media folder (never a user's own file)."""
    from core.zoom.meetings import media_files_of  # generic despite the module: media_path + per-item folder

    return media_files_of(item, get_settings())


def _after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` once the caller's transaction commits (never on rollback): files go only if the rows went."""

    def _run(_session: Session) -> None:
        try:
            fn()
        except OSError:
            log.exception("removing files after commit failed")

    event.listen(session, "after_commit", _run, once=True)


def delete_item(session: Session, actor: str, item_id: int) -> list[Path]:
    """Delete an item with its segments, chunks and jobs (FK cascades); its media files go after commit.

    Ledger rows stay (their item id becomes NULL): money spent is history, not content.
    """
    item = _item(session, item_id)
    chunks = session.scalar(select(func.count()).select_from(Chunk).where(Chunk.media_item_id == item.id)) or 0
    files = _files_of(item)
    before = {
        "title": item.title, "url": item.url, "status": item.status, "engine": item.engine,
        "chunks": int(chunks), "cost_usd": item.cost_usd, "files": [str(p) for p in files],
    }
    target = _target(item)
    session.execute(delete(MediaItem).where(MediaItem.id == item.id))
    session.expunge(item)
    audit.record(session, actor, "item.delete", target, before, None)
    from core.search import cache

    cache.invalidate(session)  # a cached result must not point at a deleted item
    if files:
        from core.zoom.meetings import remove_files

        _after_commit(session, lambda: remove_files(files))
    return files


# ---------------------------------------------------------------------------------------------
# Search settings
# ---------------------------------------------------------------------------------------------


def set_synonyms(session: Session, actor: str, mapping: Mapping[str, list[str] | str]) -> dict[str, list[str]]:
    from core.search.preprocess import get_synonyms
    from core.search.preprocess import set_synonyms as _set

    before = get_synonyms(session)
    after = _refuse_on_domain_error(lambda: _set(session, mapping))
    audit.record(session, actor, "search.synonyms", "synonyms", before, after)
    return after  # type: ignore[return-value]


def set_search_ranking(session: Session, actor: str, *, alpha: float, rerank: bool,
                       verdict: Mapping[str, float] | None = None) -> dict:
    """The balance of meaning (vector) and exact words (keyword) in hybrid search, the rerank
    stage, and the verdict's thresholds (FusionConfig.verdict_*; only changed ones are audited)."""
    from core.search.fusion import fusion_config, set_fusion_config

    old = fusion_config(session)
    before: dict[str, object] = {"alpha": old.alpha, "rerank": old.rerank}
    after = {"alpha": round(float(alpha), 3), "rerank": bool(rerank)}
    changed = {k: v for k, v in (verdict or {}).items() if getattr(old, k, object()) != v}
    before |= {k: getattr(old, k, None) for k in changed}
    after |= changed
    _refuse_on_domain_error(lambda: set_fusion_config(session, **after))
    audit.record(session, actor, "search.ranking", "search ranking", before, after)
    return after


def import_transcript(
    session: Session,
    actor: str,
    data: bytes,
    filename: str,
    *,
    video: str | None = None,
    title: str | None = None,
    published_at=None,
    force: bool = False,
):
    """Admin → Library upload of a transcript file (the same import as `python -m core ingest FILE.srt`).

    The import commits on its own (it embeds first, then replaces the item's index in one
    transaction, see core.transcript_import); its audit row follows in the caller's transaction.
    A bad file, or one already indexed (without `force`), is refused and nothing is stored.
    """
    import tempfile

    from core.sources.base import SourceError
    from core.transcribe.base import TranscriptionError
    from core.transcript_import import import_transcript as run_import

    name = Path(filename or "upload").name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{Path(name).suffix.lower()}"  # the browser's name never becomes a path
        path.write_bytes(data)
        try:
            result = run_import(path, video=(video or "").strip() or None, title=(title or "").strip() or None,
                                published_at=published_at, force=force, name=name)
        except (ValueError, SourceError, TranscriptionError) as exc:
            raise AdminActionError(str(exc)) from exc
    if result.already:
        raise AdminActionError(
            f"{name} is already indexed as item {result.item_id} ({result.title}); tick “Replace it” to import it again."
        )
    audit.record(session, actor, "item.import_transcript", f"item {result.item_id}: {result.title[:80]}", None,
                 {"file": name, "video": result.video_id, "chunks": result.chunk_count, "status": result.status})
    return result


# ---------------------------------------------------------------------------------------------
# Trending (the viewers' search page)
# ---------------------------------------------------------------------------------------------


def hide_trending_term(session: Session, actor: str, term: str) -> str:
    """Hide every trending question containing `term` from viewers; returns the stored form."""
    before = trending_hidden_terms(session)
    try:
        stored = hide_term(session, term, actor)
    except ValueError as exc:
        raise AdminActionError(str(exc)) from None
    audit.record(session, actor, "trending.hide", f"trending term “{stored}”", before, trending_hidden_terms(session))
    return stored


def unhide_trending_term(session: Session, actor: str, term: str) -> None:
    before = trending_hidden_terms(session)
    if not unhide_term(session, term):
        raise AdminActionError(f"“{term}” is not hidden from Trending.")
    audit.record(session, actor, "trending.unhide", f"trending term “{term}”", before, trending_hidden_terms(session))
