"""Disk used against the storage limit: one filesystem walk for the worker's stop and the health page."""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import clock, settings_store
from core.config import Settings


def dir_bytes(path: Path, *, skip: Path | None = None) -> int:
    """Bytes of the files under `path`, not following links (os.scandir: no stat of every file through pathlib).

    `skip` is a folder left out (the embedded database's, counted by pg_database_size).
    Files removed while we walk, or folders we may not read, count as nothing.
    """
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if skip is None or Path(entry.path) != skip:
                                stack.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def database_bytes(session: Session) -> int:
    return int(session.scalar(select(func.pg_database_size(func.current_database()))) or 0)


def storage_used_bytes(session: Session, settings: Settings) -> int:
    """The database plus our files under data_dir (the embedded database's folder is counted once)."""
    return database_bytes(session) + dir_bytes(settings.data_dir, skip=settings.data_dir / "pgdata")


def storage_block(session: Session, settings: Settings, limit_gb: float) -> str | None:
    """A message when storage is past its limit (and app_settings says so), else None (and clears it)."""
    used = storage_used_bytes(session, settings)
    if used > limit_gb * 1e9:
        message = (
            f"Backfill stopped: storage limit reached — {used / 1e9:.1f} GB used of {limit_gb:.0f} GB "
            f"(database + {settings.data_dir}). Free space or raise the storage limit to continue."
        )
        settings_store.BACKFILL_STOPPED.save(session, {"reason": message, "at": clock.now().isoformat()})
        return message
    if settings_store.BACKFILL_STOPPED.load(session):
        settings_store.BACKFILL_STOPPED.save(session, {})
    return None
