"""The catalog registers each source and item once, however many processes announce it at once."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.catalog import get_or_create_source, register, register_item
from core.db import get_engine, session_scope
from core.models import MediaItem, Source
from core.records import ItemInfo

EPISODE = ItemInfo("dQw4w9WgXcQ", "Episode 1", "https://www.youtube.com/watch?v=dQw4w9WgXcQ")


def _in_other_transaction(fn):
    """Run fn(session) in a thread with its own connection; returns a future of its result."""
    def run():
        with session_scope() as s:
            return fn(s)

    pool = ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def _wait_until_blocked(future, seconds: float = 1.0) -> None:
    """Give the other transaction time to reach (and wait on) the row the first one holds."""
    try:
        future.result(timeout=seconds)
    except TimeoutError:
        return


def test_a_second_process_registering_the_same_item_mid_transaction_gets_the_same_row(db):
    with session_scope() as s:
        source_id = get_or_create_source(s, "youtube", "YouTube", "https://www.youtube.com/@x").id

    first = Session(get_engine())
    try:
        source = first.get(Source, source_id)
        mine = register(first, source, EPISODE)
        assert mine.created
        mine_id = mine.item.id
        # The other process registers while ours is not committed: select-then-insert saw no row
        # here, inserted, and died on the unique constraint once we committed.
        other = _in_other_transaction(lambda s: register(s, s.get(Source, source_id), EPISODE).item.id)
        _wait_until_blocked(other)
        assert not other.done()  # it waits for our row instead of inserting a second one
        first.commit()
    finally:
        first.close()
    assert other.result(timeout=10) == mine_id
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(MediaItem)) == 1


def test_many_threads_registering_one_item_at_once_find_one_row(db):
    with session_scope() as s:
        source_id = get_or_create_source(s, "youtube", "YouTube", "https://www.youtube.com/@x").id
    start = threading.Barrier(6)

    def announce(_):
        start.wait()
        with session_scope() as s:
            outcome = register(s, s.get(Source, source_id), EPISODE)
            return outcome.item.id, outcome.created

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(announce, range(6)))
    assert len({item_id for item_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1  # exactly one of them created it
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(MediaItem)) == 1


def test_a_source_without_url_is_created_once_by_concurrent_processes(db):
    # NULLs never conflict in a unique constraint: this is the case ON CONFLICT alone misses.
    first = Session(get_engine())
    try:
        mine = get_or_create_source(first, "upload", "Uploads", None)
        other = _in_other_transaction(lambda s: get_or_create_source(s, "upload", "Uploads", None).id)
        _wait_until_blocked(other)
        assert not other.done()
        first.commit()
        mine_id = mine.id
    finally:
        first.close()
    assert other.result(timeout=10) == mine_id
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Source).where(Source.kind == "upload")) == 1


def test_a_repeat_registration_adds_what_is_new_and_never_erases_what_is_known(db):
    published = datetime(2024, 3, 1, tzinfo=timezone.utc)
    with session_scope() as s:
        src = get_or_create_source(s, "zoom", "Zoom", "acct", publish_by_default=False)
        item = register_item(s, src, ItemInfo("m-1", "Q&A call", "", published_at=published, duration_s=3600.0))
        assert (item.visible, item.status) == (False, "queued")  # the source's default decides
        item_id, stamped = item.id, item.updated_at
    with session_scope() as s:
        src = s.scalars(select(Source).where(Source.kind == "zoom")).one()
        # A flat listing: no date, no duration, an empty title. Nothing known may be lost,
        # and an unchanged row is not rewritten (updated_at feeds the search cache's key).
        again = register(s, src, ItemInfo("m-1", "", ""))
        assert not again.created and again.item.id == item_id
        assert (again.item.title, again.item.published_at, again.item.duration_s) == ("Q&A call", published, 3600.0)
        assert again.item.updated_at == stamped
    with session_scope() as s:
        src = s.scalars(select(Source).where(Source.kind == "zoom")).one()
        loaded = s.get(MediaItem, item_id)  # already in this session: it must see the new values
        newer = register(s, src, ItemInfo("m-1", "Q&A call, March", "https://zoom.us/rec/share/x", host="dr@x"))
        assert newer.item is loaded and loaded.title == "Q&A call, March"
        assert (loaded.url, loaded.host, loaded.published_at) == ("https://zoom.us/rec/share/x", "dr@x", published)
