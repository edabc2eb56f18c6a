"""Relevance benchmark: nDCG@10, recall@10 and MRR@10 of keyword-only, vector-only, hybrid and
hybrid+rerank search, with the latency of each, side by side — on two sets:

1. NFCorpus (BEIR), dev split: 324 nutrition questions, graded judgments over 3,633 abstracts.
   Each abstract is one media item cut into ~120-word chunks; a video group = a document.
2. The real Chaffee transcripts (../shared/data/transcripts, two long interviews, ≈ 3.5 h):
   100 questions written by reading the SRTs (blind: no search was run while labelling), each
   with the time span(s) that answer it (bench/chaffee_queries.jsonl). A moment counts as relevant when it overlaps an answer span
   of the same video; each span counts once. Thumbs-up/down feedback stored by the app (the
   `feedback` table of the configured database, with --feedback) adds judgments.

Fusion is the convex combination of cosine and keyword share (core/search/fusion.py); its one
knob, alpha (the vector share), is chosen on 300 NFCorpus *train* queries (disjoint from dev)
together with the Chaffee questions, by two-fold cross-validation: each reported Chaffee
question runs with the alpha chosen on the other half, so no reported figure was tuned on
itself. Reciprocal rank fusion is scored on the train queries for comparison. Every figure
goes through core.search.search(), the same code the app runs, against a throw-away
embedded Postgres.

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

    from core.catalog import get_or_create_source
    from core.embeddings import ensure_space
    from core.models import Chunk, MediaItem

    space = ensure_space(session, embedder)
    src = get_or_create_source(session, kind, f"bench {kind}", f"bench://{kind}")
    ids = []
    for start in range(0, len(items), 2000):  # a bulk load into a fresh database: multi-row INSERTs
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


def load_nfcorpus(session, embedder) -> dict[int, str]:
    """Every NFCorpus abstract as one item of ~120-word chunks; returns item id → document id."""
    docs, chunks = _corpus.relevance_chunks()
    vectors = _corpus.embed_cached(embedder, [c.text for c in chunks], "nfcorpus-relevance")
    reset_tables(session)
    items = [{"external_id": d.id, "title": d.title or d.id, "url": f"https://nutritionfacts.example/{d.id}",
              "duration_s": float(len(d.text.split()) / 2.5)} for d in docs]
    rows = [(c.doc, c.idx, c.idx * 40.0, c.idx * 40.0 + 48.0, c.text) for c in chunks]
    ids = load_items(session, embedder, "upload", items, rows, vectors)
    session.commit()
    return {iid: d.id for iid, d in zip(ids, docs)}


def eval_nfcorpus(session, embedder, cfg, args, item_to_doc) -> tuple[dict[str, Scores], int]:
    from core.search import search

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
    return label_rerank_rows(results, args.rerank_limit, len(qids)), len(qids)


def label_rerank_rows(results: dict[str, Scores], limit: int, total: int) -> dict[str, Scores]:
    """When only the first `limit` queries were reranked, add hybrid over the same queries so the
    two rows compare like with like."""
    if "hybrid+rerank" in results and limit and limit < total:
        h = results["hybrid"]
        results[f"hybrid (first {limit})"] = Scores(h.ndcg[:limit], h.recall[:limit], h.mrr[:limit], h.ms[:limit])
        results[f"hybrid+rerank ({limit})"] = results.pop("hybrid+rerank")
    return results


def cli_config(args):
    """FusionConfig defaults with the knobs given on the command line."""
    from core.search.fusion import FusionConfig

    overrides = {"method": args.method, "alpha": args.alpha, "keyword_weight": args.keyword_weight, "rrf_k": args.rrf_k}
    return replace(FusionConfig(), **{k: v for k, v in overrides.items() if v is not None})


ALPHAS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # vector shares tried: 0.30 … 0.95


def nfcorpus_train_curve(session, embedder, item_to_doc, args) -> dict[float, float]:
    """NFCorpus *train* nDCG@10 of the convex fusion at each alpha (never a reported query).

    Retrieval and rescoring run once per query; the grid only re-fuses, ranking documents by
    their best chunk exactly as search() does. Reciprocal rank fusion is scored on the same
    queries (keyword weight × rrf_k grid) and printed for comparison.
    """
    from core.search.engine import _embed_query, _space
    from core.search.fusion import FusionConfig, convex, rrf
    from core.search.preprocess import get_synonyms, prepare, vocabulary
    from core.search import cache
    from core.search.retrieval import keyword_candidates, keyword_query, keyword_stats, rescore, vector_candidates
    from sqlalchemy import text

    n_candidates = FusionConfig().candidates
    queries, qrels = _corpus.nfcorpus_queries("train")
    dev_q, _ = _corpus.nfcorpus_queries("dev")
    qids = [q for q in sorted(queries) if q not in dev_q][:: max(1, len(queries) // args.tune_queries)][: args.tune_queries]
    chunk_doc = dict(session.execute(text("SELECT id, media_item_id FROM chunks")).all())
    version = cache.content_version(session)
    vocab, syn = vocabulary(session, version), get_synonyms(session)
    sid, dim = _space(session, embedder)
    retrieved = []
    for qid in qids:
        p = prepare(queries[qid], vocab=vocab, synonyms=syn)
        qv = _embed_query(embedder, p.cleaned)
        kq = keyword_query(session, p.keyword, strict=p.operators, stats=keyword_stats(session, version))
        v = vector_candidates(session, qv, space_id=sid, dim=dim, limit=n_candidates)
        kw = keyword_candidates(session, kq, limit=n_candidates)
        scores = rescore(session, sorted({c.chunk_id for c in v + kw}), kq, qv, space_id=sid, dim=dim)
        retrieved.append((qid, v, kw, scores))
    session.rollback()

    def mean_ndcg(fuse) -> float:
        total = 0.0
        for qid, v, kw, scores in retrieved:
            seen: list[str] = []
            for cid, _ in fuse(v, kw, scores):
                d = item_to_doc[chunk_doc[cid]]
                if d not in seen:
                    seen.append(d)
                if len(seen) == 10:
                    break
            rel = qrels[qid]
            total += ndcg_at([float(rel.get(d, 0)) for d in seen], list(map(float, rel.values())))
        return total / len(retrieved)

    def by_rrf(weights, rrf_k):
        return mean_ndcg(lambda v, kw, _: rrf({"vector": v, "keyword": kw}, weights, rrf_k))

    curve = {a: mean_ndcg(lambda v, kw, scores, a=a: convex(scores, a)) for a in ALPHAS}
    rrf_scores = {(w, k): by_rrf({"vector": 1.0, "keyword": w}, k)
                  for w in (0.25, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5) for k in (10, 30, 60, 100)}
    best_rrf = max(rrf_scores, key=rrf_scores.get)
    print(f"NFCorpus train, {len(retrieved)} queries, nDCG@10: vector only {by_rrf({'vector': 1.0}, 60):.4f}, "
          f"keyword only {by_rrf({'keyword': 1.0}, 60):.4f}; best rrf (keyword_weight={best_rrf[0]}, "
          f"rrf_k={best_rrf[1]}) {rrf_scores[best_rrf]:.4f}; best convex {max(curve.values()):.4f}")
    return curve


def choose_alpha(nf_curve: dict[float, float], chaffee_curve: dict[float, list[float]], rows: list[int]) -> float:
    """The alpha with the best mean of the two domains' tuning nDCG@10 (NFCorpus train queries,
    and the given Chaffee questions): one setting for formal text and for spoken transcripts."""
    def objective(a: float) -> float:
        return 0.5 * nf_curve[a] + 0.5 * statistics.fmean(chaffee_curve[a][i] for i in rows)

    return max(ALPHAS, key=lambda a: (round(objective(a), 6), -a))


# ---------------------------------------------------------------------------------------------
# Chaffee transcripts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    video: str
    start: float
    end: float


def _labelled_rows() -> list[dict]:
    return [json.loads(line) for line in QUERIES_FILE.read_text().splitlines() if line.strip()]


def chaffee_labels() -> list[tuple[str, str, list[Span]]]:
    return [(q["id"], q["query"], [Span(a["video"], float(a["start"]), float(a["end"])) for a in q["answers"]])
            for q in _labelled_rows()]


def chaffee_styles() -> dict[str, str]:
    """Query id → how it is phrased: "question", "keywords" (1–4 words) or "exact" (a rare term)."""
    return {q["id"]: q.get("style", "question") for q in _labelled_rows()}


def print_margin(results: dict[str, Scores], rounds: int = 2000) -> None:
    """Hybrid minus the better single method, nDCG@10, with a paired bootstrap 95% interval over
    the queries: how much of the margin could be the luck of which questions were written."""
    import random

    best = max(("keyword", "vector"), key=lambda m: statistics.fmean(results[m].ndcg))
    diffs = [h - b for h, b in zip(results["hybrid"].ndcg, results[best].ndcg)]
    rng = random.Random(0)
    means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(rounds))
    lo, hi = means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]
    print(f"  hybrid − {best}: {statistics.fmean(diffs):+.4f} nDCG@10 (95% bootstrap interval {lo:+.4f} … {hi:+.4f}; "
          f"hybrid better on {sum(d > 0 for d in diffs)} queries, worse on {sum(d < 0 for d in diffs)})")


def print_by_style(results: dict[str, Scores], ids: list[str]) -> None:
    """nDCG@10 per query style: where each method wins (keywords favour the keyword index,
    paraphrased questions the vectors)."""
    styles = chaffee_styles()
    results = {m: results[m] for m in ("keyword", "vector", "hybrid") if m in results}  # the rows over every query
    print("  nDCG@10 by query style: " + "  ".join(f"{m}" for m in results))
    for style in sorted({styles[q] for q in ids}):
        idx = [i for i, q in enumerate(ids) if styles[q] == style]
        cells = "  ".join(f"{statistics.fmean(results[m].ndcg[i] for i in idx):.4f}" for m in results)
        print(f"    {style:<9} ({len(idx):>3} q)  {cells}")


def app_feedback_judgments(videos: set[str]) -> list:
    """Judgments users gave in the app (its configured database), for the transcript videos."""
    from core.db import session_scope
    from core.search import judgments

    with session_scope() as s:
        return [j for j in judgments(s) if j.external_id in videos]


def load_chaffee(session, embedder, *, distractors: bool = False) -> dict[int, str]:
    """The transcripts as YouTube items (pipeline chunking); returns item id → video id."""
    from core.chunking import chunk_segments
    from core.transcribe.captions import parse_caption_file

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
    return item_to_video


def labelled_questions(feedback, args) -> list[tuple[str, str, list[Span]]]:
    """The labelled questions; a thumbs-up moment for the same question text is one more answer span."""
    labels = chaffee_labels()
    for j in feedback:
        for i, (qid, q, spans) in enumerate(labels):
            if j.relevant and j.query.strip().lower() == q.strip().lower():
                labels[i] = (qid, q, spans + [Span(j.external_id, j.start_s, j.end_s)])
    return labels[: args.limit] if args.limit else labels


def eval_chaffee(session, embedder, labels, item_to_video, methods, cfg_for, rerank_limit: int = 0) -> dict[str, Scores]:
    """Moment-level scores of each method; cfg_for(question index) is the fusion config it runs with."""
    from core.search import search

    results = {m: Scores.empty() for m in methods}
    for method in results:
        todo = labels[:rerank_limit] if method == "hybrid+rerank" and rerank_limit else labels
        for n, (qid, q, spans) in enumerate(todo):
            t = time.perf_counter()
            r = search(session, q, k=10, mode=method, log=False, use_cache=False, embedder=embedder, config=cfg_for(n),
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
    return results


def tune(session, embedder, labels, args):
    """Cross-validated choice of alpha. Returns (the app default, cfg_for(question index)).

    The NFCorpus train curve and the plain Chaffee curve (per question) are measured once per
    alpha. The default is chosen on NFCorpus train + all Chaffee questions; each *reported*
    Chaffee question runs with the alpha chosen without it (two folds: odd/even position), so
    the Chaffee figures are out-of-fold and NFCorpus dev was never seen.
    """
    from core.search.fusion import FusionConfig

    base = replace(FusionConfig(), method="convex")
    item_to_video = load_chaffee(session, embedder)
    chaffee_curve = {a: eval_chaffee(session, embedder, labels, item_to_video, ["hybrid"],
                                     lambda _, a=a: replace(base, alpha=a))["hybrid"].ndcg for a in ALPHAS}
    item_to_doc = load_nfcorpus(session, embedder)
    nf_curve = nfcorpus_train_curve(session, embedder, item_to_doc, args)
    everyone = list(range(len(labels)))
    default = choose_alpha(nf_curve, chaffee_curve, everyone)
    per_fold = {f: choose_alpha(nf_curve, chaffee_curve, [i for i in everyone if i % 2 != f]) for f in (0, 1)}
    print("convex fusion, nDCG@10 by alpha (vector share):")
    print("  alpha          " + " ".join(f"{a:6.2f}" for a in ALPHAS))
    print("  NFCorpus train " + " ".join(f"{nf_curve[a]:6.4f}" for a in ALPHAS))
    print("  Chaffee (all)  " + " ".join(f"{statistics.fmean(chaffee_curve[a]):6.4f}" for a in ALPHAS))
    print(f"  chosen: app default alpha={default} (NFCorpus train + all Chaffee); for the reported Chaffee figures "
          f"alpha={per_fold[0]} on even positions and alpha={per_fold[1]} on odd ones, each chosen on the other half")
    return replace(base, alpha=default), lambda i: replace(base, alpha=per_fold[i % 2]), item_to_doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-rerank", dest="rerank", action="store_false", help="skip the cross-encoder column")
    ap.add_argument("--rerank-limit", type=int, default=0, help="rerank only the first N queries of each set (0 = all)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries of each set (smoke runs)")
    ap.add_argument("--tune-queries", type=int, default=300, help="NFCorpus train queries used to tune the fusion")
    ap.add_argument("--no-tune", action="store_true", help="use FusionConfig defaults as they are")
    ap.add_argument("--method", choices=("convex", "rrf"), help="with --no-tune: this fusion function")
    ap.add_argument("--alpha", type=float, help="with --no-tune: this vector share (convex)")
    ap.add_argument("--keyword-weight", type=float, help="with --no-tune: this keyword weight (rrf)")
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

    embedder = get_embedder()
    print(f"embedder: {embedder.provider}/{embedder.model} ({type(embedder).__name__}, {embedder.dim}-d); "
          f"{os.cpu_count()} CPUs")
    labels = labelled_questions(feedback, args)
    with session_scope() as session:
        item_to_doc = None
        if args.no_tune:
            cfg = cli_config(args)
            cfg_for = lambda _: cfg  # noqa: E731
        else:
            cfg, cfg_for, item_to_doc = tune(session, embedder, labels, args)
        if args.only in (None, "nfcorpus"):
            res, n = eval_nfcorpus(session, embedder, cfg, args, item_to_doc or load_nfcorpus(session, embedder))
            print_table("NFCorpus dev (doc-level: video group = abstract)", n, res)
            print_margin(res)
        if args.only in (None, "chaffee"):
            methods = [m for m in METHODS if m != "hybrid+rerank" or args.rerank]
            ids = [qid for qid, _, _ in labels]
            res = eval_chaffee(session, embedder, labels, load_chaffee(session, embedder), methods, cfg_for, args.rerank_limit)
            print_table("Chaffee transcripts (moment-level, labelled spans)", len(labels),
                        label_rerank_rows(res, args.rerank_limit, len(labels)))
            print_margin(res)
            print_by_style(res, ids)
            hard = eval_chaffee(session, embedder, labels, load_chaffee(session, embedder, distractors=True), methods, cfg_for,
                                args.rerank_limit)
            print_table("Chaffee transcripts + 3,633 NFCorpus abstracts as distractor items", len(labels),
                        label_rerank_rows(hard, args.rerank_limit, len(labels)))
            print_margin(hard)
            print_by_style(hard, ids)
            if args.per_query:
                for i, (qid, q, _) in enumerate(labels):
                    row = "  ".join(f"{m[:7]} {res[m].ndcg[i]:.2f}" for m in res if i < len(res[m].ndcg))
                    print(f"  {qid} {row}  {q}")
    knobs = f"alpha={cfg.alpha}" if cfg.method == "convex" else f"keyword_weight={cfg.keyword_weight} rrf_k={cfg.rrf_k}"
    print(f"\nfusion used: {cfg.method} {knobs} candidates={cfg.candidates}; rerank = {cfg.reranker} "
          f"over the top {cfg.rerank_top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
