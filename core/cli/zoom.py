"""`zoom-check` (do the credentials work?) and `zoom-sync` (register recorded meetings)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoom-check", help="check the Zoom app credentials and recording access")
    p.set_defaults(func=cmd_zoom_check)

    p = sub.add_parser("zoom-sync", help="register Zoom cloud recordings (recent days, or whole past months)")
    p.add_argument("--from", dest="from_month", metavar="YYYY-MM", help="first month to back-fill")
    p.add_argument("--to", dest="to_month", metavar="YYYY-MM", help="last month (default: same as --from)")
    p.add_argument("--days", type=int, help="without --from: how many recent days (default ZOOM_SYNC_DAYS)")
    p.set_defaults(func=cmd_zoom_sync)


def cmd_zoom_check(args: argparse.Namespace) -> int:
    from core.zoom.admin import check_connection

    ok, message = check_connection()
    print(message)
    return 0 if ok else 1


def cmd_zoom_sync(args: argparse.Namespace) -> int:
    from core.zoom.sync import backfill, sync_recent

    if args.from_month:
        try:
            report = backfill(args.from_month, args.to_month or args.from_month)
        except ValueError as exc:
            print(f"error: {exc}")
            return 2
    else:
        report = sync_recent(days=args.days)
    print(
        f"Zoom: {report.listed} recorded meeting(s) listed, {report.new} new, {report.enqueued} queued, "
        f"{report.skipped} without usable files"
    )
    if report.stopped_early:
        print(f"stopped early: {report.stopped_early}")
        return 1
    return 0
