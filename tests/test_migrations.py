"""Migrations on a brand-new database of the server under test (embedded, or over TCP in the
managed pass): they create the vector extension and every table, and running them again is a no-op."""
from __future__ import annotations

import uuid

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from core.db import make_engine, migrate
from core.models import Base


def test_a_new_database_migrates_to_the_full_schema_and_again_changes_nothing(engine):
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = make_engine(make_url(engine.url).set(database=name).render_as_string(hide_password=False))
    try:
        migrate(fresh)
        with fresh.connect() as conn:
            assert conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        tables = set(inspect(fresh).get_table_names())
        assert set(Base.metadata.tables) <= tables, set(Base.metadata.tables) - tables
        migrate(fresh)  # a second process starting (UI, scheduler, CLI) must find nothing to do
        with fresh.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == head
    finally:
        fresh.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
