"""`serve`: the whole product on one machine — search UI, scheduler, Zoom webhook receiver.

The parent process starts (or joins) the database and migrates it first, so the three
children find a ready schema; it then supervises them: any child that died (UI, scheduler,
webhook receiver) is restarted with a growing pause and the reason is logged, and so is the
embedded PostgreSQL when its postmaster is gone (a crash, kill -9). Stopping the parent
(Ctrl-C, SIGTERM) stops all three gracefully.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from core.config import PROJECT_ROOT, get_settings
from core.outage import Backoff

log = logging.getLogger(__name__)
STABLE_S = 60.0  # a child up this long has its restart pause reset
DB_CHECK_S = 1.0  # how often the parent looks at the embedded server


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the search UI, the scheduler and the webhook receiver")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8501)), help="UI port (default 8501)")
    p.add_argument("--no-scheduler", action="store_true", help="UI only (the scheduler runs elsewhere)")
    p.add_argument("--no-webhooks", action="store_true", help="do not start the Zoom webhook receiver")
    p.add_argument("--plugin", action="append", default=[],
                   help="a module the scheduler imports first (it may register engines)")
    p.set_defaults(func=cmd_serve)


PRODUCTION_FLAGS = ("--server.fileWatcherType", "none", "--server.runOnSave", "false")


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    env: dict = field(default_factory=dict)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=PROJECT_ROOT, env={**os.environ, **self.env})
        self.started_at = time.monotonic()


def exit_reason(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


def _children(args: argparse.Namespace) -> list[Child]:
    py = sys.executable
    kids = [
        Child(
            "ui",
            [py, "-m", "core.ui_server", "run", "ui_app.py", "--server.port", str(args.port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             # Production mode whatever config.toml says: no file watcher, no re-run on save.
             *PRODUCTION_FLAGS],
        )
    ]
    if not args.no_scheduler:
        kids.append(Child("scheduler", [py, "-m", "scheduler", *(f"--plugin={m}" for m in args.plugin)]))
    if not args.no_webhooks:
        kids.append(Child("webhooks", [py, "-m", "core", "webhooks"]))
    return kids


class DatabaseWatch:
    """The parent's eye on the embedded server: restart it (pgserver's start()) when its postmaster is gone."""

    def __init__(self) -> None:
        self.next_check = 0.0
        self.backoff = Backoff(first=0.5, most=10.0)
        self.down_since: float | None = None

    def check(self) -> None:
        from core.db import embedded_server_running, revive_embedded_server

        now = time.monotonic()
        if now < self.next_check:
            return
        running = embedded_server_running()
        if running is None or running:  # a managed DATABASE_URL is not ours to restart
            if self.down_since is not None:
                print(f"Chaffee Search: the database is back after {now - self.down_since:.1f} s", file=sys.stderr, flush=True)
                self.down_since = None
                self.backoff.reset()
            self.next_check = now + DB_CHECK_S
            return
        if self.down_since is None:
            self.down_since = now
            print("Chaffee Search: the embedded PostgreSQL stopped (its postmaster is gone); restarting it",
                  file=sys.stderr, flush=True)
        if revive_embedded_server():
            self.next_check = now  # report "back" on the next round
        else:
            self.next_check = now + self.backoff.delay()


def cmd_serve(args: argparse.Namespace) -> int:
    from core.db import wait_for_database

    settings = get_settings()
    wait_for_database("serve")  # start/join the embedded server and migrate before any child needs it
    where = "embedded PostgreSQL in " + str(settings.data_dir / "pgdata") if not settings.database_url else "DATABASE_URL"
    print(f"Chaffee Search: database ready ({where})")
    kids = _children(args)
    for kid in kids:
        kid.start()
    print(f"Chaffee Search: open http://localhost:{args.port}  (Ctrl-C stops everything)", flush=True)

    stopping = False

    def _stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    code = 0
    watch = DatabaseWatch()
    while not stopping:
        time.sleep(0.5)
        try:
            watch.check()
        except Exception:  # noqa: BLE001 - the supervisor itself must not die of it
            log.exception("checking the embedded server failed")
        for kid in kids:
            if kid.proc is None:
                if time.monotonic() >= kid.next_start:
                    print(f"Chaffee Search: starting the {kid.name} again", file=sys.stderr, flush=True)
                    kid.start()
                continue
            rc = kid.proc.poll()
            if rc is None:
                if kid.restarts and time.monotonic() - kid.started_at > STABLE_S:
                    kid.restarts = 0  # it has been up a while: the next crash restarts it quickly
                continue
            kid.restarts += 1
            pause = min(60.0, 2.0 ** kid.restarts)
            print(f"Chaffee Search: the {kid.name} stopped ({exit_reason(rc)}); restarting in {pause:.0f} s",
                  file=sys.stderr, flush=True)
            kid.proc, kid.next_start = None, time.monotonic() + pause
    for kid in kids:
        if kid.proc is not None and kid.proc.poll() is None:
            kid.proc.terminate()  # SIGTERM: the scheduler finishes or releases its current job
    deadline = time.monotonic() + 30
    for kid in kids:
        if kid.proc is not None:
            try:
                kid.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kid.proc.kill()
    return code
