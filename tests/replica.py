"""A real streaming replica for the tests that read search from one (SEARCH_DATABASE_URL).

`cluster` (a pytest fixture: import it into the test module) starts a TCP primary
(tests/pgtcp.py) and a hot standby made from it with `pg_basebackup -R -X stream`, points this
process's DATABASE_URL at the primary and SEARCH_DATABASE_URL at the standby, migrates the
primary (the standby replays it) and yields (primary, standby); both are stopped afterwards.
"""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import create_engine, text

from core import db as core_db
from core import search_db
from core.config import get_settings
from core.search import cache
from tests.pgtcp import TcpCluster, scratch_dir


@pytest.fixture()
def cluster(monkeypatch):
    """(primary, standby), with this process's primary and search replicas pointed at them."""
    root = scratch_dir()
    primary = TcpCluster.create(root / "primary").start()
    standby = None
    try:
        standby = primary.replica(root / "standby")
        monkeypatch.setenv("DATABASE_URL", primary.url)
        monkeypatch.setenv("SEARCH_DATABASE_URL", standby.url)
        get_settings.cache_clear()
        core_db.reset_engine()
        search_db.reset()
        cache.clear()
        core_db.get_engine()  # migrates the primary; the standby replays it
        yield primary, standby
    finally:
        search_db.reset()
        core_db.reset_engine()
        cache.clear()
        for c in (standby, primary):
            if c is not None:
                c.stop("immediate")
        monkeypatch.undo()
        get_settings.cache_clear()
        shutil.rmtree(root, ignore_errors=True)


def primary_rows(primary: TcpCluster, sql: str) -> list:
    """Rows read straight from the primary (what reached it), past the app's own routing."""
    eng = create_engine(primary.url)
    try:
        with eng.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        eng.dispose()
