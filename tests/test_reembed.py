"""A database indexed with another embedding model is moved into the configured model's space.

The story as a user lives it: an archive indexed with one model (here bge-small-en-v1.5) meets a
configuration (or a release) whose model is another (the default, all-MiniLM-L6-v2). Vector search
only compares vectors of the configured model, so the old passages are invisible to it until the
scheduler (started by `make run`) or `python -m core reembed` has re-embedded them; then search
finds them again.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from core.config import PROJECT_ROOT
from core.db import session_scope
from core.embeddings import DEFAULT_MODEL, OnnxEmbedder, ensure_space
from core.models import Chunk, MediaItem, Source
from core.search import search
from core.search.fusion import set_fusion_config

pytestmark = pytest.mark.slow

OTHER_MODEL = "bge-small-en-v1.5"
TALKS = {
    "Carnivore and Crohn's disease": [
        "My Crohn's disease went into remission after three months of eating only beef and water.",
        "The gastroenterologist could not believe the colonoscopy: no inflammation left at all.",
    ],
    "Training and recovery": [
        "Sprinters on a meat-based diet recovered faster between sessions and slept better.",
        "We talked about creatine, protein timing and why carbohydrate loading is overrated.",
    ],
}
QUESTION = "can an all-meat diet heal inflammatory bowel disease"


@pytest.fixture(scope="module")
def models() -> dict[str, OnnxEmbedder]:
    return {name: OnnxEmbedder(name) for name in (OTHER_MODEL, DEFAULT_MODEL)}


def index_with(embedder: OnnxEmbedder) -> None:
    """Two indexed talks stored the way the pipeline stores them, vectors from `embedder`."""
    with session_scope() as s:
        space = ensure_space(s, embedder)
        source = Source(kind="upload", name="uploads", url="test://uploads")
        s.add(source)
        s.flush()
        for n, (title, passages) in enumerate(TALKS.items()):
            item = MediaItem(source_id=source.id, external_id=f"talk-{n}", title=title, url=f"https://example.org/{n}",
                             status="indexed", chunk_count=len(passages))
            s.add(item)
            s.flush()
            for i, (passage, vec) in enumerate(zip(passages, embedder.embed_documents(passages))):
                s.add(Chunk(media_item_id=item.id, idx=i, start_s=50.0 * i, end_s=50.0 * i + 45, text=passage,
                            embedding=vec, embedding_space_id=space.id))


def vector_hits(embedder: OnnxEmbedder) -> list[str]:
    with session_scope() as s:
        # The verdict's thresholds are fitted on bge-small (core/search/fusion.py): under MiniLM's
        # lower cosines it would hide every moment as "not an answer". This test is about vector
        # spaces, so every moment the vector search finds is shown.
        set_fusion_config(s, verdict_related_cosine=0.0)
        r = search(s, QUESTION, k=5, mode="vector", log=False, use_cache=False, embedder=embedder)
        return [m.text for _, m in r.hits()]


def spaces_of_chunks() -> dict[str, int]:
    with session_scope() as s:
        return dict(s.execute(text(
            "SELECT e.model, count(*) FROM chunks c JOIN embedding_spaces e ON e.id = c.embedding_space_id GROUP BY 1"
        )).all())


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=180)


def test_starting_the_scheduler_after_a_model_change_makes_old_passages_findable_again(db, models):
    index_with(models[OTHER_MODEL])
    assert vector_hits(models[OTHER_MODEL])[0].startswith("My Crohn's disease")  # as it was before the upgrade
    assert vector_hits(models[DEFAULT_MODEL]) == []  # the new model's space is empty: nothing to compare with

    env = {**os.environ, "EMBEDDING_MODEL": DEFAULT_MODEL}
    proc = subprocess.Popen([sys.executable, "-m", "scheduler", "--no-sync", "--engines", ""], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while spaces_of_chunks() != {DEFAULT_MODEL: 4} and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert spaces_of_chunks() == {DEFAULT_MODEL: 4}, out[-3000:]
    assert f"re-embedded 2 item(s), 4 chunks, into {DEFAULT_MODEL}" in out
    hits = vector_hits(models[DEFAULT_MODEL])
    assert hits[0].startswith("My Crohn's disease"), hits
    assert vector_hits(models[OTHER_MODEL]) == []  # nothing is left behind in the old space


def test_the_reembed_command_moves_the_archive_and_then_says_there_is_nothing_left(db, models):
    index_with(models[DEFAULT_MODEL])
    status = run_cli("reembed", "--status", EMBEDDING_MODEL=OTHER_MODEL)
    assert status.returncode == 0 and "2 item(s) still to do" in status.stdout, status.stdout + status.stderr

    done = run_cli("reembed", EMBEDDING_MODEL=OTHER_MODEL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith(f"re-embedded 2 item(s), 4 chunks, into {OTHER_MODEL}")
    assert done.stdout.strip().endswith("none left")
    assert spaces_of_chunks() == {OTHER_MODEL: 4}
    assert vector_hits(models[OTHER_MODEL])[0].startswith("My Crohn's disease")

    again = run_cli("reembed", EMBEDDING_MODEL=OTHER_MODEL)
    assert again.stdout.strip() == f"every indexed chunk is in the {OTHER_MODEL} vector space"


def test_a_paid_provider_is_not_reembedded_behind_the_budget(db, models):
    index_with(models[DEFAULT_MODEL])
    done = run_cli("reembed", EMBEDDING_PROVIDER="openai", OPENAI_API_KEY="test-key",
                   OPENAI_BASE_URL="http://127.0.0.1:9/v1")  # never called
    assert done.returncode == 2 and "is paid" in done.stderr
    assert spaces_of_chunks() == {DEFAULT_MODEL: 4}
