"""Search latency at 10k and 100k chunks, and HNSW recall@10 against exact search — one run.

Real text, real vectors: NFCorpus abstracts cut into 50-word windows (100,000 of them, spread
over all 3,633 abstracts, one media item per abstract), embedded by the configured embedder
(cached on disk after the first run: see bench/_corpus.py). Queries are the 324 NFCorpus dev
questions. Load first, index after: rows go in by binary COPY with the indexes dropped,
then GIN + HNSW are built with maintenance_work_mem = 1GB (HNSW over 100k: 172 s with the
default, 26–44 s with 1GB — STACK-NOTES).

Measured per query, server-side (this process, the embedded Postgres on the same machine):
  embed     the query embedding alone (the model's cost; search() caches it per query text)
  hybrid    core.search.search(mode="hybrid") with everything on — fingerprint, spelling,
            synonyms, HNSW + full text, fusion, grouping, the sentence locator over each item's
            timed transcript lines (15 words each at 150 words a minute), snippets — result cache off
            (and once more without the locator: links at the best chunk's start)
  filtered  the same with a date filter that keeps ~10% of the items (iterative HNSW scan)
  vector / keyword   one retriever's SQL alone
  recall@10 HNSW top-10 (ef_search as configured) against an exact sequential scan

    python bench/search_latency.py [--queries 200] [--sizes 10000,100000]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def fake_youtube_id(doc_id: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    digest = hashlib.sha256(doc_id.encode()).digest()
    return "".join(alphabet[b % 64] for b in digest[:11])


def load_items(session, docs) -> tuple[list[int], int]:
    from sqlalchemy import insert

    from core.catalog import get_or_create_source
    from core.models import MediaItem

    src = get_or_create_source(session, "youtube", "bench", "bench://nfcorpus")
    start = datetime(2018, 1, 1, tzinfo=timezone.utc)
    rows = [
        {
            "source_id": src.id, "external_id": d.id, "title": d.title or d.id, "status": "indexed",
            "url": f"https://www.youtube.com/watch?v={fake_youtube_id(d.id)}",
            # Spread over 2018–2025 so date filters select real fractions of the archive.
            "published_at": start + timedelta(days=(i * 7919) % 2900),
            "duration_s": 600.0 + (i * 104729) % 7200,
        }
        for i, d in enumerate(docs)
    ]
    # A bulk load into a fresh database: one multi-row INSERT, not thousands of catalog upserts.
    ids = list(session.scalars(insert(MediaItem).returning(MediaItem.id), rows))
    return ids, src.id


def copy_chunks(session, rows: list[tuple], space_id: int) -> float:
    """Binary COPY (0.8 s for 100k × 384 here, against 11.6 s as text)."""
    t = time.perf_counter()
    dbapi = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cur:
        with cur.copy(
            "COPY chunks (media_item_id, idx, start_s, end_s, text, embedding, embedding_space_id) FROM STDIN WITH (FORMAT BINARY)"
        ) as cp:
            cp.set_types(["int4", "int4", "float8", "float8", "text", "vector", "int2"])
            for r in rows:
                cp.write_row((*r, space_id))
    return time.perf_counter() - t


def copy_segments(session, ids: list[int], segments) -> int:
    """The documents' timed lines into transcript_segments, by binary COPY."""
    dbapi = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cur:
        with cur.copy(
            "COPY transcript_segments (media_item_id, idx, start_s, end_s, text, engine) FROM STDIN WITH (FORMAT BINARY)"
        ) as cp:
            cp.set_types(["int4", "int4", "float8", "float8", "text", "text"])
            for sg in segments:
                cp.write_row((ids[sg.doc], sg.idx, sg.start_s, sg.end_s, sg.text, "captions"))
    session.execute(__import__("sqlalchemy").text("ANALYZE transcript_segments"))
    return len(segments)


def drop_indexes(session, space_id: int) -> None:
    from sqlalchemy import text

    session.execute(text(f"DROP INDEX IF EXISTS ix_chunks_hnsw_space_{int(space_id)}"))
    session.execute(text("DROP INDEX IF EXISTS ix_chunks_tsv"))


def build_indexes(session, embedder) -> tuple[float, float]:
    from sqlalchemy import text

    from core.embeddings import ensure_space

    session.execute(text("SET maintenance_work_mem = '1GB'"))
    t = time.perf_counter()
    session.execute(text("CREATE INDEX IF NOT EXISTS ix_chunks_tsv ON chunks USING gin (tsv)"))
    gin_s = time.perf_counter() - t
    t = time.perf_counter()
    ensure_space(session, embedder)  # creates the space's partial HNSW index
    hnsw_s = time.perf_counter() - t
    session.execute(text("RESET maintenance_work_mem"))
    session.execute(text("VACUUM ANALYZE chunks") if False else text("ANALYZE chunks"))
    session.execute(text("ANALYZE media_items"))
    return gin_s, hnsw_s


def _without_locator(run) -> float:
    """ms of one search() with links at the best chunk's start (no sentence locator): the cost
    of the locator is the difference to the "all on" row, measured in the same run."""
    from core.search import shaping

    real = shaping.locate
    shaping.locate = lambda _session, windows, *_a, **_k: [None] * len(windows)
    try:
        t = time.perf_counter()
        run()
        return (time.perf_counter() - t) * 1000
    finally:
        shaping.locate = real


def measure(session, embedder, queries: list[str], qvecs: np.ndarray, space, cfg) -> dict[str, list[float]]:
    from core.search import SearchFilters, cache, search
    from core.search.engine import _ef_search
    from core.search.preprocess import get_synonyms, prepare, vocabulary
    from core.search.retrieval import keyword_candidates, keyword_stats, vector_candidates

    out: dict[str, list[float]] = {k: [] for k in ("hybrid", "chunk_links", "filtered", "vector", "keyword", "recall",
                                                   "recall_ties", "results_filtered")}
    stages: dict[str, list[float]] = {}
    version = cache.content_version(session)
    vocab = vocabulary(session, version)  # built once per content version, before the clock starts
    t = time.perf_counter()
    keyword_stats(session, version)
    print(f"  (per content version, once: vocabulary + keyword statistics built in {time.perf_counter() - t:.1f} s)")
    syn = get_synonyms(session)
    # Warm-up: first calls pay for plans and buffers.
    for q in queries[:10]:
        search(session, q, log=False, use_cache=False, embedder=embedder, config=cfg)
    session.rollback()
    filt = SearchFilters(date_from=date(2020, 1, 1), date_to=date(2020, 10, 1))  # ≈ 10% of items
    for q, qv in zip(queries, qvecs):
        t = time.perf_counter()
        r = search(session, q, log=False, use_cache=False, embedder=embedder, config=cfg)
        out["hybrid"].append((time.perf_counter() - t) * 1000)
        for stage, ms in r.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
        out["chunk_links"].append(_without_locator(lambda: search(session, q, log=False, use_cache=False, embedder=embedder,
                                                                  config=cfg)))
        t = time.perf_counter()
        r = search(session, q, log=False, use_cache=False, embedder=embedder, filters=filt, config=cfg)
        out["filtered"].append((time.perf_counter() - t) * 1000)
        out["results_filtered"].append(len(r.groups))
        t = time.perf_counter()
        approx = vector_candidates(session, qv, space_id=space[0], dim=space[1], limit=10, ef_search=_ef_search(cfg, version))
        out["vector"].append((time.perf_counter() - t) * 1000)
        p = prepare(q, vocab=vocab, synonyms=syn)
        t = time.perf_counter()
        keyword_candidates(session, p.keyword, limit=cfg.candidates, strict=p.operators, stats=keyword_stats(session, version))
        out["keyword"].append((time.perf_counter() - t) * 1000)
        exact = vector_candidates(session, qv, space_id=space[0], dim=space[1], limit=10, exact=True)
        truth = {c.chunk_id for c in exact}
        out["recall"].append(len(truth & {c.chunk_id for c in approx}) / max(len(truth), 1))
        # Ties: the windows overlap (stride 6 words) and some texts repeat, so several chunks can sit
        # at the same distance as the 10th true neighbour; any of them is an equally right answer.
        tenth = min(c.score for c in exact) if exact else 1.0
        out["recall_ties"].append(sum(1 for c in approx if c.score >= tenth - 1e-6) / max(len(truth), 1))
        session.rollback()
    out["stages"] = {k: statistics.median(v) for k, v in stages.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=200, help="NFCorpus dev questions timed at each size")
    ap.add_argument("--sizes", default="10000,100000", help="chunk counts, ascending")
    ap.add_argument("--ef-search", type=int, help="override FusionConfig.ef_search")
    ap.add_argument("--candidates", type=int, help="override FusionConfig.candidates")
    ap.add_argument("--smoke", action="store_true",
                    help="reuse the relevance benchmark's 8,980 chunks (sizes ≤ 8980) to check the script quickly")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    _corpus.use_scratch_database()
    from sqlalchemy import text

    from core.db import session_scope
    from core.embeddings import ensure_space, get_embedder
    from core.search.engine import _embed_query

    embedder = get_embedder()
    from dataclasses import replace

    from core.search.fusion import FusionConfig

    cfg = FusionConfig()
    if args.ef_search:
        cfg = replace(cfg, ef_search=args.ef_search)
    if args.candidates:
        cfg = replace(cfg, candidates=args.candidates)
    if args.smoke:
        docs, chunks = _corpus.relevance_chunks()
        vectors = _corpus.embed_cached(embedder, [c.text for c in chunks], "nfcorpus-relevance")
    else:
        docs, chunks = _corpus.latency_chunks(max(sizes))
        vectors = _corpus.embed_cached(embedder, [c.text for c in chunks], "nfcorpus-latency-100k")
    qtexts, _ = _corpus.nfcorpus_queries("dev")
    queries = [qtexts[k] for k in sorted(qtexts)][: args.queries]

    qvecs = np.stack([_embed_query(embedder, q) for q in queries])  # also warms search()'s query-vector cache
    embed_each = []
    for q in queries[:50]:
        t = time.perf_counter()
        embedder.embed_query(q)
        embed_each.append((time.perf_counter() - t) * 1000)

    rng_order = np.random.default_rng(7).permutation(len(chunks))  # which chunks make up each size
    results = {}
    with session_scope() as session:
        ids, _ = load_items(session, docs)
        segments = copy_segments(session, ids, _corpus.latency_segments(docs))
        print(f"{segments:,} transcript lines (15 words each) for the sentence locator", flush=True)
        space = ensure_space(session, embedder)
        session.commit()
        loaded = 0
        for size in sizes:
            drop_indexes(session, space.id)
            take = np.sort(rng_order[loaded:size])
            # Chunk times follow the speech pace of the transcript lines (_corpus.latency_segments),
            # so the sentence locator reads each hit window's own lines.
            pace, (width, stride) = _corpus.SPEECH_WORDS_PER_S, ((120, 100) if args.smoke else (50, 6))
            rows = [(ids[chunks[i].doc], chunks[i].idx, chunks[i].idx * stride / pace,
                     (chunks[i].idx * stride + width) / pace, chunks[i].text, vectors[i]) for i in take]
            copy_s = copy_chunks(session, rows, space.id)
            loaded = size
            gin_s, hnsw_s = build_indexes(session, embedder)
            session.commit()
            n = session.execute(text("SELECT count(*) FROM chunks")).scalar_one()
            print(f"{n:>7,} chunks: COPY {copy_s:5.1f} s · GIN {gin_s:5.1f} s · HNSW {hnsw_s:5.1f} s (maintenance_work_mem 1GB)", flush=True)
            results[size] = measure(session, embedder, queries, qvecs, (space.id, space.dim), cfg)

    load = os.getloadavg()
    print(f"\nembedder {embedder.provider}/{embedder.model} ({embedder.dim}-d) · {len(queries)} NFCorpus dev queries · "
          f"ef_search {cfg.ef_search} (100 up to 20k chunks) · candidates {cfg.candidates} · {os.cpu_count()} CPUs · load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    print(f"query embedding: p50 {statistics.median(embed_each):.1f} ms · p95 {pct(embed_each, 0.95):.1f} ms "
          f"(not in the rows below: search() caches query vectors, and the model is swappable)\n")
    header = f"{'':28}" + "".join(f"{f'{s:,} chunks':>22}" for s in sizes)
    print(header)
    print(f"{'':28}" + "".join(f"{'p50 ms':>11}{'p95 ms':>11}" for _ in sizes))
    for key, label in (("hybrid", "search() hybrid, all on"), ("chunk_links", "  without sentence locator"),
                       ("filtered", "  + date filter (~10%)"),
                       ("vector", "vector SQL (HNSW, k=10)"), ("keyword", f"keyword SQL ({cfg.candidates})")):
        print(f"{label:28}" + "".join(f"{statistics.median(results[s][key]):11.1f}{pct(results[s][key], 0.95):11.1f}" for s in sizes))
    print("search() stages (p50 ms):")
    for stage in results[sizes[0]]["stages"]:
        print(f"{'  ' + stage:28}" + "".join(f"{results[s]['stages'].get(stage, 0.0):11.1f}{'':11}" for s in sizes))
    print(f"{'HNSW recall@10 vs exact':28}" + "".join(f"{statistics.fmean(results[s]['recall']):22.3f}" for s in sizes))
    print(f"{'  counting distance ties':28}" + "".join(f"{statistics.fmean(results[s]['recall_ties']):22.3f}" for s in sizes))
    print(f"{'filtered: videos returned':28}" + "".join(f"{statistics.fmean(results[s]['results_filtered']):22.1f}" for s in sizes))
    print(f"\ntarget: p95 ≤ 50 ms at 100k (server-side, query vector cached), recall@10 ≥ 0.95 → "
          f"p95 {pct(results[sizes[-1]]['hybrid'], 0.95):.1f} ms, recall {statistics.fmean(results[sizes[-1]]['recall']):.3f} "
          f"({statistics.fmean(results[sizes[-1]]['recall_ties']):.3f} counting ties)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
