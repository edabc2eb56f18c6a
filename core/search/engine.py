"""search(): query → preprocessing → (vector ∥ keyword) → fusion → [rerank] → shaping → verdict.

Each arrow is one module of this package; this one only wires them, times them, and
caches the finished response (verdict included) under the content fingerprint (cache.py).
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search import cache
from core.search.fusion import FusionConfig, convex, fusion_config, rrf
from core.search.links import youtube_id
from core.search.preprocess import get_synonyms, prepare, validate, vocabulary
from core.search.records import MODES, SORTS, Candidate, QueryError, SearchFilters, SearchResponse
from core.search.retrieval import keyword_candidates, keyword_query, keyword_stats, rescore, vector_candidates
from core.search.shaping import group, keyword_weights, load_chunks
from core.search.titles import title_matches
from core.search.verdict import judge

logger = logging.getLogger(__name__)

_qvec_lock = threading.Lock()
_qvec_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()


def _embed_query(embedder, query: str) -> np.ndarray:
    """Query vectors are reused: the same question asked twice costs one embedding."""
    key = (embedder.provider, embedder.model, query)
    with _qvec_lock:
        if key in _qvec_cache:
            _qvec_cache.move_to_end(key)
            return _qvec_cache[key]
    vec = np.asarray(embedder.embed_query(query), dtype=np.float32)
    with _qvec_lock:
        _qvec_cache[key] = vec
        while len(_qvec_cache) > 256:
            _qvec_cache.popitem(last=False)
    return vec


def _space(session: Session, embedder) -> tuple[int, int] | None:
    # A plain lookup, never ensure_space(): its CREATE INDEX IF NOT EXISTS would take a lock
    # that waits for (and blocks) the pipeline's inserts.
    row = session.execute(
        text("SELECT id, dim FROM embedding_spaces WHERE provider = :p AND model = :m"),
        {"p": embedder.provider, "m": embedder.model},
    ).first()
    return (int(row[0]), int(row[1])) if row else None


@dataclass
class _Knobs:
    """Admin settings the search reads on every query, kept per content version: editing them
    (set_synonyms, set_fusion_config) bumps the version, so no stale value survives an edit."""

    config: FusionConfig
    synonyms: dict[str, list[str]]
    spaces: dict[tuple[str, str], tuple[int, int] | None]


_knobs = cache.per_version(lambda session: _Knobs(fusion_config(session), get_synonyms(session), {}))


SMALL_ARCHIVE_CHUNKS = 20_000


def _ef_search(cfg: FusionConfig, version: tuple) -> int:
    """The HNSW search list for this archive size.

    A large archive needs the large list for its recall@10; in a small one 100 already finds the
    exact top 10, and a large value there makes the planner prefer an exact scan, many times
    slower than the index (bench/search_latency.py prints recall and latency at both sizes).
    version[1] is the newest chunk id ≈ the size.
    """
    return cfg.ef_search if int(version[1]) > SMALL_ARCHIVE_CHUNKS else min(cfg.ef_search, 100)


def archive_is_empty(session: Session, *, include_hidden: bool = False) -> bool:
    """True when nothing searchable is indexed (the page then explains how to add content)."""
    visible = "" if include_hidden else "AND m.visible"
    return not session.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM chunks c JOIN media_items m ON m.id = c.media_item_id WHERE TRUE {visible})")
    ).scalar()


def search(
    session: Session,
    query: str,
    *,
    k: int = 10,
    filters: SearchFilters | None = None,
    sort: str = "relevance",
    include_hidden: bool = False,
    mode: str = "hybrid",
    embedder=None,
    log: bool = True,
    use_cache: bool = True,
    link_base: str = "/",
    config: FusionConfig | None = None,
    moments_per_video: int = 3,
    correct: bool = True,
) -> SearchResponse:
    """Search the archive; k is the number of videos returned (each with up to 3 moments).

    Hidden items are left out unless include_hidden (admin). Raises QueryError for an empty
    or too long query (control characters are stripped first). Iterate `response.hits()` for
    (video, moment) pairs in display order; `response.titles` lists title matches without a
    moment (e.g. queued for transcription). correct=False searches the words as typed
    (the "Search instead for `response.search_instead`" link).
    The query is logged (normalised, for trending/autocomplete) unless log=False or the
    search includes hidden items; the caller's session commits it.
    """
    t_start = time.perf_counter()
    query = validate(query)  # control characters (NUL …) stripped: the text that reaches SQL
    if mode not in MODES:
        raise QueryError(f"Unknown search mode {mode!r}; choose one of {', '.join(MODES)}.")
    if sort not in SORTS:
        raise QueryError(f"Unknown sort {sort!r}; choose relevance or date.")
    k = max(1, min(int(k), 100))
    filters = filters or SearchFilters()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round((now - since) * 1000, 3)
        return now

    t = time.perf_counter()
    version = cache.content_version(session)
    knobs = _knobs(session, version)
    cfg = config or knobs.config
    rerank_on = mode == "hybrid+rerank" or (mode == "hybrid" and cfg.rerank)
    key = (version, " ".join(query.split()).lower(), k, filters.cache_key(), sort, include_hidden, mode, cfg, link_base,
           moments_per_video, correct)
    t = lap("fingerprint", t)
    if use_cache:
        hit = cache.get(key)
        if hit is not None:
            response = copy.copy(hit)
            response.cached = True
            response.total_ms = round((time.perf_counter() - t_start) * 1000, 3)
            response.timings_ms = {"cache": response.total_ms}
            if log and not include_hidden:
                _log(session, response)
            return response

    prepared = prepare(query, vocab=vocabulary(session, version), synonyms=knobs.synonyms, correct=correct)
    t = lap("preprocess", t)

    lists: dict[str, list[Candidate]] = {}
    qvec, space = None, None
    if mode != "keyword":
        if embedder is None:
            from core.embeddings import get_embedder

            embedder = get_embedder()
        space = knobs.spaces.get((embedder.provider, embedder.model))
        if space is None:
            space = knobs.spaces[(embedder.provider, embedder.model)] = _space(session, embedder)
        if space is not None:
            qvec = _embed_query(embedder, prepared.cleaned)
            t = lap("embed", t)
            lists["vector"] = vector_candidates(
                session, qvec, space_id=space[0], dim=space[1],
                # A filter makes the iterative scan walk ~1/selectivity more of the graph per
                # candidate: ask for half as many (still 5 per video shown) to stay in budget.
                limit=cfg.candidates if filters.is_empty() else max(5 * k, cfg.candidates // 2),
                filters=filters, include_hidden=include_hidden, ef_search=_ef_search(cfg, version),
            )
            t = lap("vector", t)
        else:
            lists["vector"] = []
    kq = None
    stats = keyword_stats(session, version)  # the keyword side's idf, and the verdict's coverage weights
    if mode != "vector":
        kq = keyword_query(session, prepared.keyword, strict=prepared.operators, stats=stats)
        lists["keyword"] = keyword_candidates(session, kq, limit=cfg.candidates, filters=filters,
                                              include_hidden=include_hidden)
        t = lap("keyword", t)

    # Enough fused chunks to fill k videos with their moments; the long tail is never shown.
    keep = max(10 * k, 60)
    if mode in ("vector", "keyword"):
        fused = rrf(lists, {mode: 1.0})[:keep]  # one list: its own order
    elif cfg.method == "rrf":
        fused = rrf(lists, {"vector": cfg.vector_weight, "keyword": cfg.keyword_weight}, cfg.rrf_k)[:keep]
    else:
        union = sorted({c.chunk_id for cands in lists.values() for c in cands})
        assert kq is not None  # hybrid mode ran the keyword side above
        scores = rescore(session, union, kq, qvec, space_id=space and space[0], dim=space and space[1])
        fused = convex(scores, cfg.alpha)[:keep]
    t = lap("fuse", t)

    rows = load_chunks(session, [cid for cid, _ in fused])
    t = lap("load", t)
    reranked = False
    rerank_probs: dict[int, float] | None = None
    if rerank_on and fused:
        from core.search.rerank import RerankerUnavailable, get_cross_encoder, rerank

        try:
            encoder = get_cross_encoder(cfg.reranker, cfg.rerank_tokens)
        except RerankerUnavailable as exc:
            # A missing model must not take search down for viewers: fused order, and the admin
            # sees why in the log (response.reranked stays False).
            logger.warning("rerank skipped: %s", exc)
        else:
            before = fused
            fused = rerank(encoder, prepared.cleaned, fused, {cid: r.text for cid, r in rows.items()}, cfg.rerank_top)
            reranked = True
            rerank_probs = _rerank_probabilities(before, fused, set(rows), cfg.rerank_top)
        t = lap("rerank", t)

    # Grouped and judged before the moments are placed (the sentence locator, snippets): a
    # question the archive does not answer shows only a few related moments, and only the
    # moments shown are placed. "shape" is both parts.
    unplaced = group(session, fused, terms=prepared.terms, k=k, sort=sort, link_base=link_base, rows=rows,
                     moments_per_video=moments_per_video, weights=keyword_weights(kq),
                     typed_terms=prepared.typed_terms, query_vector=qvec, space=space)
    t = lap("shape", t)
    verdict, groups = judge(session, prepared, unplaced.groups, cfg=cfg, stats=stats, query_vector=qvec, space=space,
                            rerank_probs=rerank_probs, filters=filters, include_hidden=include_hidden,
                            synonyms=knobs.synonyms)
    t = lap("verdict", t)
    groups = unplaced.place(session, groups)
    now = time.perf_counter()
    timings["shape"] = round(timings["shape"] + (now - t) * 1000, 3)
    t = now
    titles = title_matches(session, prepared, version=version, filters=filters, include_hidden=include_hidden,
                           shown={g.media_item_id for g in groups}, link_base=link_base)
    lap("titles", t)
    total = round((time.perf_counter() - t_start) * 1000, 3)
    response = SearchResponse(
        query=query, prepared=prepared, mode=mode, sort=sort, groups=groups,
        timings_ms=timings, total_ms=total, reranked=reranked, verdict=verdict, titles=titles,
    )
    if use_cache:
        cache.put(key, response)
    if log and not include_hidden:
        _log(session, response)
    return response


def _rerank_probabilities(before: list[tuple[int, float]], after: list[tuple[int, float]], has_text: set[int],
                          top: int) -> dict[int, float]:
    """The cross-encoder probability of each reranked chunk, read back from rerank()'s scores
    (floor + 1e-6 + p, where floor is the best score left outside the reranked head)."""
    head = {cid for cid, _ in before[:top] if cid in has_text}
    floor = max((s for cid, s in before if cid not in head), default=0.0)
    return {cid: round(s - floor - 1e-6, 6) for cid, s in after if cid in head}


def _log(session: Session, response: SearchResponse) -> None:
    from core.search.suggest import log_query

    # The cleaned query (filler removed, spelling fixed) so that variants of one question
    # count together in trending and autocomplete; the verdict says whether it found an answer.
    log_query(session, response.prepared.cleaned, len(response.groups), response.total_ms,
              verdict=response.verdict.verdict.value if response.verdict else None)


# ---------------------------------------------------------------------------------------------
# Small look-ups for the search page
# ---------------------------------------------------------------------------------------------

AUDIO_SUFFIXES = (".mp3", ".m4a", ".wav", ".flac", ".ogg", ".opus", ".aac")


@dataclass(frozen=True)
class PlayerItem:
    id: int
    title: str
    url: str
    media_path: str | None

    @property
    def youtube(self) -> bool:
        return youtube_id(self.url) is not None

    @property
    def is_audio(self) -> bool:
        return self.media_path is not None and self.media_path.lower().endswith(AUDIO_SUFFIXES)


def player_item(session: Session, item_id: int, *, include_hidden: bool = False) -> PlayerItem | None:
    """What the page's player needs; None for an unknown item, or a hidden one unless admin."""
    row = session.execute(
        text("SELECT id, title, url, media_path, visible FROM media_items WHERE id = :id"), {"id": int(item_id)}
    ).first()
    if row is None or (not row.visible and not include_hidden):
        return None
    return PlayerItem(row.id, row.title, row.url, row.media_path)


def speakers_list(session: Session, *, include_hidden: bool = False, limit: int = 500) -> list[str]:
    """Distinct speaker names of chunks, for the speaker filter; per-item "Guest N" labels of
    the speaker turns are left out (the same label is a different person in every video)."""
    visible = "" if include_hidden else "AND m.visible"
    rows = session.execute(
        text(
            f"""
            SELECT DISTINCT trim(name) AS name
            FROM chunks c JOIN media_items m ON m.id = c.media_item_id,
                 unnest(string_to_array(c.speakers, ',')) AS name
            WHERE c.speakers IS NOT NULL AND c.speakers <> '' {visible}
              AND trim(name) !~ '^Guest [0-9]+$'
            ORDER BY name LIMIT :lim
            """
        ),
        {"lim": limit},
    ).scalars()
    return [r for r in rows if r]
