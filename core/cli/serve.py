"""`serve`: the whole product on one machine — search UI, scheduler, Zoom webhook receiver.

The parent process starts (or joins) the database and migrates it first, so the three
children find a ready schema; it then supervises them: a crashed scheduler or webhook
receiver is restarted with a growing pause, and stopping the parent (Ctrl-C, SIGTERM)
stops all three gracefully.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from core.config import PROJECT_ROOT, get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the search UI, the scheduler and the webhook receiver")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8501)), help="UI port (default 8501)")
    p.add_argument("--no-scheduler", action="store_true", help="UI only (the scheduler runs elsewhere)")
    p.add_argument("--no-webhooks", action="store_true", help="do not start the Zoom webhook receiver")
    p.set_defaults(func=cmd_serve)


PRODUCTION_FLAGS = ("--server.fileWatcherType", "none", "--server.runOnSave", "false")


@dataclass
class Child:
    name: str
    argv: list[str]
    essential: bool  # the UI: when it ends, everything ends
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    env: dict = field(default_factory=dict)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=PROJECT_ROOT, env={**os.environ, **self.env})


def _children(args: argparse.Namespace) -> list[Child]:
    py = sys.executable
    kids = [
        Child(
            "ui",
            [py, "-m", "core.ui_server", "run", "streamlit_app.py", "--server.port", str(args.port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             # Production mode whatever config.toml says: no file watcher, no re-run on save.
             *PRODUCTION_FLAGS],
            essential=True,
        )
    ]
    if not args.no_scheduler:
        kids.append(Child("scheduler", [py, "-m", "scheduler"], essential=False))
    if not args.no_webhooks:
        kids.append(Child("webhooks", [py, "-m", "core", "webhooks"], essential=False))
    return kids


def cmd_serve(args: argparse.Namespace) -> int:
    from core.db import get_engine

    settings = get_settings()
    get_engine()  # start/join the embedded server and migrate before any child needs it
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
    while not stopping:
        time.sleep(0.5)
        for kid in kids:
            if kid.proc is None:
                if time.monotonic() >= kid.next_start:
                    kid.start()
                continue
            rc = kid.proc.poll()
            if rc is None:
                continue
            if kid.essential:
                print(f"Chaffee Search: the {kid.name} stopped (exit {rc}); stopping the rest", file=sys.stderr)
                stopping, code = True, rc or 0
                break
            kid.restarts += 1
            pause = min(60.0, 2.0 ** kid.restarts)
            print(f"Chaffee Search: the {kid.name} stopped (exit {rc}); restarting in {pause:.0f} s", file=sys.stderr)
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
