"""Embedding models side by side: encode speed, query latency, retrieval quality — one run.

    python bench/embeddings.py                        # every packaged model, every set (~10 min cold)
    python bench/embeddings.py --no-quality           # speed and latency only (~1 min)
    python bench/embeddings.py --torch                # + the torch MiniLM reference row (requirements-gpu.txt)

For each candidate (the packaged int8 ONNX models of core.embeddings.LOCAL_MODELS) it prints
- chunks/s on the pipeline's own 45–60 s windows of the real Chaffee transcripts, and docs/s on
  whole NFCorpus documents (title + abstract, cut at the model's token limit), best of
  `--rounds` rounds that alternate between models, so a busy machine slows them alike;
- query-embedding latency p50/p95 (ms), one query at a time, models alternating per query:
  this sits inside the 50 ms budget of a default search;
- retrieval quality of *vector-only* search (and of the default hybrid, for reference) through
  core.search.search() against a throw-away embedded Postgres, with bench/relevance.py's loaders
  and scorers: NFCorpus dev nDCG@10; on the real transcripts nDCG@10 and MRR@10 for the 100
  labelled questions (bench/chaffee_queries.jsonl) and for the paraphrase set (questions
  written blind from one-line summaries; --paraphrase), each alone and with the 3,633 NFCorpus
  abstracts as distractor items.

Vectors are cached on disk by bench/_corpus.py (keyed by model and texts): a second run measures
instead of encoding. Reads ../shared/data in place.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


import _corpus  # noqa: E402
import relevance  # noqa: E402

PARAPHRASE_FILE = Path(__file__).resolve().parent / "chaffee_paraphrase.jsonl"


@dataclass
class Row:
    name: str
    chunks_s: float = 0.0
    docs_s: float = 0.0
    query_ms: list[float] = field(default_factory=list)
    quality: dict[str, tuple[float, float]] = field(default_factory=dict)  # set → (nDCG@10, MRR@10)


def load_avg() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- text -------------------------------------------------------------------------------------


def transcript_windows() -> list[str]:
    """The pipeline's own chunks (core.chunking) of every real transcript."""
    from core.chunking import chunk_segments
    from core.transcribe.captions import parse_caption_file

    texts = []
    for srt in sorted(_corpus.require(_corpus.TRANSCRIPTS).glob("*.srt")):
        texts += [c.text for c in chunk_segments(parse_caption_file(srt))]
    return texts


def labels_from(path: Path) -> list[tuple[str, str, list[relevance.Span]]]:
    """A question file in bench/chaffee_queries.jsonl's format, as relevance.eval_chaffee takes it."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(q["id"], q["query"], [relevance.Span(a["video"], float(a["start"]), float(a["end"])) for a in q["answers"]])
            for q in rows]


# --- measures ---------------------------------------------------------------------------------


def measure_speed(models: dict, rows: dict[str, Row], windows: list[str], docs: list[str], rounds: int) -> None:
    for embedder in models.values():
        embedder.embed_documents(windows[:8])  # warm-up: lazy allocations, thread pools
    for _ in range(rounds):
        for name, embedder in models.items():
            for texts, attr in ((windows, "chunks_s"), (docs, "docs_s")):
                start = time.perf_counter()
                embedder.embed_documents(texts)
                rate = len(texts) / (time.perf_counter() - start)
                setattr(rows[name], attr, max(getattr(rows[name], attr), rate))


def measure_queries(models: dict, rows: dict[str, Row], queries: list[str]) -> None:
    for embedder in models.values():
        embedder.embed_query("warm up")
    for q in queries:
        for name, embedder in models.items():
            start = time.perf_counter()
            embedder.embed_query(q)
            rows[name].query_ms.append((time.perf_counter() - start) * 1000)


def measure_quality(models: dict, rows: dict[str, Row], sets: dict[str, list], with_hybrid: bool) -> None:
    """Vector-only (and default hybrid) search through core.search.search() for every set and model."""
    from core.db import session_scope
    from core.search.fusion import FusionConfig

    cfg = FusionConfig()
    methods = ["vector", "hybrid"] if with_hybrid else ["vector"]
    args = SimpleNamespace(limit=0, rerank=False, rerank_limit=0)
    with session_scope() as session:
        for name, embedder in models.items():
            t0 = time.perf_counter()
            item_to_doc = relevance.load_nfcorpus(session, embedder)
            res, _ = relevance.eval_nfcorpus(session, embedder, cfg, args, item_to_doc)
            for m in methods:
                rows[name].quality[f"NFCorpus {m}"] = (statistics.fmean(res[m].ndcg), statistics.fmean(res[m].mrr))
            for distractors in (False, True):
                item_to_video = relevance.load_chaffee(session, embedder, distractors=distractors)
                for set_name, labels in sets.items():
                    res = relevance.eval_chaffee(session, embedder, labels, item_to_video, methods, lambda _: cfg)
                    for m in methods:
                        key = f"{set_name}{' +distr' if distractors else ''} {m}"
                        rows[name].quality[key] = (statistics.fmean(res[m].ndcg), statistics.fmean(res[m].mrr))
            print(f"  {name}: quality sets done in {time.perf_counter() - t0:.0f} s (load {load_avg()})",
                  file=sys.stderr, flush=True)


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from core.embeddings import LOCAL_MODELS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(LOCAL_MODELS), help="comma-separated EMBEDDING_MODEL names")
    ap.add_argument("--torch", action="store_true", help="add sentence-transformers MiniLM (needs requirements-gpu.txt)")
    ap.add_argument("--docs", type=int, default=300, help="NFCorpus documents in the speed set")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the best counts")
    ap.add_argument("--queries", type=int, default=300, help="queries timed one at a time")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: usable cores)")
    ap.add_argument("--no-quality", action="store_true", help="speed and latency only")
    ap.add_argument("--no-hybrid", action="store_true", help="vector-only quality rows only")
    ap.add_argument("--paraphrase", type=Path, default=PARAPHRASE_FILE, help="the paraphrase question set")
    args = ap.parse_args(argv)

    _corpus.use_scratch_database()  # before anything opens the engine
    from core.embeddings import OnnxEmbedder, usable_cpus

    threads = args.threads or usable_cpus()
    models = {name: OnnxEmbedder(name, threads=threads) for name in args.models.split(",")}
    if args.torch:
        from core.embeddings import SentenceTransformerEmbedder

        models["MiniLM torch (reference)"] = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu")
    rows = {name: Row(name) for name in models}

    windows = transcript_windows()
    docs = [f"{d.title}. {d.text}" if d.title else d.text for d in _corpus.nfcorpus_docs()[: args.docs]]
    words = statistics.median(len(t.split()) for t in windows)
    print(f"{len(windows)} transcript windows (median {words:.0f} words), {len(docs)} NFCorpus documents, "
          f"{threads} threads, best of {args.rounds} alternating rounds; load average before: {load_avg()}")
    measure_speed(models, rows, windows, docs, args.rounds)
    nf_queries, _ = _corpus.nfcorpus_queries("dev")
    queries = [q for _, q, _ in relevance.chaffee_labels()] + sorted(nf_queries.values())
    measure_queries(models, rows, queries[: args.queries])
    print(f"load average after timing: {load_avg()} (other processes skew absolute figures; compare ratios)")

    sets: dict[str, list] = {"labelled": relevance.chaffee_labels()}
    if args.paraphrase.exists():
        sets["paraphrase"] = labels_from(args.paraphrase)
    else:
        print(f"(no paraphrase set at {args.paraphrase}: its rows are left out)")
    if not args.no_quality:
        measure_quality(models, rows, sets, with_hybrid=not args.no_hybrid)

    print()
    print(f"{'model':<26} {'chunks/s':>8} {'docs/s':>7} {'query p50':>9} {'p95 ms':>7}")
    for r in rows.values():
        print(f"{r.name:<26} {r.chunks_s:8.1f} {r.docs_s:7.1f} {statistics.median(r.query_ms):9.1f} "
              f"{pct(r.query_ms, 0.95):7.1f}")
    if not args.no_quality:
        keys = list(next(iter(rows.values())).quality)
        print(f"\nretrieval quality, nDCG@10 / MRR@10 ({', '.join(f'{k}: {len(v)} q' for k, v in sets.items())}; "
              f"NFCorpus dev 324 q; '+distr' = with 3,633 NFCorpus abstracts as distractor items)")
        print(f"{'set':<28} " + " ".join(f"{name[:22]:>22}" for name in rows))
        for key in keys:
            cells = " ".join(f"{r.quality[key][0]:10.4f} / {r.quality[key][1]:.4f}"[-22:].rjust(22) for r in rows.values())
            print(f"{key:<28} {cells}")
    print(f"\nload average at the end: {load_avg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
