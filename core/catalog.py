"""The catalog: which sources we archive and which items each holds (rows, not media).

Every way content arrives — the channel sync, `ingest`, transcript imports, the demo seed,
Zoom's webhooks, sync and uploads, the benches — registers through these functions, so an
item is one row however many paths (or processes) announce it at once.

Registration is an `INSERT … ON CONFLICT` against the unique constraints
(`uq_sources_kind_url`, `uq_media_items_source_external`), not a select-then-insert: two
processes registering the same item never race into a duplicate or an IntegrityError, and
both get the one row's id.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Row, func, literal_column, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.models import MediaItem, Source
from core.records import ItemInfo

# Metadata a later registration may add but never erase: an unknown (None) value keeps the
# known one, so a flat listing without an upload date keeps a date learned from the feed.
_KEPT_WHEN_UNKNOWN = ("description", "published_at", "duration_s", "view_count", "host", "media_path")


class Registered(NamedTuple):
    item: MediaItem
    created: bool  # this call inserted the row (False: it was there; known metadata refreshed)


def get_or_create_source(
    session: Session, kind: str, name: str, url: str | None, *, publish_by_default: bool = True
) -> Source:
    """The source of that kind and url, created on first use (with this name and default)."""
    same = select(Source).where(Source.kind == kind, Source.url.is_(None) if url is None else Source.url == url)
    if url is None:
        # A unique constraint never finds two NULLs equal, so ON CONFLICT cannot guard a source
        # without a url (uploads): its creators take turns on a transaction lock instead.
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"catalog:{kind}"})
        existing = session.scalars(same.order_by(Source.id)).first()
        if existing is not None:
            return existing
    session.execute(
        pg_insert(Source)
        .values(kind=kind, name=name, url=url, publish_by_default=publish_by_default)
        .on_conflict_do_nothing(index_elements=["kind", "url"])
    )
    return session.scalars(same.order_by(Source.id).limit(1)).one()


def register(
    session: Session, source: Source, info: ItemInfo, *, media_path: Path | None = None, lock: bool = False
) -> Registered:
    """Insert the item, or refresh its metadata if the source already has it (never a duplicate).

    A new item is visible as the source's default says and starts `queued`. On a repeat, a
    non-empty title or url and every known field replace the stored ones; unknown ones never
    erase them, and an unchanged row is not written at all (its `updated_at`, part of the
    search cache's fingerprint, stays). `lock=True` returns the row locked FOR UPDATE until
    the caller's commit, for callers that read-modify-write it (Zoom merges `extra`).
    """
    session.flush()  # pending ORM changes first: the statement below bypasses the unit of work
    values = {
        "source_id": source.id,
        "external_id": info.external_id,
        "title": info.title,
        "url": info.url,
        "visible": source.publish_by_default,
        "status": "queued",
        **{field: getattr(info, field) for field in _KEPT_WHEN_UNKNOWN if field != "media_path"},
        "media_path": str(media_path) if media_path is not None else None,
    }
    stmt = pg_insert(MediaItem).values(**values)
    new = stmt.excluded
    merged = {
        "title": func.coalesce(func.nullif(new.title, ""), MediaItem.title),
        "url": func.coalesce(func.nullif(new.url, ""), MediaItem.url),
        **{field: func.coalesce(getattr(new, field), getattr(MediaItem, field)) for field in _KEPT_WHEN_UNKNOWN},
    }
    changed = or_(*(getattr(MediaItem, field).is_distinct_from(value) for field, value in merged.items()))
    row: Row[Any] | None = session.execute(
        stmt.on_conflict_do_update(
            index_elements=["source_id", "external_id"],
            # ON CONFLICT updates skip the ORM's onupdate: stamp updated_at here.
            set_={**merged, "updated_at": func.now()},
            where=changed,
        ).returning(MediaItem.id, literal_column("xmax = 0").label("inserted"))
    ).first()
    query = select(MediaItem).where(MediaItem.source_id == source.id, MediaItem.external_id == info.external_id)
    if lock:
        query = query.with_for_update()
    # populate_existing: an item this session loaded before sees the values just written.
    item = session.scalars(query.execution_options(populate_existing=True)).one()
    return Registered(item, bool(row is not None and row.inserted))


def register_item(session: Session, source: Source, info: ItemInfo, *, media_path: Path | None = None) -> MediaItem:
    """`register` for callers that only need the row."""
    return register(session, source, info, media_path=media_path).item
