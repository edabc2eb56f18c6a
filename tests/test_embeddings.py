"""Embeddings as users meet them: unit vectors, sensible similarity, one vector space per model.

The ONNX backend is built here from the packaged weights, once per test run (≈ 1 min), by two
processes at once — the way the app and the worker may both start cold.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core.config import PROJECT_ROOT, load_settings
from core.embeddings import (
    PACKAGED_MINILM,
    OnnxMiniLMEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
)
from tests.conftest import shared_path
from tests.fakes.openai_server import FakeOpenAI, fake_embedding

pytestmark = pytest.mark.slow

SENTENCES = [
    "Is it good to eat red meat every day?",
    "The carnivore diet removes plant foods entirely, and some people report less joint pain.",
    "Statins lower cholesterol, but what do they do to all-cause mortality?",
    "We are live on a Sunday evening, waiting for our guest to join the stream.",
    "Fibre is not essential, he argued, and many people do better without it.",
]

_BUILD = (
    "import sys; from pathlib import Path; from core.embeddings import OnnxMiniLMEmbedder; "
    "OnnxMiniLMEmbedder.packaged(Path(sys.argv[1]))"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embeddings-data")


@pytest.fixture(scope="module")
def onnx(data_dir: Path) -> OnnxMiniLMEmbedder:
    """The app's default backend, built cold by two processes racing for the same cache file."""
    cache = data_dir / "models"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    racers = [
        subprocess.Popen([sys.executable, "-c", _BUILD, str(cache)], cwd=PROJECT_ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for racer in racers:
        _, err = racer.communicate(timeout=540)
        assert racer.returncode == 0, err[-3000:]
    assert len(list(cache.glob("*.onnx"))) == 1, "both builders must end on the same file"
    assert not list(cache.glob(".build-*")), "no half-built leftovers"
    return OnnxMiniLMEmbedder.packaged(cache)  # the cache hit: no third build


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(params=["onnx", "torch"])
def local(request, onnx, torch_embedder):
    return {"onnx": onnx, "torch": torch_embedder}[request.param]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


# --- local backends ---------------------------------------------------------------------------


def test_vectors_are_unit_norm_float32_of_the_advertised_dim(local):
    vecs = local.embed_documents(SENTENCES)
    assert vecs.dtype == np.float32 and vecs.shape == (len(SENTENCES), local.dim) and local.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    query = local.embed_query(SENTENCES[0])
    assert query.dtype == np.float32 and query.shape == (384,)


def test_a_paraphrase_ranks_above_an_unrelated_sentence(local):
    query = local.embed_query("How can I lose weight quickly?")
    docs = local.embed_documents([
        "The train to London leaves the station at noon.",
        "What is the fastest way to shed body fat?",
        "She painted the fence blue last summer.",
    ])
    assert int(np.argmax(docs @ query)) == 1


def test_empty_input_gives_no_rows_and_empty_text_a_unit_vector(local):
    none = local.embed_documents([])
    assert none.shape == (0, 384) and none.dtype == np.float32
    blank = local.embed_documents(["", "   "])
    np.testing.assert_allclose(np.linalg.norm(blank, axis=1), 1.0, atol=1e-5)


def test_onnx_shares_the_torch_vector_space(onnx, torch_embedder):
    # Same provider and model name means ensure_space() puts both in one space: that is only
    # honest because the vectors agree closely.
    assert (onnx.provider, onnx.model, onnx.dim) == (torch_embedder.provider, torch_embedder.model, torch_embedder.dim)
    cosines = _cosines(onnx.embed_documents(SENTENCES), torch_embedder.embed_documents(SENTENCES))
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98, cosines


def test_onnx_agrees_with_torch_on_real_transcript_text(onnx, torch_embedder):
    srt = shared_path("transcripts", "48fTLPbE5JA.srt")
    lines = [ln for ln in srt.read_text(encoding="utf-8").splitlines() if ln.strip() and "-->" not in ln
             and not ln.strip().isdigit()]
    words = " ".join(lines).split()
    texts = lines[100:110] + [" ".join(words[i : i + 115]) for i in range(2000, 4300, 115)]  # lines and chunks
    cosines = _cosines(onnx.embed_documents(texts), torch_embedder.embed_documents(texts))
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98, cosines


def test_batching_by_length_keeps_each_text_with_its_vector(onnx):
    # Texts are sorted by length inside; the answer must still come back in the caller's order.
    # Not bit-identical to one-by-one: int8 activation scales are set per batch.
    texts = [SENTENCES[1], "meat", SENTENCES[3] * 5, SENTENCES[0]]
    together = onnx.embed_documents(texts)
    alone = np.stack([onnx.embed_query(t) for t in texts])
    assert _cosines(together, alone).min() >= 0.98
    assert onnx.embed_documents(texts[:1]) @ alone[0] > 0.999  # alone in a batch is exactly alone


def test_concurrent_callers_get_the_same_answers(onnx):
    # Streamlit serves each session on its own thread, all sharing one cached embedder.
    expected = {t: onnx.embed_query(t) for t in SENTENCES}
    results: dict[tuple[int, str], np.ndarray] = {}

    def worker(n: int) -> None:
        for t in SENTENCES:
            results[(n, t)] = onnx.embed_query(t)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for (_, t), vec in results.items():
        np.testing.assert_allclose(vec, expected[t], atol=1e-5)


def test_settings_choose_the_backend(data_dir, onnx):
    fast = build_embedder(load_settings(data_dir=data_dir, embedding_backend="onnx"))
    assert isinstance(fast, OnnxMiniLMEmbedder) and fast.model == PACKAGED_MINILM
    reference = build_embedder(load_settings(data_dir=data_dir, embedding_backend="torch"))
    assert isinstance(reference, SentenceTransformerEmbedder) and reference.model == PACKAGED_MINILM


# --- OpenAI, through the real client against a local fake server ------------------------------


@pytest.fixture()
def fake_openai():
    with FakeOpenAI(api_key="test-key") as fake:
        yield fake


def test_openai_embeddings_come_back_in_order_normalised_and_counted(fake_openai):
    embedder = OpenAIEmbedder("text-embedding-3-small", api_key="test-key", base_url=fake_openai.base_url,
                              batch_size=2)
    texts = ["red meat and health", "meat and health", "a sailing boat"]
    vecs = embedder.embed_documents(texts)
    assert vecs.shape == (3, 1536) and vecs.dtype == np.float32 and embedder.dim == 1536
    np.testing.assert_allclose(vecs, np.array([fake_embedding(t, 1536) for t in texts]), atol=1e-6)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]  # shared words → closer, as the fake promises
    assert len(fake_openai.requests_to("/v1/embeddings")) == 2  # batches of 2
    assert embedder.tokens_used == 4 + 3 + 3  # what the server reported, for the money ledger


def test_openai_rate_limit_is_retried(fake_openai):
    embedder = OpenAIEmbedder("text-embedding-3-small", api_key="test-key", base_url=fake_openai.base_url)
    fake_openai.fail_next(1, status=429, path="/v1/embeddings")
    assert embedder.embed_query("carnivore").shape == (1536,)
    assert len(fake_openai.requests_to("/v1/embeddings", status=429)) == 1


def test_openai_empty_input_makes_no_request(fake_openai):
    embedder = OpenAIEmbedder("text-embedding-3-large", api_key="test-key", base_url=fake_openai.base_url)
    assert embedder.embed_documents([]).shape == (0, 3072)
    assert fake_openai.requests == []


def test_settings_choose_openai(fake_openai, data_dir):
    settings = load_settings(data_dir=data_dir, embedding_provider="openai", openai_api_key="test-key",
                             openai_base_url=fake_openai.base_url)
    embedder = build_embedder(settings)
    assert (embedder.provider, embedder.model) == ("openai", "text-embedding-3-small")
    assert embedder.embed_query("hello").shape == (1536,)
