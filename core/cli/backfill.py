"""`backfill status|pause|resume|retry-dead`, and `worker`: the backfill from a shell
(`sync-channel`, in core/cli/ingest.py, lists the channel and queues it).

    python -m core backfill status --watch    # a progress bar with ETA and dollars
    python -m core worker --engines local     # a worker on this machine (e.g. the GPU box)
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backfill", help="progress and control of the budgeted backfill")
    bsub = b.add_subparsers(dest="backfill_command", required=True)
    st = bsub.add_parser("status", help="done/total, ETA and dollars (a live bar with --watch)")
    st.add_argument("--watch", action="store_true", help="keep a progress bar updating until the run ends")
    st.add_argument("--interval", type=float, default=5.0, help="seconds between updates with --watch")
    st.set_defaults(func=cmd_status)
    p = bsub.add_parser("pause", help="stop claiming new work everywhere (running jobs finish)")
    p.add_argument("--reason", default=None)
    p.set_defaults(func=cmd_pause)
    bsub.add_parser("resume", help="claim work again").set_defaults(func=cmd_resume)
    r = bsub.add_parser("retry-dead", help="give dead-lettered jobs new attempts")
    r.add_argument("--job", type=int, help="one job id")
    r.add_argument("--item", type=int, help="one media item id")
    r.add_argument("--all", action="store_true", help="every dead job")
    r.add_argument("--cause", help="every dead job of one cause, e.g. source_unreachable (the groups of Admin → Backfill; "
                                   "`python -m core backfill dead` lists them)")
    r.set_defaults(func=cmd_retry_dead)
    d = bsub.add_parser("dead", help="the dead letter grouped by cause, in plain words")
    d.set_defaults(func=cmd_dead)

    w = sub.add_parser("worker", help="run a backfill worker alone (any machine with the same DATABASE_URL)")
    w.add_argument("--engines", help="transcription engines this machine runs, e.g. 'local' or 'local,openai' "
                                     "(default: local, plus openai when a key is set)")
    w.add_argument("--device", help="advertise this whisper device (default: detected)")
    w.add_argument("--model", help="advertise this whisper model (default: the configured one)")
    w.add_argument("--slots", type=int, help="jobs at once in this process (default WORKER_SLOTS)")
    w.add_argument("--plugin", action="append", default=[], help="import a module first (it may register engines)")
    w.add_argument("--max-jobs", type=int, help="stop after this many jobs")
    w.add_argument("--exit-when-idle", action="store_true", help="stop when nothing is claimable")
    w.add_argument("--until-drained", action="store_true", help="stop when no job is queued or running anywhere")
    w.set_defaults(func=cmd_worker)


def cmd_status(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.backfill.progress import projection
    from core.db import session_scope

    with session_scope() as s:
        p = projection(s)
    if not args.watch:
        print(p.line())
        return 0
    bar = tqdm(total=max(p.total, 1), unit="item", desc=p.label, dynamic_ncols=True)
    try:
        while True:
            bar.total = max(p.total, 1)
            bar.n = p.done
            money = f"${p.spent_run_usd:.2f} spent, ${min(p.left_today_usd, p.left_month_usd):.2f} left today"
            bar.set_postfix_str(f"{p.finish()} | {money}" + (f" | {p.dead} dead" if p.dead else ""))
            bar.refresh()
            if not p.remaining or p.remaining == p.dead:  # done, or only the admin can move it on
                break
            time.sleep(args.interval)
            with session_scope() as s:
                p = projection(s)
    finally:
        bar.close()
    print(p.line())
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    from core.backfill import queue
    from core.db import session_scope

    with session_scope() as s:
        queue.set_paused(s, True, args.reason)
    print("backfill paused: running jobs finish, nothing new starts")
    return 0


def cmd_resume(_args: argparse.Namespace) -> int:
    from core.backfill import queue
    from core.db import session_scope

    with session_scope() as s:
        queue.set_paused(s, False)
    print("backfill resumed")
    return 0


def cmd_retry_dead(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from core.backfill import queue
    from core.db import session_scope
    from core.models import Job
    from core.states import JobStatus

    if args.cause:
        from core import admin_actions, dashboard

        with session_scope() as s:
            groups = [g for g in dashboard.dead_letter_groups(s) if (g.cause or "unclassified") == args.cause]
            n = sum(admin_actions.retry_dead_group(s, "cli", cause=g.cause, source_kind=g.source_kind) for g in groups)
        print(f"{n} dead job(s) queued again" + ("" if groups else f" (no dead job of cause {args.cause!r}; "
                                                                   "`python -m core backfill dead` lists them)"))
        return 0
    with session_scope() as s:
        if args.all:
            ids = list(s.scalars(select(Job.id).where(Job.status == JobStatus.DEAD)))
            n = sum(queue.retry_dead(s, i) for i in ids)
        elif args.job or args.item:
            n = queue.retry_dead(s, args.job, item_id=args.item)
        else:
            print("error: name --job, --item, --cause or --all", file=sys.stderr)
            return 2
    print(f"{n} dead job(s) queued again")
    return 0


def cmd_dead(_args: argparse.Namespace) -> int:
    from core import dashboard
    from core.db import session_scope

    with session_scope() as s:
        groups = dashboard.dead_letter_groups(s)
    if not groups:
        print("no dead-lettered jobs")
    for g in groups:
        print(f"{g.label} ({g.count}) — cause {g.cause or 'unclassified'}: {g.advice}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from core.backfill.worker import Worker, install_signal_handlers

    for name in args.plugin:
        importlib.import_module(name)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines is not None else None
    worker = Worker(engines=engines, device=args.device, model=args.model, slots=args.slots)
    install_signal_handlers(worker)
    if not _start_through_outage(worker):
        return 130  # stopped (SIGTERM / Ctrl-C) before the database came back
    print(f"worker {worker.id} ready: {worker.capabilities}", flush=True)
    try:
        done = worker.serve(max_jobs=args.max_jobs, exit_when_idle=args.exit_when_idle, until_drained=args.until_drained)
    finally:
        worker.close()
    print(f"worker {worker.id} stopped after {done} job(s)", flush=True)
    return 0


def _start_through_outage(worker) -> bool:
    """Register the worker, waiting with backoff while the database is away; False if stopped first."""
    from core.db import wait_for_database
    from core.outage import is_connection_lost

    while not worker.stopping:
        if not wait_for_database(f"worker {worker.id}", stop=lambda: worker.stopping):
            return False
        try:
            worker.start()
            return True
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
    return False
