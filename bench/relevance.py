"""Relevance benchmark: nDCG@10, recall@10 and MRR@10 of keyword-only, vector-only, hybrid and
hybrid+rerank search, with the latency of each, side by side — on two sets. "hybrid" is the fused
order alone; "hybrid+rerank" adds the cross-encoder over FusionConfig.rerank_top chunks, which is
what the app runs by default (core/search/rerank.py; `--rerank-top N --rerank-tokens T` try others):

1. NFCorpus (BEIR), dev split: 324 nutrition questions, graded judgments over 3,633 abstracts.
   Each abstract is one media item cut into ~120-word chunks; a video group = a document.
2. The real Chaffee transcripts (../shared/data/transcripts, two long interviews, ≈ 3.5 h):
   100 questions written by reading the SRTs (blind: no search was run while labelling), each
   with the time span(s) that answer it (bench/chaffee_queries.jsonl). A moment counts as relevant when it overlaps an answer span
   of the same video; each span counts once. Thumbs-up/down feedback stored by the app (the
   `feedback` table of the configured database, with --feedback) adds judgments.

3. The paraphrase set (bench/chaffee_paraphrase.jsonl, same format): questions written from a one-line summary of each passage by someone
   who never read the transcript. Run beside the 100-set whenever its file exists (--set picks one).
   Each transcript set runs alone and with the 3,633 NFCorpus abstracts as distractor items.

Where the links open (the sentence locator, core/search/moments.py; the transcripts' sentence
vectors are stored as the pipeline stores them, --no-sentence-vectors leaves them out so the
links are placed by the query's words alone), per transcript set:
  strict MRR@10   a moment is a hit when its *link* second (the `t=` it opens at) lies in
                  [answer start − 5 s, answer end] of an answer span of its video (each span once);
  overlap MRR@10  a hit when the moment's window (window_start_s … end_s) overlaps a span;
  nDCG@10         overlap hits, as before;
  |link − answer start|, median and 90th percentile: for each question, take the best-ranked of its
                  top-10 moments (by score, across videos) whose window overlaps an answer span, and
                  the absolute difference in seconds between its link second and that span's answer
                  start (of the spans it overlaps, the nearest). Questions with no such moment in
                  their top 10 are left out (their count is printed).
"Answer start" is the second a transcript reader (blind to search output) marked as where the
answer is first said (`answer_start` per span); a span without one uses its start. The same
figures for links at the start of each moment's best chunk (what search returned before the
locator) are printed beside them, and every row is also split into the even positions (where
the locator's constants were tuned) and the odd ones (held out).

Fusion is the convex combination of cosine and keyword share (core/search/fusion.py); its one
knob, alpha (the vector share), is chosen on 300 NFCorpus *train* queries (disjoint from dev)
together with the Chaffee questions, by two-fold cross-validation: each reported Chaffee
question runs with the alpha chosen on the other half, so no reported figure was tuned on
itself. Reciprocal rank fusion is scored on the train queries for comparison. Every figure
goes through core.search.search(), the same code the app runs, against a throw-away
embedded Postgres.

    python bench/relevance.py                 # everything (first run embeds ≈ 9k chunks; cached)
    python bench/relevance.py --no-rerank     # skip the slow cross-encoder column
    python bench/relevance.py --only chaffee --no-tune --no-rerank   # the transcript sets and their links
    python bench/relevance.py --merge-answer-starts /work/sets/chaffee_answer_starts.jsonl
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
            r = search(session, queries[qid], k=10, mode=method, log=False, use_cache=False, embedder=embedder,
                       config=for_method(cfg, method))
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


def for_method(cfg, method: str):
    """The config a column runs with: "hybrid" is the fused order alone (the reranker off, as the
    app's default has it on), "hybrid+rerank" adds the cross-encoder over cfg.rerank_top chunks."""
    return replace(cfg, rerank=False) if method == "hybrid" else cfg


def cli_config(args):
    """FusionConfig defaults with the knobs given on the command line."""
    from core.search.fusion import FusionConfig

    overrides = {"method": args.method, "alpha": args.alpha, "keyword_weight": args.keyword_weight, "rrf_k": args.rrf_k,
                 "rerank_top": args.rerank_top, "rerank_tokens": args.rerank_tokens}
    return replace(FusionConfig(), **{k: v for k, v in overrides.items() if v is not None})


ALPHAS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # vector shares tried: 0.30 … 0.95


def nfcorpus_train_curve(session, embedder, item_to_doc, args) -> dict[float, float]:
    """NFCorpus *train* nDCG@10 of the convex fusion at each alpha (never a reported query).

    Retrieval and rescoring run once per query; the grid only re-fuses, ranking documents by
    their best chunk exactly as search() does. Reciprocal rank fusion is scored on the same
    queries (keyword weight × rrf_k grid) and printed for comparison.
    """
    from sqlalchemy import text

    from core.search import cache
    from core.search.engine import _embed_query, _space
    from core.search.fusion import FusionConfig, convex, rrf
    from core.search.preprocess import get_synonyms, prepare, vocabulary
    from core.search.retrieval import keyword_candidates, keyword_query, keyword_stats, rescore, vector_candidates

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
    answer_start: float  # the second the answer is first said (a reader's mark; else the span start)


PARAPHRASE_FILES = (Path(__file__).resolve().parent / "chaffee_paraphrase.jsonl",)
ANSWER_STARTS_FILE = Path("/work/sets/chaffee_answer_starts.jsonl")


def question_sets(choice: str) -> dict[str, Path]:
    """The labelled question sets to run: the 100-question set, and the paraphrase set where
    its file exists (committed under bench/, or still in the session's sets folder)."""
    sets = {"100-set": QUERIES_FILE}
    para = next((p for p in PARAPHRASE_FILES if p.exists()), None)
    if para is not None:
        sets["paraphrase"] = para
    elif choice == "paraphrase":
        sys.exit(f"no paraphrase set: none of {', '.join(map(str, PARAPHRASE_FILES))} exists")
    return sets if choice == "all" else {k: v for k, v in sets.items() if k.startswith(choice[:4])}


def _labelled_rows(path: Path = QUERIES_FILE) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def chaffee_labels(path: Path = QUERIES_FILE) -> list[tuple[str, str, list[Span]]]:
    return [(q["id"], q["query"], [Span(a["video"], float(a["start"]), float(a["end"]),
                                        float(a.get("answer_start", a["start"]))) for a in q["answers"]])
            for q in _labelled_rows(path)]


def chaffee_styles(path: Path = QUERIES_FILE) -> dict[str, str]:
    """Query id → how it is phrased: "question", "keywords" (1–4 words) or "exact" (a rare term)."""
    return {q["id"]: q.get("style", "question") for q in _labelled_rows(path)}


def merge_answer_starts(starts_file: Path, queries_file: Path = QUERIES_FILE) -> int:
    """Write a reader's answer starts (`{"id", "answer_starts": [one second per span]}` lines)
    into the labelled set as an `answer_start` field per span; start/end stay as labelled.
    Returns the number of spans given a start. Never run after looking at search output."""
    starts = {r["id"]: r["answer_starts"] for r in map(json.loads, filter(str.strip, starts_file.read_text().splitlines()))}
    rows, n = _labelled_rows(queries_file), 0
    for row in rows:
        marks = starts.get(row["id"])
        if marks is None:
            continue
        if len(marks) != len(row["answers"]):
            sys.exit(f"{row['id']}: {len(marks)} answer starts for {len(row['answers'])} spans")
        for span, mark in zip(row["answers"], marks):
            if mark is not None:
                span["answer_start"] = float(mark)
                n += 1
    queries_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return n


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


def print_by_style(results: dict[str, Scores], ids: list[str], path: Path = QUERIES_FILE) -> None:
    """nDCG@10 per query style: where each method wins (keywords favour the keyword index,
    paraphrased questions the vectors)."""
    styles = chaffee_styles(path)
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


def store_sentence_vectors(session, embedder, ids: list[int], segments: list) -> int:
    """Each transcript sentence's vector, as the pipeline stores them (core/sentence_index.py),
    through the bench's vector cache."""
    from core.embeddings import ensure_space
    from core.search.moments import TimedLine
    from core.sentence_index import SentenceVectors, item_sentences, write

    space = ensure_space(session, embedder)
    n = 0
    for iid, segs in zip(ids, segments):
        sents = item_sentences([TimedLine(float(x.start), float(x.end), x.text, x.speaker) for x in segs])
        vecs = _corpus.embed_cached(embedder, [x.text for x in sents], "chaffee-sentences")
        n += write(session, iid, space.id, SentenceVectors([float(x.start_s) for x in sents], vecs))
    return n


SENTENCE_VECTORS = True  # --no-sentence-vectors: the words-only locator, for comparison


def load_chaffee(session, embedder, *, distractors: bool = False, window: tuple[float, float, float] | None = None,
                 sentence_vectors: bool | None = None) -> dict[int, str]:
    """The transcripts as YouTube items (pipeline chunking, and their timed segments and sentence
    vectors stored as the pipeline stores them: the sentence locator reads those); returns item
    id → video id."""
    sentence_vectors = SENTENCE_VECTORS if sentence_vectors is None else sentence_vectors
    from sqlalchemy import insert

    from core.chunking import chunk_segments
    from core.models import TranscriptSegment
    from core.transcribe.captions import parse_caption_file

    videos = sorted(p.stem for p in _corpus.require(_corpus.TRANSCRIPTS).glob("*.srt"))
    items, rows, segments = [], [], []
    for n, vid in enumerate(videos):
        segs = parse_caption_file(_corpus.TRANSCRIPTS / f"{vid}.srt")
        segments.append(segs)
        chunks = list(chunk_segments(segs) if window is None else
                      chunk_segments(segs, target_s=window[0], max_s=window[1], overlap_s=window[2]))
        items.append({"external_id": vid, "title": f"Interview {vid}", "url": f"https://www.youtube.com/watch?v={vid}",
                      "duration_s": segs[-1].end})
        rows += [(n, c.index, c.start, c.end, c.text) for c in chunks]
    vectors = _corpus.embed_cached(embedder, [r[4] for r in rows], "chaffee-transcripts")
    reset_tables(session)
    ids = load_items(session, embedder, "youtube", items, rows, vectors)
    session.execute(insert(TranscriptSegment), [
        {"media_item_id": iid, "idx": i, "start_s": s.start, "end_s": s.end, "text": s.text, "speaker": s.speaker,
         "engine": "captions"}
        for iid, segs in zip(ids, segments) for i, s in enumerate(segs)
    ])
    if sentence_vectors:
        store_sentence_vectors(session, embedder, ids, segments)
    session.execute(__import__("sqlalchemy").text("ANALYZE transcript_segments; ANALYZE sentence_vectors"))
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


def labelled_questions(feedback, args, path: Path = QUERIES_FILE) -> list[tuple[str, str, list[Span]]]:
    """The labelled questions; a thumbs-up moment for the same question text is one more answer span."""
    labels = chaffee_labels(path)
    for j in feedback:
        for i, (qid, q, spans) in enumerate(labels):
            if j.relevant and j.query.strip().lower() == q.strip().lower():
                labels[i] = (qid, q, spans + [Span(j.external_id, j.start_s, j.end_s, j.start_s)])
    return labels[: args.limit] if args.limit else labels


STRICT_BEFORE_S = 5.0  # a strict hit's link may open this long before the answer start


@dataclass
class LinkScores:
    """Where each query's links open (eval_chaffee): strict reciprocal ranks and distances,
    for the sentence links search() returns and, for comparison, for links at the start of
    the moment's best chunk (what search did before the sentence locator)."""

    strict: list[float]
    distance: list[float | None]  # None: no moment of the query overlaps an answer span
    chunk_strict: list[float]
    chunk_distance: list[float | None]
    shape_ms: list[float]

    @classmethod
    def empty(cls) -> "LinkScores":
        return cls([], [], [], [], [])


def _strict_gains(links: list[tuple[str, float]], spans: list[Span]) -> list[float]:
    """1 for a moment whose link second lies in [answer start − 5 s, answer end] of a span of its
    video not already credited, else 0."""
    used: set[int] = set()
    gains = []
    for vid, second in links:
        hit = next((i for i, s in enumerate(spans) if i not in used and s.video == vid
                    and s.answer_start - STRICT_BEFORE_S <= second <= s.end), None)
        gains.append(0.0 if hit is None else 1.0)
        if hit is not None:
            used.add(hit)
    return gains


def _first_distance(moments: list[tuple[str, float, float, float]], spans: list[Span]) -> float | None:
    """|link − answer start| of the best-ranked moment that overlaps an answer span (of the spans
    it overlaps, the nearest answer start); None when no moment in the top 10 overlaps one."""
    for vid, lo, hi, second in moments:
        near = [abs(second - s.answer_start) for s in spans if s.video == vid and lo < s.end and hi > s.start]
        if near:
            return min(near)
    return None


def eval_chaffee(session, embedder, labels, item_to_video, methods, cfg_for, rerank_limit: int = 0
                 ) -> tuple[dict[str, Scores], dict[str, LinkScores]]:
    """Moment-level scores of each method; cfg_for(question index) is the fusion config it runs with.

    nDCG@10, recall@10 and overlap MRR@10 count a moment relevant when its window overlaps an
    answer span of its video (each span once). Strict MRR@10 and the link distances are in
    LinkScores (see _strict_gains and _first_distance).
    """
    from sqlalchemy import text

    from core.search import search

    chunk_start = dict(session.execute(text("SELECT id, start_s FROM chunks")).all())
    results = {m: Scores.empty() for m in methods}
    links = {m: LinkScores.empty() for m in methods}
    for method in results:
        todo = labels[:rerank_limit] if method == "hybrid+rerank" and rerank_limit else labels
        for n, (qid, q, spans) in enumerate(todo):
            t = time.perf_counter()
            r = search(session, q, k=10, mode=method, log=False, use_cache=False, embedder=embedder,
                       config=for_method(cfg_for(n), method),
                       moments_per_video=10)
            results[method].ms.append((time.perf_counter() - t) * 1000)
            links[method].shape_ms.append(r.timings_ms.get("shape", 0.0))
            moments = sorted(((m.score, item_to_video[g.media_item_id], m) for g, m in r.hits()), key=lambda x: -x[0])[:10]
            found: set[int] = set()
            gains = []
            for _, vid, m in moments:
                lo = m.window_start_s if m.window_start_s is not None else m.start_s
                hit = next((i for i, s in enumerate(spans) if s.video == vid and lo < s.end and m.end_s > s.start and i not in found), None)
                if hit is None:
                    gains.append(0.0)
                else:
                    found.add(hit)
                    gains.append(1.0)
            results[method].ndcg.append(ndcg_at(gains, [1.0] * len(spans)))
            results[method].recall.append(len(found) / len(spans))
            results[method].mrr.append(mrr_at(gains))
            for second_of, strict, dist in ((lambda m: float(int(m.start_s)), links[method].strict, links[method].distance),
                                            (lambda m: float(int(chunk_start[m.chunk_id])), links[method].chunk_strict,
                                             links[method].chunk_distance)):
                placed = [(vid, m.window_start_s if m.window_start_s is not None else m.start_s, m.end_s, second_of(m))
                          for _, vid, m in moments]
                strict.append(mrr_at(_strict_gains([(v, sec) for v, _, _, sec in placed], spans)))
                dist.append(_first_distance(placed, spans))
        session.rollback()
    return results, links


def _median_p90(values: list[float | None]) -> tuple[float, float, int]:
    have = sorted(v for v in values if v is not None)
    if not have:
        return float("nan"), float("nan"), 0
    return statistics.median(have), have[min(len(have) - 1, int(round(0.9 * (len(have) - 1))))], len(have)


def print_link_table(title: str, results: dict[str, Scores], links: dict[str, LinkScores]) -> None:
    """The link figures per method, for every question and for each half (even/odd positions:
    locator constants are tuned on the even half only, so the odd half is held out)."""
    print(f"\n{title} — where the links open (strict: link within [answer start − {STRICT_BEFORE_S:.0f} s, answer end])")
    print(f"  {'method':<14} {'half':<9} {'n':>4} {'nDCG@10':>8} {'ovl MRR':>8} {'strict':>7} {'med |Δ|':>8} {'p90 |Δ|':>8}"
          f"  │ chunk-start link: {'strict':>6} {'med':>6} {'p90':>6}")
    for method, ls in links.items():
        sc = results[method]
        n_all = len(ls.strict)
        for half, idx in (("all", range(n_all)), ("even/tune", range(0, n_all, 2)), ("odd/held", range(1, n_all, 2))):
            idx = list(idx)
            if not idx:
                continue
            med, p90, have = _median_p90([ls.distance[i] for i in idx])
            cmed, cp90, _ = _median_p90([ls.chunk_distance[i] for i in idx])
            print(f"  {method:<14} {half:<9} {len(idx):>4} {statistics.fmean(sc.ndcg[i] for i in idx):8.4f} "
                  f"{statistics.fmean(sc.mrr[i] for i in idx):8.4f} {statistics.fmean(ls.strict[i] for i in idx):7.4f} "
                  f"{med:7.1f}s {p90:7.1f}s  │ {'':18}{statistics.fmean(ls.chunk_strict[i] for i in idx):6.4f} "
                  f"{cmed:5.1f}s {cp90:5.1f}s" + (f"  ({have} with an overlapping moment)" if have < len(idx) else ""))
    shape = sorted(ms for ls in links.values() for ms in ls.shape_ms)
    if shape:
        print(f"  shaping (grouping + sentence locator + snippets) per search: p50 {statistics.median(shape):.1f} ms, "
              f"p95 {shape[min(len(shape) - 1, int(round(0.95 * (len(shape) - 1))))]:.1f} ms")


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
                                     lambda _, a=a: replace(base, alpha=a))[0]["hybrid"].ndcg for a in ALPHAS}
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
    ap.add_argument("--rerank-top", type=int, help="with --no-tune: rerank this many fused chunks")
    ap.add_argument("--rerank-tokens", type=int, help="with --no-tune: the cross-encoder reads this many tokens a pair")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries of each set (smoke runs)")
    ap.add_argument("--tune-queries", type=int, default=300, help="NFCorpus train queries used to tune the fusion")
    ap.add_argument("--no-tune", action="store_true", help="use FusionConfig defaults as they are")
    ap.add_argument("--method", choices=("convex", "rrf"), help="with --no-tune: this fusion function")
    ap.add_argument("--alpha", type=float, help="with --no-tune: this vector share (convex)")
    ap.add_argument("--keyword-weight", type=float, help="with --no-tune: this keyword weight (rrf)")
    ap.add_argument("--rrf-k", type=int, help="with --no-tune: this rrf_k")
    ap.add_argument("--feedback", action="store_true", help="add thumbs-up judgments from the app's own database")
    ap.add_argument("--only", choices=("nfcorpus", "chaffee"), help="run one set")
    ap.add_argument("--set", dest="qset", choices=("all", "100-set", "paraphrase"), default="all",
                    help="transcript question sets: the 100-question set, the paraphrase set (bench/chaffee_paraphrase.jsonl "
                         "), or every one whose file exists (default)")
    ap.add_argument("--no-distractors", dest="distractors", action="store_false",
                    help="transcripts alone (skip the runs with the NFCorpus distractor items)")
    ap.add_argument("--window", type=float, nargs=3, metavar=("TARGET_S", "MAX_S", "OVERLAP_S"),
                    help="chunk the transcripts with these window settings instead of core/chunking.py's defaults")
    ap.add_argument("--per-query", action="store_true", help="Chaffee set: print each query's nDCG@10 per method")
    ap.add_argument("--merge-answer-starts", type=Path, metavar="JSONL",
                    help=f"write a reader's answer starts (e.g. {ANSWER_STARTS_FILE}) into {QUERIES_FILE.name} and stop")
    ap.add_argument("--no-sentence-vectors", dest="sentence_vectors", action="store_false",
                    help="store no sentence vectors: links placed by the query's words alone (the locator before them)")
    args = ap.parse_args(argv)
    global SENTENCE_VECTORS
    SENTENCE_VECTORS = args.sentence_vectors
    if args.merge_answer_starts:
        print(f"{merge_answer_starts(args.merge_answer_starts)} answer starts written into {QUERIES_FILE}")
        return 0

    feedback = []
    if args.feedback:  # read before switching to the scratch database
        feedback = app_feedback_judgments({p.stem for p in _corpus.TRANSCRIPTS.glob("*.srt")})
        print(f"{len(feedback)} feedback judgments from the app's database")
    _corpus.use_scratch_database()
    from core.db import session_scope
    from core.embeddings import get_embedder

    embedder = get_embedder()
    print(f"embedder: {embedder.provider}/{embedder.model} ({type(embedder).__name__}, {embedder.dim}-d); "
          f"{os.cpu_count()} CPUs; sentence locator by {'meaning (sentence vectors)' if SENTENCE_VECTORS else 'words'}")
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
            sets = question_sets(args.qset)
            set_labels = {name: labels if path == QUERIES_FILE else labelled_questions([], args, path)
                          for name, path in sets.items()}
            for name in sets:
                spans = [s for _, _, sp in set_labels[name] for s in sp]
                marked = sum(s.answer_start != s.start for s in spans)
                print(f"\n{name}: {len(set_labels[name])} questions, {len(spans)} answer spans, {marked} of them with "
                      f"an answer start after the span start — {sets[name]}")
            for distractors in (False, True) if args.distractors else (False,):
                item_to_video = load_chaffee(session, embedder, distractors=distractors, window=args.window)
                where = "Chaffee transcripts" + (" + 3,633 NFCorpus abstracts as distractor items" if distractors else "")
                for name, path in sets.items():
                    lab = set_labels[name]
                    # The 100-set runs with its out-of-fold alpha; any other set with the app default.
                    res, links = eval_chaffee(session, embedder, lab, item_to_video, methods,
                                              cfg_for if path == QUERIES_FILE else (lambda _: cfg), args.rerank_limit)
                    title = f"{where} — {name}"
                    print_table(f"{title} (moment-level, labelled spans)", len(lab),
                                label_rerank_rows(res, args.rerank_limit, len(lab)))
                    print_margin(res)
                    print_by_style(res, [qid for qid, _, _ in lab], path)
                    print_link_table(title, res, {m: ls for m, ls in links.items() if m != "hybrid+rerank" or not args.rerank_limit})
                    if args.per_query:
                        for i, (qid, q, _) in enumerate(lab):
                            row = "  ".join(f"{m[:7]} {res[m].ndcg[i]:.2f}" for m in res if i < len(res[m].ndcg))
                            d = links["hybrid"].distance[i] if "hybrid" in links else None
                            print(f"  {qid} {row}  Δ {'-' if d is None else f'{d:.0f}s'}  {q}")
    knobs = f"alpha={cfg.alpha}" if cfg.method == "convex" else f"keyword_weight={cfg.keyword_weight} rrf_k={cfg.rrf_k}"
    print(f"\nfusion used: {cfg.method} {knobs} candidates={cfg.candidates}; rerank = {cfg.reranker} "
          f"over the top {cfg.rerank_top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
