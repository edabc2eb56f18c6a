"""`backup` and `restore FILE`: pg_dump custom-format files of the database (core/backup.py).

    python -m core backup                      # now, into BACKUP_DIR (keeps the newest BACKUP_KEEP)
    python -m core restore FILE                # into an empty database (a new data directory)
    python -m core restore FILE --force        # replace the archive that is there
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backup", help="write a pg_dump backup of the database now (retention applies)")
    b.add_argument("--dir", type=Path, help="folder for the backup (default BACKUP_DIR, else <data_dir>/backups)")
    b.add_argument("--keep", type=int, help="backups to keep in that folder (default BACKUP_KEEP)")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="restore a backup file into the database")
    r.add_argument("file", type=Path)
    r.add_argument("--force", action="store_true", help="replace a database that already holds an archive")
    r.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    from core.backup import BackupError, take_backup

    if args.keep is not None and args.keep < 1:
        print("error: --keep must be at least 1", file=sys.stderr)
        return 2
    try:
        print(take_backup(directory=args.dir, keep=args.keep).line())
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from core.backup import BackupError, restore

    try:
        entries = restore(args.file, force=args.force)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored {args.file} ({entries} entries); search serves it now")
    return 0
