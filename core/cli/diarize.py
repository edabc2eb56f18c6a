"""`diarize`: speaker turns for indexed items (the optional speakers extra), now.

    python -m core diarize 12 15        # these items (again, if they had a pass)
    python -m core diarize --all        # every item whose current index has had no pass
    python -m core diarize --status     # how many are pending

The scheduler does the same in the background, a few minutes at a time; this runs to the end
(or to --budget-s) and prints one line per item. Free: nothing is spent, nothing re-transcribed.
"""
from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diarize", help="speaker turns for indexed items (needs the speakers extra)")
    p.add_argument("items", nargs="*", type=int, metavar="ITEM", help="item ids (default with --all: every pending one)")
    p.add_argument("--all", action="store_true", help="every item whose current index has had no speaker pass")
    p.add_argument("--budget-s", type=float, default=None, help="stop after this many seconds (resumable)")
    p.add_argument("--status", action="store_true", help="only say how many items are pending")
    p.set_defaults(func=cmd_diarize)


def cmd_diarize(args: argparse.Namespace) -> int:
    from core import speakers
    from core.db import session_scope
    from core.speakers import store

    if args.status:
        with session_scope() as s:
            n = len(store.pending_ids(s, limit=100_000))
        print(f"speaker turns: {n} item(s) pending")
        return 0
    if not args.items and not args.all:
        print("error: name the items to diarize, or give --all", file=sys.stderr)
        return 2
    if not speakers.available():
        print(f"error: {speakers.ExtraMissing()}", file=sys.stderr)
        return 2
    from core.speakers.stage import diarize_pending

    report = diarize_pending(item_ids=args.items or None, budget_s=args.budget_s,
                             progress=lambda one: print(one.line(), flush=True))
    for item_id, why in report.failed:
        print(f"error: item {item_id}: {why}", file=sys.stderr)
    print(report.line())
    return 1 if report.failed and not report.done else 0
