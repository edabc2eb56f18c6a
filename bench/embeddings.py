"""Local embedding backends side by side: speed, agreement with torch, retrieval quality.

    .venv/bin/python bench/embeddings.py                 # full run (~10 min on 2 cores)
    .venv/bin/python bench/embeddings.py --docs 800      # quicker: first 800 NFCorpus documents

For each backend it prints
- chunks/s embedding ~115-word chunks of the real transcripts (or NFCorpus documents),
  best of `--rounds` rounds that alternate between backends, so a busy machine slows them alike;
- the speed ratio against plain sentence-transformers on torch, measured in the same run;
- the mean / minimum cosine of each chunk's vector against torch's;
- nDCG@10 on the NFCorpus dev queries with exact cosine search (numpy), and its change vs torch.

Reads ../shared/data in place; ONNX builds are cached where the app keeps them (data_dir/models).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import numpy as np  # noqa: E402

from core.config import get_settings  # noqa: E402
from core.embeddings import Embedder, OnnxMiniLMEmbedder, SentenceTransformerEmbedder, usable_cpus  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CHUNK_WORDS = 115


class Retrieval(NamedTuple):
    doc_ids: list[str]
    doc_texts: list[str]
    queries: list[str]
    qrels: list[dict[str, int]]  # per query: doc id → graded relevance


# --- data -------------------------------------------------------------------------------------


def _windows(words: list[str]) -> Iterator[str]:
    for start in range(0, len(words) - CHUNK_WORDS + 1, CHUNK_WORDS):
        yield " ".join(words[start : start + CHUNK_WORDS])


def transcript_chunks(folder: Path) -> list[str]:
    """Consecutive 115-word windows of each SRT transcript's spoken text."""
    chunks: list[str] = []
    for srt in sorted(folder.glob("*.srt")):
        lines = srt.read_text(encoding="utf-8", errors="replace").splitlines()
        spoken = [ln for ln in lines if ln.strip() and "-->" not in ln and not ln.strip().isdigit()]
        chunks.extend(_windows(" ".join(spoken).split()))
    return chunks


def _corpus(folder: Path) -> Iterator[tuple[str, str]]:
    with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            yield doc["_id"], f"{doc.get('title', '')} {doc['text']}".strip()


def nfcorpus_chunks(folder: Path) -> list[str]:
    """The first 115 words of every NFCorpus document that has that many."""
    return [next(_windows(text.split())) for _, text in _corpus(folder) if len(text.split()) >= CHUNK_WORDS]


def nfcorpus_dev(folder: Path, max_docs: int | None) -> Retrieval:
    """Documents (optionally the first `max_docs`), and the dev queries with a judged document among them."""
    docs = list(_corpus(folder))[:max_docs]
    kept = {doc_id for doc_id, _ in docs}
    with (folder / "queries.jsonl").open(encoding="utf-8") as fh:
        query_text = {q["_id"]: q["text"] for q in map(json.loads, fh)}
    judged: dict[str, dict[str, int]] = {}
    with (folder / "dev.tsv").open(encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) != 3 or not row[2].strip().lstrip("-").isdigit():
                continue  # the header line, or anything malformed
            if row[1] in kept:
                judged.setdefault(row[0], {})[row[1]] = int(row[2])
    qids = [q for q, rels in judged.items() if q in query_text and any(g > 0 for g in rels.values())]
    return Retrieval([d for d, _ in docs], [t for _, t in docs], [query_text[q] for q in qids], [judged[q] for q in qids])


# --- measures ---------------------------------------------------------------------------------


def ndcg_at_10(doc_vecs: np.ndarray, query_vecs: np.ndarray, data: Retrieval) -> float:
    """Mean nDCG@10 with gains 2^grade - 1 (as in STACK-NOTES), exact cosine ranking."""
    scores = query_vecs @ doc_vecs.T
    discounts = 1.0 / np.log2(np.arange(2, 12))
    total = 0.0
    for row, rels in zip(scores, data.qrels):
        top = np.argpartition(-row, 10)[:10] if len(row) > 10 else np.arange(len(row))
        top = top[np.argsort(-row[top])]
        gains = 2.0 ** np.array([rels.get(data.doc_ids[i], 0) for i in top], dtype=float) - 1
        ideal = 2.0 ** np.sort(np.array(list(rels.values()), dtype=float))[::-1][:10] - 1
        idcg = float(ideal @ discounts[: len(ideal)])
        total += float(gains @ discounts[: len(gains)]) / idcg if idcg > 0 else 0.0
    return total / len(data.qrels)


def timed(embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vecs = embed(texts)
    return len(texts) / (time.perf_counter() - start), vecs


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--chunks-from", choices=("transcripts", "nfcorpus"), default="transcripts")
    ap.add_argument("--chunks", type=int, default=300, help="chunks in the throughput set")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the best counts")
    ap.add_argument("--docs", type=int, default=None, help="NFCorpus documents to index (default: all 3,633)")
    ap.add_argument("--no-ndcg", action="store_true", help="throughput and agreement only")
    ap.add_argument("--threads", type=int, default=usable_cpus())
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    cache = get_settings().data_dir / "models"
    backends: dict[str, Embedder] = {"torch": SentenceTransformerEmbedder(batch_size=32)}
    backends["onnx-fp32"] = OnnxMiniLMEmbedder.packaged(cache, int8=False, threads=args.threads)
    backends["onnx-int8"] = OnnxMiniLMEmbedder.packaged(cache, threads=args.threads)  # the app's default

    if args.chunks_from == "transcripts":
        chunks = transcript_chunks(args.data / "transcripts")
    else:
        chunks = nfcorpus_chunks(args.data / "nfcorpus")
    chunks = chunks[: args.chunks]
    print(f"{len(chunks)} chunks of {CHUNK_WORDS} words from {args.chunks_from}, {args.threads} threads, "
          f"best of {args.rounds} alternating rounds; load average before: {os.getloadavg()[0]:.1f}")

    rates = {name: 0.0 for name in backends}
    vectors: dict[str, np.ndarray] = {}
    for embedder in backends.values():
        embedder.embed_documents(chunks[:8])  # warm-up: lazy allocations, thread pools
    for _ in range(args.rounds):
        for name, embedder in backends.items():
            rate, vectors[name] = timed(embedder.embed_documents, chunks)
            rates[name] = max(rates[name], rate)
    print(f"load average after timing: {os.getloadavg()[0]:.1f} (other processes skew the ratio)")

    ndcg: dict[str, float] = {}
    if not args.no_ndcg:
        data = nfcorpus_dev(args.data / "nfcorpus", args.docs)
        print(f"NFCorpus dev: {len(data.doc_ids)} documents, {len(data.queries)} queries, exact cosine search")
        for name, embedder in backends.items():
            start = time.perf_counter()
            doc_vecs = embedder.embed_documents(data.doc_texts)
            ndcg[name] = ndcg_at_10(doc_vecs, embedder.embed_documents(data.queries), data)
            print(f"  {name}: indexed in {time.perf_counter() - start:.0f} s", flush=True)

    print()
    print(f"{'backend':<10} {'chunks/s':>9} {'x torch':>8} {'cos mean':>9} {'cos min':>8} {'nDCG@10':>8} {'vs torch':>9}")
    for name in backends:
        cosines = np.sum(vectors[name] * vectors["torch"], axis=1)
        quality = f"{ndcg[name]:8.4f} {100 * (ndcg[name] / ndcg['torch'] - 1):+8.2f}%" if ndcg else ""
        print(f"{name:<10} {rates[name]:9.1f} {rates[name] / rates['torch']:7.2f}x "
              f"{cosines.mean():9.4f} {cosines.min():8.4f} {quality}")


if __name__ == "__main__":
    main()
