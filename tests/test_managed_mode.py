"""Managed mode: workers on "other machines" share nothing but DATABASE_URL.

Runs in the managed pass (`make test-managed`, called by .ci/run), where DATABASE_URL is a
PostgreSQL reached over TCP with a password (tests/pgtcp.py). Each worker gets its own HOME
and DATA_DIR and an environment built from scratch — no DATA_DIR of ours, no socket path — so
the only way it can find the queue is the URL, as a GPU box at home or a cloud worker would.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from core.config import PROJECT_ROOT, get_settings
from core.db import session_scope
from core.models import Chunk, Job, MediaItem
from tests.fakes.openai_server import FakeOpenAI
from tests.test_worker_processes import _FakeAPIEmbedder, add_items  # the same item specs and vector space


@pytest.fixture()
def tcp_url(db) -> str:
    url = get_settings().database_url
    if not url or urlsplit(url.replace("+psycopg", "")).hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("runs in the managed pass: `make test-managed` (DATABASE_URL = a TCP PostgreSQL)")
    return url


def machine_env(home: Path, url: str, fake: FakeOpenAI, log: Path) -> dict[str, str]:
    home.mkdir(parents=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DATA_DIR": str(home / "data"),
        "CHAFFEE_SECRETS_FILE": str(home / "no-secrets.toml"),
        "DATABASE_URL": url,
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test-key",
        "WORKER_IDLE_S": "0.1",
        "PAID_CALLS_PER_MINUTE": "0",
        "FAKE_ENGINE_LOG": str(log),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def test_two_machines_sharing_only_the_database_url_index_every_item_once(tcp_url, tmp_path):
    from core.embeddings import ensure_space

    with FakeOpenAI(embedding_dim=64) as fake:
        with session_scope() as s:
            ensure_space(s, _FakeAPIEmbedder())
        media = tmp_path / "shared-media"
        media.mkdir()
        ids = add_items([{"seconds": 120 + 10 * i, "sleep": 0.3} for i in range(10)], media)
        logs = [tmp_path / f"machine-{n}.log" for n in "ab"]
        envs = [machine_env(tmp_path / f"machine-{n}", tcp_url, fake, log) for n, log in zip("ab", logs)]
        procs = [
            subprocess.Popen([sys.executable, "-m", "core", "worker", "--plugin", "tests.fakes.queue_engines",
                              "--engines", "local", "--until-drained"],
                             cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for env in envs
        ]
        outputs = []
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=120)[0] or "")
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                pytest.fail("workers did not drain the queue in 120 s")
        assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-2000:] for o in outputs)

    # Neither machine started a database of its own: the URL was the only way to the queue.
    for env in envs:
        assert not (Path(env["DATA_DIR"]) / "pgdata").exists()
    calls = [[line.split("\t")[1] for line in log.read_text().splitlines()] if log.exists() else [] for log in logs]
    assert all(calls), f"both machines took work: {[len(c) for c in calls]}"
    assert sorted(calls[0] + calls[1]) == sorted(f"upload-{i}.json" for i in range(10))  # each item once
    with session_scope() as s:
        assert s.scalars(select(Job.status)).all() == ["done"] * 10
        for item_id in ids:
            item = s.get(MediaItem, item_id)
            n = s.scalar(select(func.count()).select_from(Chunk).where(Chunk.media_item_id == item_id))
            assert item.status == "indexed" and n == item.chunk_count > 0
