"""Embeddings as users meet them: unit vectors, sensible similarity, one vector space per model.

Every packaged model runs on onnxruntime from the files its package ships: these tests pass
in a virtualenv without torch (`requirements.txt` alone); the torch comparison runs only where
`requirements-gpu.txt` is installed.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from core.config import PROJECT_ROOT, ConfigError, load_settings
from core.embedding_models import BGE_QUERY_PREFIX
from core.embeddings import (
    DEFAULT_MODEL,
    LOCAL_MODELS,
    OnnxEmbedder,
    OpenAIEmbedder,
    build_embedder,
)
from tests.conftest import shared_path
from tests.fakes.openai_server import FakeOpenAI, fake_embedding

pytestmark = pytest.mark.slow

HAS_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("sentence_transformers") is not None

SENTENCES = [
    "Is it good to eat red meat every day?",
    "The carnivore diet removes plant foods entirely, and some people report less joint pain.",
    "Statins lower cholesterol, but what do they do to all-cause mortality?",
    "We are live on a Sunday evening, waiting for our guest to join the stream.",
    "Fibre is not essential, he argued, and many people do better without it.",
]


@pytest.fixture(scope="module", params=sorted(LOCAL_MODELS))
def local(request) -> OnnxEmbedder:
    return OnnxEmbedder(request.param)


@pytest.fixture(scope="module")
def bge() -> OnnxEmbedder:
    return OnnxEmbedder("bge-small-en-v1.5")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


# --- packaged ONNX models ---------------------------------------------------------------------


def test_the_default_model_loads_without_torch_and_says_what_it_loads():
    # A fresh process, as `python -m core search` starts one: one line on stderr says what is
    # loading, no third-party warning follows, and torch is never imported.
    code = (
        "import sys; from core.embeddings import get_embedder; e = get_embedder(); "
        "v = e.embed_query('red meat'); e.embed_documents(['a', 'b c']); "
        "print(e.model, round(float(v @ v), 4), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("EMBEDDING_MODEL", "EMBEDDING_BACKEND", "TOKENIZERS_PARALLELISM")}
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [DEFAULT_MODEL, "1.0", "False"]
    assert done.stderr.strip().splitlines() == [
        f"Loading embedding model {DEFAULT_MODEL} ({LOCAL_MODELS[DEFAULT_MODEL].origin}, "
        f"{len(os.sched_getaffinity(0))} CPU threads)"
    ]


def test_vectors_are_unit_norm_float32_of_the_advertised_dim(local):
    vecs = local.embed_documents(SENTENCES)
    assert vecs.dtype == np.float32 and vecs.shape == (len(SENTENCES), local.dim) and local.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    query = local.embed_query(SENTENCES[0])
    assert query.dtype == np.float32 and query.shape == (384,)
    np.testing.assert_allclose(np.linalg.norm(query), 1.0, atol=1e-5)


def test_a_paraphrase_ranks_above_unrelated_sentences(local):
    query = local.embed_query("How can I lose weight quickly?")
    docs = local.embed_documents([
        "The train to London leaves the station at noon.",
        "What is the fastest way to shed body fat?",
        "She painted the fence blue last summer.",
    ])
    assert int(np.argmax(docs @ query)) == 1


def test_two_paraphrases_are_nearer_than_unrelated_text(local):
    a, b, other = local.embed_documents([
        "Eating only meat cured my arthritis.",
        "My joint pain went away once I ate nothing but animal foods.",
        "Our quarterly revenue grew faster than expected in Asia.",
    ])
    assert a @ b > a @ other + 0.2 and a @ b > b @ other + 0.2


def test_bge_queries_get_the_retrieval_prefix_and_documents_do_not(bge):
    question = "does red meat cause cancer"
    as_query = bge.embed_query(question)
    np.testing.assert_allclose(as_query, bge.embed_documents([BGE_QUERY_PREFIX + question])[0], atol=1e-5)
    assert float(as_query @ bge.embed_documents([question])[0]) < 0.99  # the prefix changes the vector


def test_bge_finds_a_real_passage_from_its_opening_words(bge):
    # Queries (with the retrieval prefix) and documents (without) meet in one space.
    srt = shared_path("transcripts", "48fTLPbE5JA.srt")
    lines = [ln for ln in srt.read_text(encoding="utf-8").splitlines()
             if ln.strip() and "-->" not in ln and not ln.strip().isdigit()]
    words = " ".join(lines).split()
    passages = [" ".join(words[i : i + 115]) for i in range(0, 115 * 40, 115)]
    vectors = bge.embed_documents(passages)
    # Each passage's own opening words, asked as a query, find that passage first.
    hits = sum(int(np.argmax(vectors @ bge.embed_query(" ".join(p.split()[:25])))) == i for i, p in enumerate(passages))
    assert hits >= 36, hits


def test_empty_input_gives_no_rows_and_empty_text_a_unit_vector(local):
    none = local.embed_documents([])
    assert none.shape == (0, 384) and none.dtype == np.float32
    blank = local.embed_documents(["", "   "])
    np.testing.assert_allclose(np.linalg.norm(blank, axis=1), 1.0, atol=1e-5)


def test_long_text_is_truncated_not_refused(local):
    # A chunk far past the model's token limit (a transcript with no pauses) still embeds.
    (vec,) = local.embed_documents(["meat " * 3000])
    np.testing.assert_allclose(np.linalg.norm(vec), 1.0, atol=1e-5)


def test_batching_by_length_keeps_each_text_with_its_vector(local):
    # Texts are sorted by length inside; the answer must still come back in the caller's order.
    # Not bit-identical to one-by-one: int8 activation scales are set per batch.
    texts = [SENTENCES[1], "meat", SENTENCES[3] * 5, SENTENCES[0]]
    together = local.embed_documents(texts)
    alone = np.concatenate([local.embed_documents([t]) for t in texts])
    assert _cosines(together, alone).min() >= 0.98
    assert float(local.embed_documents(texts[:1])[0] @ alone[0]) > 0.999  # alone in a batch is exactly alone


def test_concurrent_callers_get_the_same_answers(bge):
    # Streamlit serves each session on its own thread, all sharing one cached embedder.
    expected = {t: bge.embed_query(t) for t in SENTENCES}
    results: dict[tuple[int, str], np.ndarray] = {}

    def worker(n: int) -> None:
        for t in SENTENCES:
            results[(n, t)] = bge.embed_query(t)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 4 * len(SENTENCES)
    for (_, t), vec in results.items():
        np.testing.assert_allclose(vec, expected[t], atol=1e-5)


def test_settings_choose_the_model_and_name_its_space(tmp_path):
    default = build_embedder(load_settings(data_dir=tmp_path))
    assert isinstance(default, OnnxEmbedder) and (default.provider, default.model) == ("local", DEFAULT_MODEL)
    other_name = next(name for name in LOCAL_MODELS if name != DEFAULT_MODEL)
    other = build_embedder(load_settings(data_dir=tmp_path, embedding_model=other_name))
    assert (other.provider, other.model, other.dim) == ("local", other_name, 384)
    # Different models, different spaces: their vectors of one text are not comparable.
    text = SENTENCES[1]
    assert float(default.embed_documents([text])[0] @ other.embed_documents([text])[0]) < 0.5


def test_an_unknown_model_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"EMBEDDING_MODEL.*'e5-large'.*all-MiniLM-L6-v2.*bge-small-en-v1.5"):
        load_settings(data_dir=tmp_path, embedding_model="e5-large")


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed here (requirements-gpu.txt)")
def test_the_torch_backend_without_torch_says_what_to_install(tmp_path):
    with pytest.raises(RuntimeError, match="requirements-gpu.txt"):
        build_embedder(load_settings(data_dir=tmp_path, embedding_backend="torch"))


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch + sentence-transformers (requirements-gpu.txt)")
def test_packaged_minilm_shares_the_torch_vector_space():
    # Same provider and model name means ensure_space() puts both in one space: that is only
    # honest because the vectors agree closely.
    from core.embeddings import SentenceTransformerEmbedder

    onnx, ref = OnnxEmbedder("all-MiniLM-L6-v2"), SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert (onnx.provider, onnx.model, onnx.dim) == (ref.provider, ref.model, ref.dim)
    srt = shared_path("transcripts", "48fTLPbE5JA.srt")
    lines = [ln for ln in srt.read_text(encoding="utf-8").splitlines()
             if ln.strip() and "-->" not in ln and not ln.strip().isdigit()]
    words = " ".join(lines).split()
    texts = SENTENCES + lines[100:110] + [" ".join(words[i : i + 115]) for i in range(2000, 4300, 115)]
    cosines = _cosines(onnx.embed_documents(texts), ref.embed_documents(texts))
    assert cosines.mean() >= 0.995 and cosines.min() >= 0.99, cosines


# --- OpenAI, through the real client against a local fake server ------------------------------


@pytest.fixture()
def fake_openai():
    with FakeOpenAI(api_key="test-key") as fake:
        yield fake


def test_openai_embeddings_come_back_in_order_normalised_and_counted(fake_openai):
    embedder = OpenAIEmbedder("text-embedding-3-small", api_key="test-key", base_url=fake_openai.base_url,
                              batch_size=2)
    texts = ["red meat and health", "meat and health", "a sailing boat"]
    vecs, tokens = embedder.embed_counted(texts)
    assert vecs.shape == (3, 1536) and vecs.dtype == np.float32 and embedder.dim == 1536
    np.testing.assert_allclose(vecs, np.array([fake_embedding(t, 1536) for t in texts]), atol=1e-6)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]  # shared words → closer, as the fake promises
    assert len(fake_openai.requests_to("/v1/embeddings")) == 2  # batches of 2
    assert tokens == 4 + 3 + 3  # what the server reported, for the money ledger


def test_openai_rate_limit_is_retried(fake_openai):
    embedder = OpenAIEmbedder("text-embedding-3-small", api_key="test-key", base_url=fake_openai.base_url)
    fake_openai.fail_next(1, status=429, path="/v1/embeddings")
    assert embedder.embed_query("carnivore").shape == (1536,)
    assert len(fake_openai.requests_to("/v1/embeddings", status=429)) == 1


def test_openai_empty_input_makes_no_request(fake_openai):
    embedder = OpenAIEmbedder("text-embedding-3-large", api_key="test-key", base_url=fake_openai.base_url)
    assert embedder.embed_documents([]).shape == (0, 3072)
    assert fake_openai.requests == []


def test_settings_choose_openai(fake_openai, tmp_path):
    settings = load_settings(data_dir=tmp_path, embedding_provider="openai", openai_api_key="test-key",
                             openai_base_url=fake_openai.base_url)
    embedder = build_embedder(settings)
    assert (embedder.provider, embedder.model) == ("openai", "text-embedding-3-small")
    assert embedder.embed_query("hello").shape == (1536,)


def test_a_model_registered_after_a_deleted_space_gets_an_index_of_its_own_dimension(db):
    # Space ids are handed out as max(id) + 1, so a deleted space (its chunks go with it, by the
    # foreign key's CASCADE) gives its id to the next model. Its HNSW index, cast to the old
    # model's dimension, stayed behind and failed every insert of the new one ("expected 64
    # dimensions, not 384"): seen in the suite after a 64-dim API space was truncated away.
    from sqlalchemy import text

    from core.db import session_scope
    from core.embeddings import ensure_space
    from core.search import search
    from tests.test_search_seed import seed_archive

    with FakeOpenAI(api_key="test-key", embedding_dim=64) as fake:
        api = OpenAIEmbedder("text-embedding-3-small", api_key="test-key", base_url=fake.base_url)
        api.embed_query("carnivore")  # the server's vectors set the dimension: 64
        with session_scope() as s:
            assert ensure_space(s, api).dim == 64
    with db.begin() as conn:
        conn.execute(text("DELETE FROM embedding_spaces"))
    with session_scope() as s:
        seed_archive(s)  # the packaged MiniLM, 384-dim: it gets id 1 again
    with db.connect() as conn:
        (indexdef,) = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_chunks_hnsw_space_1'")).one()
    assert "vector(384)" in indexdef, indexdef
    with session_scope() as s:
        assert search(s, "crohn's disease remission", log=False).groups
