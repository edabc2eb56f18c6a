"""A million chunks from the real NFCorpus ones, for bench/search_latency.py (`--synthetic`).

Embedding a million real texts takes ≈ 6 h on this 2-core machine, so sizes past the real,
embedded chunks are filled like this — said in full in the bench's output:

* **text**: real NFCorpus text, the base chunk's own document re-windowed at another offset and
  width (the real chunks are 50-word windows at a 6-word stride; a synthetic one starts 1–5
  words later — earlier at a document's end — and is 35–65 words long), so the keyword side
  indexes and scores real language;
* **vector**: it follows the text: the interpolation of the two real windows the new one lies
  between (shift / 6 of the way), then moved along the difference of two other real vectors (a
  direction the real data varies in, not isotropic noise) to a cosine drawn from what the
  embedder gives: 160 synthetic texts are embedded for real, and their cosines to their
  interpolations are the targets;
* **calibration**, printed: 160 other synthetic texts embedded for real against their synthetic
  vectors, and nearest-neighbour cosine percentiles of real chunks among the real ones against
  those of a sample of the final set among the whole final set.

An earlier construction moved each synthetic vector away from its base's vector in a random real
direction, whatever its text said: stars of near-copies around each base, harder for HNSW than
the chains of overlapping windows real transcripts make (recall@10 0.867 against 0.98 for real
data at ef_search 400 and 300k chunks, its misses 0.05 in cosine closer than what was returned:
not ties). The vectors now stand where the model puts those texts, as the calibration line shows.
"""
from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Synthetic:
    """The synthetic chunks, row j: base real chunk, first word and width of its text, its vector."""

    vectors: np.ndarray
    bases: np.ndarray
    starts: np.ndarray
    widths: np.ndarray
    said: str  # the calibration against the embedder's own vectors of these texts

    def __len__(self) -> int:
        return len(self.bases)

    def part(self, lo: int, hi: int) -> "Synthetic":
        return Synthetic(self.vectors[lo:hi], self.bases[lo:hi], self.starts[lo:hi], self.widths[lo:hi], self.said)


def _cumcount(values: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions hold the same value (0, 1, 2, …)."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    first = np.r_[0, np.nonzero(np.diff(sorted_vals))[0] + 1]
    run_start = np.repeat(first, np.diff(np.r_[first, len(values)]))
    out = np.empty(len(values), dtype=np.int64)
    out[order] = np.arange(len(values)) - run_start
    return out


def synthesize(real: np.ndarray, chunks, docs, n: int, embedder, *, seed: int = 16, probe: int = 160) -> Synthetic:
    """n synthetic chunks whose vectors follow their texts.

    A synthetic text is its base window shifted 1–5 words along its document (toward the next
    window, or the previous one at a document's end) and 35–65 words wide, so its vector starts
    at the interpolation of the two real neighbour windows' vectors, `shift / STRIDE` of the way;
    the width change and what interpolation misses are a move along a real direction (the
    difference of two other real vectors) to a cosine drawn from what the embedder really does:
    `probe` synthetic texts are embedded, and their cosines to their interpolations are the
    targets. Another `probe` texts, embedded too, check the result (printed by the bench)."""
    rng = np.random.default_rng(seed)
    row = {(c.doc, c.idx): i for i, c in enumerate(chunks)}
    nxt = np.array([row.get((c.doc, c.idx + 1), -1) for c in chunks])
    prv = np.array([row.get((c.doc, c.idx - 1), -1) for c in chunks])
    nwords = np.array([len(d.text.split()) for d in docs])
    doc_of = np.array([c.doc for c in chunks])
    idx_of = np.array([c.idx for c in chunks])

    bases = rng.integers(0, len(real), size=n)
    variant = _cumcount(bases)
    shift = 1 + variant % 5
    widths = WIDTH + 5 * ((variant // 5) % 7 - 3)
    forward = nxt[bases] >= 0
    neighbour = np.where(forward, nxt[bases], np.where(prv[bases] >= 0, prv[bases], bases))
    starts = STRIDE * idx_of[bases] + np.where(forward, shift, -shift)
    starts = np.maximum(0, np.minimum(starts, nwords[doc_of[bases]] - widths))
    t = (shift / STRIDE).astype(np.float32)

    def interpolation(rows: np.ndarray) -> np.ndarray:
        u = (1 - t[rows, None]) * real[bases[rows]] + t[rows, None] * real[neighbour[rows]]
        return u / np.linalg.norm(u, axis=1, keepdims=True)

    def texts(rows: np.ndarray) -> list[str]:
        return [" ".join(docs[doc_of[bases[j]]].text.split()[starts[j] : starts[j] + widths[j]]) for j in rows]

    sample = rng.choice(n, size=min(2 * probe, n), replace=False)
    fit, check = sample[:probe], sample[probe:]
    model = np.asarray(embedder.embed_documents(texts(sample)), dtype=np.float32)
    model /= np.linalg.norm(model, axis=1, keepdims=True)
    fit_cos = np.einsum("ij,ij->i", model[:probe], interpolation(fit))

    out = np.empty((n, real.shape[1]), dtype=np.float32)
    targets = rng.choice(fit_cos, size=n).astype(np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        rows = np.arange(lo, hi)
        u = interpolation(rows)
        w = real[rng.integers(0, len(real), hi - lo)] - real[rng.integers(0, len(real), hi - lo)]
        v = u + _lambda_for_cosine(u, w, targets[lo:hi])[:, None] * w
        out[lo:hi] = v / np.linalg.norm(v, axis=1, keepdims=True)

    def pcts(x: np.ndarray) -> str:
        p = np.percentile(x, [10, 50, 90])
        return f"p10 {p[0]:.3f} · p50 {p[1]:.3f} · p90 {p[2]:.3f}"

    held = model[probe:]
    said = (f"synthetic vector vs the embedder's own vector of the same synthetic text ({len(check)} held-out texts embedded): "
            f"cosine {pcts(np.einsum('ij,ij->i', held, out[check]))}; the base chunk's real vector vs it: "
            f"{pcts(np.einsum('ij,ij->i', held, real[bases[check]]))}")
    return Synthetic(out, bases, starts.astype(np.int32), widths.astype(np.int32), said)


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


def synthetic_rows(chunks, docs, syn: Synthetic, first_idx: int = 1_000_000
                   ) -> Iterator[tuple[int, int, float, str, np.ndarray, int]]:
    """(doc, idx, start word, text, vector, width) per synthetic chunk; idx is unique per document."""
    words: dict[int, list[str]] = {}
    for j, (b, v, start, width) in enumerate(zip(syn.bases, syn.vectors, syn.starts, syn.widths)):
        doc = chunks[int(b)].doc
        if doc not in words:
            words[doc] = docs[doc].text.split()
        yield doc, first_idx + j, int(start), " ".join(words[doc][start : start + width]), v, int(width)
