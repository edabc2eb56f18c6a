"""Shared fixtures: one real embedded PostgreSQL per test run, emptied between tests."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Offline, always: no model hub, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
_TEST_HOME = Path(tempfile.mkdtemp(prefix="chaffee-tests-"))
# Settings are read from the environment: point everything at throw-away folders before import.
os.environ["DATA_DIR"] = str(_TEST_HOME / "data")
os.environ["CHAFFEE_SECRETS_FILE"] = str(_TEST_HOME / "no-secrets.toml")
# Tests TRUNCATE every table: DATABASE_URL is used only when the caller says the database is the tests'
# own (`make test-managed` sets CHAFFEE_TEST_USE_DATABASE_URL=1 for its throw-away TCP server);
# otherwise a developer's DATABASE_URL is dropped and the embedded server under _TEST_HOME is used.
if os.environ.get("CHAFFEE_TEST_USE_DATABASE_URL") != "1":
    os.environ.pop("DATABASE_URL", None)
os.environ.pop("SEARCH_DATABASE_URL", None)  # replicas only where a test sets them (tests/test_search_replicas.py)

from core import db as core_db  # noqa: E402
from core.config import get_settings  # noqa: E402

APP_TABLES = (
    "feedback, query_log, audit_log, login_attempts, admin_sessions, webhook_events, ledger, reservations, jobs, "
    "workers, rate_buckets, app_settings, chunks, transcript_segments, source_breakers, media_items, sources, "
    "embedding_spaces, "
    "periodic_runs, speaker_profiles, trending_hidden, sentence_vectors"
)


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying why (a fresh clone has none)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{'/'.join(parts)} (not present in this checkout)")
    return path


def require_binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.skip(f"needs the `{name}` program (installed by .ci/run: apt-get install {name})")
    return found


@pytest.fixture(scope="session")
def engine():
    """The real embedded Postgres (or DATABASE_URL when CHAFFEE_TEST_USE_DATABASE_URL=1), migrated."""
    get_settings.cache_clear()
    core_db.reset_engine()
    eng = core_db.get_engine()
    yield eng
    core_db.reset_engine()


@pytest.fixture()
def db(engine):
    """An empty database for one test."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {APP_TABLES} RESTART IDENTITY CASCADE"))
        # Vector-space indexes are per space: drop them with the spaces.
        for (name,) in conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_chunks_hnsw_space_%'")
        ):
            conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
    yield engine


@pytest.fixture()
def tmp_media(tmp_path) -> Path:
    d = tmp_path / "media"
    d.mkdir()
    return d
