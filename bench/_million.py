"""A million chunks from the real NFCorpus ones, for bench/search_latency.py (`--synthetic`).

Embedding a million real texts takes ≈ 6 h on this 2-core machine, so sizes past the real,
embedded chunks are filled like this — said in full in the bench's output:

* **text**: real NFCorpus text, the base chunk's own document re-windowed at another offset and
  width (the real chunks are 50-word windows at a 6-word stride; a synthetic one starts 1–5
  words later and is 35–65 words long), so the keyword side indexes and scores real language;
* **vector**: a noisy copy of the base chunk's real vector, moved along the difference of two
  other real vectors (a direction the real data varies in, not isotropic noise, which is the
  worst case for any ANN index) by the amount that gives it a cosine to its base drawn from the
  real chunks' nearest-neighbour cosines;
* **calibration**, printed: nearest-neighbour cosine percentiles of real chunks among the real
  ones against those of a sample of the final set among the whole final set.
"""
from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _corpus  # noqa: E402

STRIDE, WIDTH = 6, 50  # latency_chunks' windows


def real_vectors(embedder, texts: Sequence[str], name: str) -> tuple[np.ndarray, str]:
    """The cached real vectors for texts: the whole file, or the rows a partial file holds so far
    (they are in text order). Never embeds: another run may be filling the same cache."""
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]
    final = _corpus.CACHE_DIR / f"{name}-{_corpus.embedder_key(embedder)}-d-{digest}.npy"
    if final.exists():
        return np.load(final), f"all {len(texts):,} real vectors ({final.name})"
    partial = final.with_suffix(".partial.npy")
    if not partial.exists():
        sys.exit(f"no vectors cached for {name} yet ({final}); run bench/search_latency.py without --synthetic first")
    v = np.load(partial)
    return v, f"the first {len(v):,} of {len(texts):,} real vectors (partial cache {partial.name}: still being filled)"


def _lambda_for_cosine(base: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """λ ≥ 0 with cos(base + λw, base) = c, per row (base unit): the positive root of
    λ²(a² − c²q) + 2λa(1 − c²) + (1 − c²) = 0, a = w·base, q = |w|²."""
    a = np.einsum("ij,ij->i", w, base)
    q = np.einsum("ij,ij->i", w, w)
    c2 = c * c
    A, B, C = a * a - c2 * q, 2 * a * (1 - c2), 1 - c2
    disc = np.sqrt(np.maximum(B * B - 4 * A * C, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1, r2 = (-B + disc) / (2 * A), (-B - disc) / (2 * A)
    lam = np.where((r1 > 0) & np.isfinite(r1), r1, np.where((r2 > 0) & np.isfinite(r2), r2, 0.0))
    return lam.astype(np.float32)


def synthesize(real: np.ndarray, n: int, *, seed: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n synthetic vectors: (vectors, base row of each, the target cosine of each)."""
    rng = np.random.default_rng(seed)
    probe = rng.choice(len(real), size=min(2000, len(real)), replace=False)
    # Real nearest-neighbour cosines (each probe's best other real chunk): the targets.
    real_nn = _without_self(real[probe], real, probe)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    bases = rng.integers(0, len(real), size=n)
    targets = rng.choice(real_nn, size=n).astype(np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        b = real[bases[lo:hi]]
        w = real[rng.integers(0, len(real), hi - lo)] - real[rng.integers(0, len(real), hi - lo)]
        v = b + _lambda_for_cosine(b, w, targets[lo:hi])[:, None] * w
        out[lo:hi] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, bases, targets


def _without_self(sample: np.ndarray, real: np.ndarray, rows: np.ndarray) -> np.ndarray:
    best = np.full(len(sample), -1.0, dtype=np.float32)
    for lo in range(0, len(real), 200_000):
        sims = sample @ real[lo : lo + 200_000].T
        mine = (rows >= lo) & (rows < lo + sims.shape[1])
        sims[np.nonzero(mine)[0], rows[mine] - lo] = -1.0
        best = np.maximum(best, sims.max(axis=1))
    return best


def calibration(real: np.ndarray, final: np.ndarray, *, seed: int = 17) -> str:
    """Nearest-neighbour cosine percentiles: real among real, final sample among final."""
    rng = np.random.default_rng(seed)
    pr = rng.choice(len(real), size=min(1000, len(real)), replace=False)
    pf = rng.choice(len(final), size=min(1000, len(final)), replace=False)
    a = _without_self(real[pr], real, pr)
    b = _without_self(final[pf], final, pf)

    def pcts(x: np.ndarray) -> str:
        p = np.percentile(x, [10, 50, 90])
        return f"p10 {p[0]:.3f} · p50 {p[1]:.3f} · p90 {p[2]:.3f}"

    return (f"nearest-neighbour cosine, real chunks among the {len(real):,} real: {pcts(a)}\n"
            f"nearest-neighbour cosine, 1,000 of the final {len(final):,} among all of them: {pcts(b)}")


def synthetic_text(doc_words: list[str], idx: int, variant: int) -> tuple[str, int, int]:
    """(text, first word, width): the base window of doc_words shifted by 1–5 words, 35–65 words wide."""
    width = WIDTH + 5 * ((variant // 5) % 7 - 3)
    start = STRIDE * idx + 1 + variant % 5
    start = max(0, min(start, len(doc_words) - width))
    return " ".join(doc_words[start : start + width]), start, width


def synthetic_rows(chunks, docs, bases: np.ndarray, vectors: np.ndarray, first_idx: int = 1_000_000
                   ) -> Iterator[tuple[int, int, float, str, np.ndarray, int]]:
    """(doc, idx, start word, text, vector, width) per synthetic chunk; idx is unique per document."""
    words = {}
    seen: dict[int, int] = {}
    for j, (b, v) in enumerate(zip(bases, vectors)):
        ch = chunks[int(b)]
        if ch.doc not in words:
            words[ch.doc] = docs[ch.doc].text.split()
        variant = seen.get(int(b), 0)
        seen[int(b)] = variant + 1
        text, start, width = synthetic_text(words[ch.doc], ch.idx, variant)
        yield ch.doc, first_idx + j, start, text, v, width
