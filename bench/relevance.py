"""Relevance benchmark: nDCG@10, recall@10 and MRR@10 of keyword-only, vector-only, hybrid and
hybrid+rerank search, with the latency of each, side by side — on two sets:

1. NFCorpus (BEIR), dev split: 324 nutrition questions, graded judgments over 3,633 abstracts.
   Each abstract is one media item cut into ~120-word chunks; a video group = a document.
2. The real Chaffee transcripts (../shared/data/transcripts, two long interviews, ≈ 3.5 h):
   35 questions written by reading the SRTs, each with the time span(s) that answer it
   (bench/chaffee_queries.jsonl). A moment counts as relevant when it overlaps an answer span
   of the same video; each span counts once. Thumbs-up/down feedback stored by the app (the
   `feedback` table of the configured database, with --feedback) adds judgments.

Fusion weights are tuned on a sample of NFCorpus *train* queries (disjoint from dev); the
Chaffee set is never used for tuning. Every figure goes through core.search.search(), the
same code the app runs, against a throw-away embedded Postgres.

    python bench/relevance.py                 # everything (first run embeds ≈ 9k chunks; cached)
    python bench/relevance.py --no-rerank     # skip the slow cross-encoder column
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402

METHODS = ("keyword", "vector", "hybrid", "hybrid+rerank")
QUERIES_FILE = Path(__file__).resolve().parent / "chaffee_queries.jsonl"


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def ndcg_at(gains: list[float], ideal: list[float], k: int = 10) -> float:
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(ideal, reverse=True)[:k]))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at(gains: list[float], k: int = 10) -> float:
    return next((1.0 / (i + 1) for i, g in enumerate(gains[:k]) if g > 0), 0.0)


@dataclass
class Scores:
    ndcg: list[float]
    recall: list[float]
    mrr: list[float]
    ms: list[float]

    @classmethod
    def empty(cls) -> "Scores":
        return cls([], [], [], [])

    def row(self) -> tuple[float, float, float, float, float]:
        ms = sorted(self.ms)
        p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))] if ms else 0.0
        return (statistics.fmean(self.ndcg), statistics.fmean(self.recall), statistics.fmean(self.mrr),
                statistics.median(ms) if ms else 0.0, p95)


def print_table(title: str, n: int, results: dict[str, Scores]) -> None:
    print(f"\n{title} — {n} queries")
    print(f"  {'method':<20} {'nDCG@10':>8} {'R@10':>7} {'MRR@10':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for method, scores in results.items():
        nd, rc, mr, p50, p95 = scores.row()
        print(f"  {method:<20} {nd:8.4f} {rc:7.4f} {mr:7.4f} {p50:8.1f} {p95:8.1f}")


# ---------------------------------------------------------------------------------------------
# Loading a corpus into the scratch database
# ---------------------------------------------------------------------------------------------


def reset_tables(session) -> None:
    from sqlalchemy import text

    session.execute(text("TRUNCATE feedback, query_log, chunks, transcript_segments, media_items, sources RESTART IDENTITY CASCADE"))
    from core.search import cache

    cache.invalidate(session)


def load_items(session, embedder, kind: str, items: list[dict], chunk_rows: list[tuple[int, int, float, float, str]], vectors) -> list[int]:
    """items: [{external_id,title,url,published_at,duration_s}], chunk_rows: (item index, idx, start, end, text)."""
    from sqlalchemy import insert

    from core.embeddings import ensure_space
    from core.models import Chunk, MediaItem, Source

    space = ensure_space(session, embedder)
    src = Source(kind=kind, name=f"bench {kind}", url=f"bench://{kind}")
    session.add(src)
    session.flush()
    ids = []
    for start in range(0, len(items), 2000):
        rows = [{**it, "source_id": src.id, "status": "indexed"} for it in items[start : start + 2000]]
        ids += list(session.scalars(insert(MediaItem).returning(MediaItem.id), rows))
    for start in range(0, len(chunk_rows), 2000):
        batch = chunk_rows[start : start + 2000]
        session.execute(
            insert(Chunk),
            [
                {"media_item_id": ids[i], "idx": idx, "start_s": s, "end_s": e, "text": t,
                 "embedding": vectors[start + n], "embedding_space_id": space.id}
                for n, (i, idx, s, e, t) in enumerate(batch)
            ],
        )
    session.execute(__import__("sqlalchemy").text("ANALYZE chunks; ANALYZE media_items"))
    return ids


# ---------------------------------------------------------------------------------------------
# NFCorpus
# ---------------------------------------------------------------------------------------------


def nfcorpus_doc_ranking(response, item_to_doc: dict[int, str]) -> list[str]:
    return [item_to_doc[g.media_item_id] for g in response.groups]


def run_nfcorpus(session, embedder, args) -> tuple[dict[str, Scores], int, object]:
    from core.search import search

    docs, chunks = _corpus.relevance_chunks()
    vectors = _corpus.embed_cached(embedder, [c.text for c in chunks], "nfcorpus-relevance")
    reset_tables(session)
    items = [{"external_id": d.id, "title": d.title or d.id, "url": f"https://nutritionfacts.example/{d.id}",
              "duration_s": float(len(d.text.split()) / 2.5)} for d in docs]
    rows = [(c.doc, c.idx, c.idx * 40.0, c.idx * 40.0 + 48.0, c.text) for c in chunks]
    ids = load_items(session, embedder, "upload", items, rows, vectors)
    session.commit()
    item_to_doc = {iid: d.id for iid, d in zip(ids, docs)}

    cfg = tune_fusion(session, embedder, item_to_doc, args)
    queries, qrels = _corpus.nfcorpus_queries("dev")
    qids = sorted(queries)[: args.limit] if args.limit else sorted(queries)
    results = {m: Scores.empty() for m in METHODS if m != "hybrid+rerank" or args.rerank}
    for method in results:
        mq = qids[: args.rerank_limit] if method == "hybrid+rerank" and args.rerank_limit else qids
        for qid in mq:
            t = time.perf_counter()
            r = search(session, queries[qid], k=10, mode=method, log=False, use_cache=False, embedder=embedder, config=cfg)
            results[method].ms.append((time.perf_counter() - t) * 1000)
            ranked = nfcorpus_doc_ranking(r, item_to_doc)
            rel = qrels[qid]
            gains = [float(rel.get(d, 0)) for d in ranked]
            results[method].ndcg.append(ndcg_at(gains, list(map(float, rel.values()))))
            results[method].recall.append(len({d for d in ranked[:10] if d in rel}) / len(rel))
            results[method].mrr.append(mrr_at(gains))
        session.rollback()
    if "hybrid+rerank" in results and args.rerank_limit and args.rerank_limit < len(qids):
        n, h = args.rerank_limit, results["hybrid"]
        # The same first N queries without the reranker, so the two rows compare like with like.
        results[f"hybrid (first {n})"] = Scores(h.ndcg[:n], h.recall[:n], h.mrr[:n], h.ms[:n])
        results[f"hybrid+rerank ({n})"] = results.pop("hybrid+rerank")
    return results, len(qids), cfg


def tune_fusion(session, embedder, item_to_doc, args):
    """Pick keyword weight and rrf_k on NFCorpus train queries (never the reported dev split).

    Retrieval runs once per query; the grid only re-fuses the two candidate lists and ranks
    documents by their best chunk, exactly as search() does.
    """
    from core.search.engine import _embed_query, _space
    from core.search.fusion import FusionConfig, rrf
    from core.search.preprocess import get_synonyms, prepare, vocabulary
    from core.search import cache
    from core.search.retrieval import keyword_candidates, keyword_stats, vector_candidates
    from sqlalchemy import text

    base = FusionConfig()
    if args.no_tune:
        return replace(base, **{k: v for k, v in (("keyword_weight", args.keyword_weight), ("rrf_k", args.rrf_k)) if v is not None})
    queries, qrels = _corpus.nfcorpus_queries("train")
    dev_q, _ = _corpus.nfcorpus_queries("dev")
    qids = [q for q in sorted(queries) if q not in dev_q][:: max(1, len(queries) // args.tune_queries)][: args.tune_queries]
    chunk_doc = dict(session.execute(text("SELECT id, media_item_id FROM chunks")).all())
    version = cache.content_version(session)
    vocab, syn = vocabulary(session, version), get_synonyms(session)
    sid, dim = _space(session, embedder)
    lists = []
    for qid in qids:
        p = prepare(queries[qid], vocab=vocab, synonyms=syn)
        qv = _embed_query(embedder, p.cleaned)
        v = vector_candidates(session, qv, space_id=sid, dim=dim, limit=base.candidates)
        kw = keyword_candidates(session, p.keyword, limit=base.candidates, strict=p.operators,
                                stats=keyword_stats(session, version))
        lists.append((qid, v, kw))
    session.rollback()

    def score(weights, rrf_k):
        total = 0.0
        for qid, v, kw in lists:
            fused = rrf({"vector": v, "keyword": kw}, weights, rrf_k)
            seen: list[str] = []
            for cid, _ in fused:
                d = item_to_doc[chunk_doc[cid]]
                if d not in seen:
                    seen.append(d)
                if len(seen) == 10:
                    break
            rel = qrels[qid]
            total += ndcg_at([float(rel.get(d, 0)) for d in seen], list(map(float, rel.values())))
        return total / len(lists)

    grid = [(kw_w, k) for kw_w in (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5) for k in (10, 30, 60, 100)]
    scored = [(score({"vector": 1.0, "keyword": w}, k), w, k) for w, k in grid]
    best = max(scored)
    print(f"fusion tuned on {len(lists)} NFCorpus train queries: keyword_weight={best[1]} rrf_k={best[2]} "
          f"(train nDCG@10 {best[0]:.4f}; vector only {score({'vector': 1.0, 'keyword': 0.0}, 60):.4f}, "
          f"keyword only {score({'vector': 0.0, 'keyword': 1.0}, 60):.4f}, equal weights k=60 "
          f"{score({'vector': 1.0, 'keyword': 1.0}, 60):.4f})")
    return replace(base, keyword_weight=best[1], rrf_k=best[2])


# ---------------------------------------------------------------------------------------------
# Chaffee transcripts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    video: str
    start: float
    end: float


def chaffee_labels() -> list[tuple[str, str, list[Span]]]:
    out = []
    for line in QUERIES_FILE.read_text().splitlines():
        if line.strip():
            q = json.loads(line)
            out.append((q["id"], q["query"], [Span(a["video"], float(a["start"]), float(a["end"])) for a in q["answers"]]))
    return out


def app_feedback_judgments(videos: set[str]) -> list:
    """Judgments users gave in the app (its configured database), for the transcript videos."""
    from core.db import session_scope
    from core.search import judgments

    with session_scope() as s:
        return [j for j in judgments(s) if j.external_id in videos]


def run_chaffee(session, embedder, cfg, args, feedback, *, distractors: bool = False) -> tuple[dict[str, Scores], int]:
    from core.chunking import chunk_segments
    from core.transcribe.captions import parse_caption_file
    from core.search import search

    videos = sorted(p.stem for p in _corpus.require(_corpus.TRANSCRIPTS).glob("*.srt"))
    items, rows = [], []
    for n, vid in enumerate(videos):
        segs = parse_caption_file(_corpus.TRANSCRIPTS / f"{vid}.srt")
        chunks = list(chunk_segments(segs))
        items.append({"external_id": vid, "title": f"Interview {vid}", "url": f"https://www.youtube.com/watch?v={vid}",
                      "duration_s": segs[-1].end})
        rows += [(n, c.index, c.start, c.end, c.text) for c in chunks]
    vectors = _corpus.embed_cached(embedder, [r[4] for r in rows], "chaffee-transcripts")
    reset_tables(session)
    ids = load_items(session, embedder, "youtube", items, rows, vectors)
    item_to_video = {iid: vid for iid, vid in zip(ids, videos)}
    if distractors:
        # The 2 interviews alone are easy (≈ 280 chunks): add every NFCorpus abstract as an item of
        # its own, nutrition text on the same topics, the way a real archive has 1,200 talks.
        docs, nchunks = _corpus.relevance_chunks()
        nvec = _corpus.embed_cached(embedder, [c.text for c in nchunks], "nfcorpus-relevance")
        nitems = [{"external_id": d.id, "title": d.title or d.id, "url": f"https://nutritionfacts.example/{d.id}"} for d in docs]
        nrows = [(c.doc, c.idx, c.idx * 40.0, c.idx * 40.0 + 48.0, c.text) for c in nchunks]
        for iid, d in zip(load_items(session, embedder, "upload", nitems, nrows, nvec), docs):
            item_to_video[iid] = d.id
    session.commit()

    labels = chaffee_labels()
    # Feedback: a thumbs-up moment for the same question text is one more answer span.
    for j in feedback:
        for i, (qid, q, spans) in enumerate(labels):
            if j.relevant and j.query.strip().lower() == q.strip().lower():
                labels[i] = (qid, q, spans + [Span(j.external_id, j.start_s, j.end_s)])
    if args.limit:
        labels = labels[: args.limit]

    results = {m: Scores.empty() for m in METHODS if m != "hybrid+rerank" or args.rerank}
    for method in results:
        for qid, q, spans in labels:
            t = time.perf_counter()
            r = search(session, q, k=10, mode=method, log=False, use_cache=False, embedder=embedder, config=cfg,
                       moments_per_video=10)
            results[method].ms.append((time.perf_counter() - t) * 1000)
            moments = sorted(((m.score, item_to_video[g.media_item_id], m) for g, m in r.hits()), key=lambda x: -x[0])[:10]
            found: set[int] = set()
            gains = []
            for _, vid, m in moments:
                hit = next((i for i, s in enumerate(spans) if s.video == vid and m.start_s < s.end and m.end_s > s.start and i not in found), None)
                if hit is None:
                    gains.append(0.0)
                else:
                    found.add(hit)
                    gains.append(1.0)
            results[method].ndcg.append(ndcg_at(gains, [1.0] * len(spans)))
            results[method].recall.append(len(found) / len(spans))
            results[method].mrr.append(mrr_at(gains))
        session.rollback()
    return results, len(labels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-rerank", dest="rerank", action="store_false", help="skip the cross-encoder column")
    ap.add_argument("--rerank-limit", type=int, default=0, help="rerank only the first N NFCorpus queries (0 = all)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries of each set (smoke runs)")
    ap.add_argument("--tune-queries", type=int, default=300, help="NFCorpus train queries used to tune the fusion")
    ap.add_argument("--no-tune", action="store_true", help="use FusionConfig defaults as they are")
    ap.add_argument("--keyword-weight", type=float, help="with --no-tune: this keyword weight")
    ap.add_argument("--rrf-k", type=int, help="with --no-tune: this rrf_k")
    ap.add_argument("--feedback", action="store_true", help="add thumbs-up judgments from the app's own database")
    ap.add_argument("--only", choices=("nfcorpus", "chaffee"), help="run one set")
    ap.add_argument("--per-query", action="store_true", help="Chaffee set: print each query's nDCG@10 per method")
    args = ap.parse_args(argv)

    feedback = []
    if args.feedback:  # read before switching to the scratch database
        feedback = app_feedback_judgments({p.stem for p in _corpus.TRANSCRIPTS.glob("*.srt")})
        print(f"{len(feedback)} feedback judgments from the app's database")
    _corpus.use_scratch_database()
    from core.db import session_scope
    from core.embeddings import get_embedder
    from core.search.fusion import FusionConfig

    embedder = get_embedder()
    print(f"embedder: {embedder.provider}/{embedder.model} ({type(embedder).__name__}, {embedder.dim}-d); "
          f"{os.cpu_count()} CPUs")
    cfg = FusionConfig()
    if args.keyword_weight is not None:
        cfg = replace(cfg, keyword_weight=args.keyword_weight)
    if args.rrf_k is not None:
        cfg = replace(cfg, rrf_k=args.rrf_k)
    with session_scope() as session:
        if args.only in (None, "nfcorpus"):
            res, n, cfg = run_nfcorpus(session, embedder, args)
            print_table("NFCorpus dev (doc-level: video group = abstract)", n, res)
        if args.only in (None, "chaffee"):
            res, n = run_chaffee(session, embedder, cfg, args, feedback)
            print_table("Chaffee transcripts (moment-level, labelled spans)", n, res)
            hard, _ = run_chaffee(session, embedder, cfg, args, feedback, distractors=True)
            print_table("Chaffee transcripts + 3,633 NFCorpus abstracts as distractor items", n, hard)
            if args.per_query:
                for i, (qid, q, _) in enumerate(chaffee_labels()[:n]):
                    row = "  ".join(f"{m[:7]} {res[m].ndcg[i]:.2f}" for m in res)
                    print(f"  {qid} {row}  {q}")
    print(f"\nfusion used: vector_weight={cfg.vector_weight} keyword_weight={cfg.keyword_weight} rrf_k={cfg.rrf_k} "
          f"candidates={cfg.candidates}; rerank = {cfg.reranker} over the top {cfg.rerank_top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
