"""Shared by the search benchmarks: real text from ../shared/data, real embeddings, a throw-away database.

Nothing here is random: NFCorpus documents are cut into word windows, the real Chaffee
SRTs into the pipeline's own timed chunks, and every vector comes from the configured
embedder. Embeddings are cached on disk (outside the repository) keyed by the model and
the exact texts, so the second run of a benchmark spends its time measuring, not encoding.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CHAFFEE_SHARED_DATA", ROOT.parent / "shared" / "data"))
NFCORPUS = SHARED_DATA / "nfcorpus"
TRANSCRIPTS = SHARED_DATA / "transcripts"
CACHE_DIR = Path(os.environ.get("CHAFFEE_BENCH_CACHE", Path.home() / ".cache" / "chaffee-search" / "bench"))


def use_scratch_database() -> Path:
    """Point the app at a fresh embedded Postgres in a temp folder (never the real archive).

    Must run before anything imports core.db's engine; DATABASE_URL is dropped so a
    benchmark can never write into a configured production database.
    """
    home = Path(tempfile.mkdtemp(prefix="chaffee-bench-"))
    (home / "data").mkdir()
    # Model builds (e.g. the ONNX export of MiniLM under data_dir/models) outlive the scratch
    # database: rebuilding them on every run would be measured as part of nothing useful.
    models = CACHE_DIR / "models"
    models.mkdir(parents=True, exist_ok=True)
    (home / "data" / "models").symlink_to(models, target_is_directory=True)
    os.environ["DATA_DIR"] = str(home / "data")
    os.environ["CHAFFEE_SECRETS_FILE"] = str(home / "no-secrets.toml")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return home


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"needs {path} (the shared data folder beside the repository); nothing to measure")
    return path


# ---------------------------------------------------------------------------------------------
# NFCorpus
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    text: str


def nfcorpus_docs() -> list[Doc]:
    rows = require(NFCORPUS / "corpus.jsonl").read_text().splitlines()
    return [Doc(d["_id"], d.get("title", ""), d["text"]) for d in map(json.loads, rows)]


def nfcorpus_queries(split: str = "dev") -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(query id → text, query id → {doc id: graded relevance}) for one split."""
    qrels: dict[str, dict[str, int]] = {}
    for line in require(NFCORPUS / f"{split}.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, {})[did] = int(score)
    texts = {}
    for q in map(json.loads, require(NFCORPUS / "queries.jsonl").read_text().splitlines()):
        if q["_id"] in qrels:
            texts[q["_id"]] = q["text"]
    return texts, {q: r for q, r in qrels.items() if q in texts}


def word_windows(text: str, size: int, stride: int) -> Iterator[str]:
    words = text.split()
    if len(words) <= size:
        yield " ".join(words)
        return
    for start in range(0, len(words) - size + stride, stride):
        piece = words[start : start + size]
        if len(piece) >= size // 3 or start == 0:
            yield " ".join(piece)


# ---------------------------------------------------------------------------------------------
# Embeddings, cached on disk
# ---------------------------------------------------------------------------------------------


def embedder_key(embedder) -> str:
    return f"{embedder.provider}-{type(embedder).__name__}-{embedder.model}".replace("/", "_")


def embed_cached(embedder, texts: Sequence[str], name: str, *, batch: int = 256, query: bool = False) -> np.ndarray:
    """Vectors for texts, computed once per (model, texts) and kept under CACHE_DIR.

    Long runs save a partial file every batch, so an interrupted first run resumes.
    """
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    final = CACHE_DIR / f"{name}-{embedder_key(embedder)}-{'q' if query else 'd'}-{digest}.npy"
    if final.exists():
        return np.load(final)
    partial = final.with_suffix(".partial.npy")
    done = np.load(partial) if partial.exists() else np.zeros((0, embedder.dim), dtype=np.float32)
    t0, start_n = time.time(), len(done)
    parts = [done]
    for i in range(len(done), len(texts), batch):
        chunk = list(texts[i : i + batch])
        vecs = np.stack([embedder.embed_query(t) for t in chunk]) if query else embedder.embed_documents(chunk)
        parts.append(vecs.astype(np.float32))
        n = i + len(chunk)
        if (n // batch) % 8 == 0 or n == len(texts):
            np.save(partial, np.concatenate(parts))
            rate = (n - start_n) / max(time.time() - t0, 1e-9)
            print(f"  embedding {name}: {n}/{len(texts)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
    out = np.concatenate(parts)
    np.save(final, out)
    partial.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------------------------------
# The two NFCorpus chunkings the benchmarks use
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchChunk:
    doc: int  # index into the docs list (one media item per document)
    idx: int
    text: str


def latency_chunks(target: int = 100_000) -> tuple[list[Doc], list[BenchChunk]]:
    """`target` overlapping 50-word windows (stride 6) of NFCorpus, spread evenly over every document."""
    docs = nfcorpus_docs()
    out: list[BenchChunk] = []
    for d, doc in enumerate(docs):
        for i, piece in enumerate(word_windows(doc.text, 50, 6)):
            out.append(BenchChunk(d, i, piece))
    if len(out) > target:
        keep = np.unique(np.linspace(0, len(out) - 1, target).astype(int))
        out = [out[i] for i in keep]
    return docs, out


SPEECH_WORDS_PER_S = 2.5  # 150 words a minute: the pace of the talks


@dataclass(frozen=True)
class BenchSegment:
    doc: int
    idx: int
    start_s: float
    end_s: float
    text: str


def latency_segments(docs: list[Doc], words: int = 15) -> list[BenchSegment]:
    """Each document as timed transcript lines of `words` words, read at SPEECH_WORDS_PER_S (word w is
    said at w / SPEECH_WORDS_PER_S seconds): what the sentence locator reads for a hit window.
    latency_chunks' window idx (word 6·idx onward) then starts at 6·idx / SPEECH_WORDS_PER_S."""
    out = []
    for d, doc in enumerate(docs):
        parts = doc.text.split()
        for j, at in enumerate(range(0, len(parts), words)):
            piece = parts[at : at + words]
            out.append(BenchSegment(d, j, at / SPEECH_WORDS_PER_S, (at + len(piece)) / SPEECH_WORDS_PER_S, " ".join(piece)))
    return out


def relevance_chunks() -> tuple[list[Doc], list[BenchChunk]]:
    """Each NFCorpus document (title + abstract) in ~120-word windows, 20 words of overlap."""
    docs = nfcorpus_docs()
    out = []
    for d, doc in enumerate(docs):
        full = f"{doc.title}. {doc.text}" if doc.title else doc.text
        for i, piece in enumerate(word_windows(full, 120, 100)):
            out.append(BenchChunk(d, i, piece))
    return docs, out
