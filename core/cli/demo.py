"""`seed-demo`: fill an empty database with realistic demo data (the real channel listing, a month of backfill)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "seed-demo",
        help="seed demo data: the real 572-video listing, a month of ledger rows, jobs, workers",
        description="Seed realistic demo data for the admin console. Refuses a database that already holds data.",
    )
    p.add_argument("--force", action="store_true", help="erase the existing data first (everything!)")
    p.set_defaults(func=cmd_seed_demo)


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from core.db import session_scope
    from core.demo import DemoError, seed_demo

    try:
        with session_scope() as session:
            result = seed_demo(session, force=args.force)
    except DemoError as exc:
        print(f"error: {exc}")
        return 2
    statuses = ", ".join(f"{n} {s}" for s, n in result.by_status.items())
    print(f"Seeded {result.items} items ({statuses}); {result.jobs} jobs; {result.workers} workers;")
    print(f"{result.ledger_rows} ledger rows, ${result.spent_usd:.2f} spent over the last month.")
    print("Sign in to the admin console to look around (ADMIN_PASSWORD or ADMIN_PASSWORD_HASH).")
    return 0
