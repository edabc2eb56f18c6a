"""Text → unit vectors, locally or through OpenAI; one vector space per model.

`get_embedder()` gives the configured embedder; `ensure_space()` registers its vector
space in the database and creates that space's partial HNSW index. Search and the
pipeline only ever compare vectors of the same space; `core.reembed` moves an archive
indexed with another model into the configured one.

Local models (`EMBEDDING_MODEL`, `LOCAL_MODELS` below) run on onnxruntime + tokenizers from
int8 ONNX files that ship inside packages (core/packaged_models.py): nothing is exported,
quantised or downloaded at first use, and torch is not needed. `bench/embeddings.py` chose
the default (DEFAULT_MODEL, below) by measurement: speed, query latency, and retrieval quality
on NFCorpus and on the real transcripts, for labelled and paraphrased questions.

`EMBEDDING_BACKEND=torch` (GPU boxes, `requirements-gpu.txt`) runs the same model with
sentence-transformers instead. For MiniLM the int8 file agrees with torch at cosine ≈ 0.999,
so both share one vector space; bge's int8 file is not known to agree that closely with its
float weights, so its torch run gets a space of its own (and a re-embed).
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

# The tokenizers library warns on every fork after a parallel encode (the UI server and the
# scheduler start child processes); single-threaded tokenising costs nothing next to the model.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core import packaged_models  # noqa: E402
from core.config import Settings, get_settings  # noqa: E402
from core.embedding_models import (  # noqa: E402  (the catalog lives apart so that config can validate names)
    DEFAULT_MODEL,
    LOCAL_MODELS,
    LocalModel,
    Pooling,
)
from core.models import EmbeddingSpace  # noqa: E402

log = logging.getLogger(__name__)



class Embedder(Protocol):
    provider: str
    model: str
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row unit-norm."""
        ...

    def embed_query(self, text: str) -> np.ndarray: ...


class Embedded(NamedTuple):
    """Vectors and what the call cost: the tokens the provider billed for them (0 for local models)."""

    vectors: np.ndarray
    tokens: int


def embed_counted(embedder: Embedder, texts: list[str]) -> Embedded:
    """Embed documents and return the billed tokens with them.

    Usage is a return value, never a counter read before and after: one embedder serves
    every job of a process, and concurrent jobs' differences of a shared counter overlap.
    """
    counted = getattr(embedder, "embed_counted", None)
    if counted is not None:
        return counted(texts)
    return Embedded(embedder.embed_documents(texts), 0)


def local_model(name: str) -> LocalModel:
    """The packaged model called `name`, or a ValueError listing the choices."""
    try:
        return LOCAL_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown local embedding model {name!r}; choose from {sorted(LOCAL_MODELS)}") from None


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def usable_cpus() -> int:
    """Cores this process may run on (the affinity mask is Linux-only)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class OnnxEmbedder:
    """A packaged int8 ONNX encoder on onnxruntime: tokenise, batch by length, pool, normalise.

    Texts of similar token length are batched together, so little compute goes to padding.
    With an int8 model a text's vector shifts slightly with its batch-mates (activation
    scales are set per batch; cosine ≥ 0.98 to the same text alone).
    """

    provider = "local"

    def __init__(self, spec: LocalModel | str = DEFAULT_MODEL, *, batch_size: int = 16, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.spec = local_model(spec) if isinstance(spec, str) else spec
        self.model = self.spec.name
        self.dim = self.spec.dim
        self._batch_size = batch_size
        threads = threads or usable_cpus()
        onnx_path = self.spec.onnx_file()
        packaged_models.announce(f"Loading embedding model {self.model} ({self.spec.origin}, {threads} CPU threads)")
        self._tokenizer = Tokenizer.from_file(str(self.spec.tokenizer_file()))
        self._tokenizer.enable_truncation(self.spec.max_tokens)
        self._tokenizer.no_padding()  # padding is per batch, below
        options = ort.SessionOptions()
        # One thread per usable core; inter-op parallelism only adds contention here.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: onnxruntime's notices are not for our users
        # InferenceSession.run is thread-safe, so Streamlit threads can share one session.
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([t.strip() for t in texts])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)  # 0 = [PAD]
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)  # one segment
            tokens = self._session.run(None, feeds)[0]  # (batch, seq, dim)
            if self.spec.pooling is Pooling.CLS:
                pooled = tokens[:, 0, :]
            else:
                weights = mask[:, :, None].astype(np.float32)
                pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[rows] = pooled
        return _normalise(out)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.spec.query_prefix + text])[0]


class SentenceTransformerEmbedder:
    """The same model on sentence-transformers + torch (`requirements-gpu.txt`; uses CUDA when present)."""

    provider = "local"

    def __init__(self, spec: LocalModel | str = DEFAULT_MODEL, *, batch_size: int = 32, device: str | None = None):
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise RuntimeError(
                "EMBEDDING_BACKEND=torch needs torch and sentence-transformers: pip install -r requirements-gpu.txt"
            ) from None

        self.spec = local_model(spec) if isinstance(spec, str) else spec
        # Vectors of another numeric path live in their own space unless they are known to agree.
        self.model = self.spec.name if self.spec.torch_shares_space else f"{self.spec.name} (torch)"
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        source = self.spec.torch_source()
        packaged_models.announce(f"Loading embedding model {self.spec.name} (sentence-transformers from {source}, {device})")
        self._st = SentenceTransformer(source, device=device)
        # Renamed in sentence-transformers 6; the old name still works there but warns.
        dimension = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        dim = dimension()
        if dim is None:  # typed Optional; every sentence-transformers model we load reports one
            raise RuntimeError(f"{self.spec.name} does not report its embedding dimension")
        self.dim = int(dim)
        self._batch_size = batch_size
        self._lock = threading.Lock()  # torch modules are not re-entrant across Streamlit threads

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._st.encode(list(texts), batch_size=self._batch_size, normalize_embeddings=True)
        return _normalise(vecs)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([self.spec.query_prefix + text])[0]


class OpenAIEmbedder:
    """OpenAI (or any compatible server) embeddings; `embed_counted` returns the billed tokens for the ledger."""

    provider = "openai"
    DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}

    def __init__(self, model: str, *, api_key: str | None, base_url: str | None, batch_size: int = 256):
        from openai import OpenAI

        self.model = model
        self.dim = self.DIMS.get(model, 1536)
        self._client = OpenAI(api_key=api_key or "missing-key", base_url=base_url, max_retries=3)
        self._batch_size = batch_size

    def embed_counted(self, texts: list[str]) -> Embedded:
        rows: list[list[float]] = []
        tokens = 0  # this call's own count: the embedder is shared by concurrent jobs
        for i in range(0, len(texts), self._batch_size):
            resp = self._client.embeddings.create(model=self.model, input=texts[i : i + self._batch_size])
            rows.extend(d.embedding for d in sorted(resp.data, key=lambda d: d.index))
            if resp.usage is not None:
                tokens += resp.usage.total_tokens
        if not rows:
            return Embedded(np.zeros((0, self.dim), dtype=np.float32), tokens)
        out = _normalise(np.array(rows))
        self.dim = out.shape[1]
        return Embedded(out, tokens)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.embed_counted(texts).vectors

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


OPENAI_DEFAULT_MODEL = "text-embedding-3-small"


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "openai":
        # The local default name means "no model chosen" for OpenAI.
        model = OPENAI_DEFAULT_MODEL if settings.embedding_model in LOCAL_MODELS else settings.embedding_model
        return OpenAIEmbedder(model, api_key=settings.openai_api_key, base_url=settings.openai_base_url)
    if settings.embedding_backend == "torch":
        return SentenceTransformerEmbedder(settings.embedding_model)
    return OnnxEmbedder(settings.embedding_model)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    return build_embedder(get_settings())


@dataclass(frozen=True)
class SpaceInfo:
    id: int
    dim: int


def _find_space(session: Session, embedder: Embedder) -> EmbeddingSpace | None:
    return session.scalars(
        select(EmbeddingSpace).where(
            EmbeddingSpace.provider == embedder.provider, EmbeddingSpace.model == embedder.model
        )
    ).first()


def ensure_space(session: Session, embedder: Embedder) -> SpaceInfo:
    """The vector space of this embedder, created with its HNSW index on first use.

    The common case (space and index exist) takes no lock at all: `CREATE INDEX IF NOT
    EXISTS` would take a SHARE lock on chunks even when the index exists, and two workers
    indexing at once then deadlock. Only the first use of a model takes a transaction-level
    advisory lock, so concurrent first uses register one space and build one index.
    """
    space = _find_space(session, embedder)
    if space is not None and _index_exists(session, int(space.id)):
        return SpaceInfo(int(space.id), int(space.dim))
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('chaffee:ensure_space'))"))
    space = _find_space(session, embedder)  # another worker may have won while we waited
    if space is None:
        next_id = session.scalar(select(text("coalesce(max(id), 0) + 1")).select_from(EmbeddingSpace))
        space = EmbeddingSpace(id=next_id, provider=embedder.provider, model=embedder.model, dim=embedder.dim)
        session.add(space)
        session.flush()
        # A new space has no chunks, so an index by its name is a leftover of a deleted space
        # that had this id (and maybe another dim): kept, every insert of ours would fail its
        # cast ("expected 64 dimensions, not 384").
        session.execute(text(f"DROP INDEX IF EXISTS ix_chunks_hnsw_space_{int(next_id)}"))
    # id and dim are integers from our own table, so inlining them is safe; inlining is
    # needed because the planner matches a partial index only against literal predicates.
    sid, dim = int(space.id), int(space.dim)
    if not _index_exists(session, sid):
        session.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS ix_chunks_hnsw_space_{sid} ON chunks "
                f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
                f"WHERE embedding_space_id = {sid}"
            )
        )
    return SpaceInfo(sid, dim)


def _index_exists(session: Session, space_id: int) -> bool:
    return session.scalar(text(f"SELECT to_regclass('ix_chunks_hnsw_space_{int(space_id)}') IS NOT NULL"))
