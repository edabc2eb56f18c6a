"""Fit the sentence locator's chooser (core/search/moments.py, LOCATOR_WEIGHTS) on the tuning halves.

For every question of the transcript sets (bench/relevance.py's 100-set and paraphrase set) one
hybrid search runs through core.search.search(); the locator's inputs for each window it shapes
(the window's sentences, the query lexemes each holds, the keyword side's idf) are recorded. A
window of a top-10 moment that overlaps an answer span and holds its answer start is one example:
the sentence a transcript reader marked (the one starting nearest the span's `answer_start`,
when within MATCH_S) against the window's other sentences. A conditional logit (softmax over the
window's sentences, L2-regularised) over moments.FEATURES is fitted on the *even* positions only;
the script then runs every question again with the fitted weights and prints strict MRR@10 and
|link − answer start| beside the rule alone, for the even (tuning) and odd (held-out) halves.

    python bench/locator.py                  # transcripts alone
    python bench/locator.py --distractors    # with the NFCorpus abstracts as distractor items
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402
import relevance  # noqa: E402

MATCH_S = 3.0  # an answer start this far from any sentence start gives no example
L2 = 0.05


def _run(session, embedder, item_to_video, sets, record: bool):
    """Per set: [(position, spans, [(video, window key, link second, window lo, end)])], and the
    recorded windows {key: (sentences, lexemes, weights, prefer)}."""
    from core.search import moments, search

    recorded: dict = {}  # (set, position, window) → the locator's inputs for that query's window
    current: list = [None]
    if record:
        moments._observer = lambda w, sents, lx, weights, pref: recorded.__setitem__(
            (*current[0], w.media_item_id, round(w.start_s, 2), round(w.end_s, 2)), (sents, lx, dict(weights), pref))
    out = {}
    try:
        for name, labels in sets.items():
            rows = []
            for pos, (_, q, spans) in enumerate(labels):
                current[0] = (name, pos)
                r = search(session, q, k=10, mode="hybrid", log=False, use_cache=False, embedder=embedder,
                           moments_per_video=10)
                ms = sorted(((m.score, g.media_item_id, m) for g, m in r.hits()), key=lambda x: -x[0])[:10]
                rows.append((pos, spans, [(item_to_video[i], (name, pos, i, round(m.window_start_s, 2), round(m.end_s, 2)),
                                           float(int(m.start_s)), m.window_start_s, m.end_s) for _, i, m in ms]))
            out[name] = rows
    finally:
        moments._observer = None
        session.rollback()
    return out, recorded


def figures(rows, half: int) -> tuple[float, float, int, int]:
    rr, dists = [], []
    for pos, spans, ms in rows:
        if pos % 2 != half:
            continue
        rr.append(relevance.mrr_at(relevance._strict_gains([(v, sec) for v, _, sec, _, _ in ms], spans)))
        dists.append(relevance._first_distance([(v, lo, hi, sec) for v, _, sec, lo, hi in ms], spans))
    med, _, _ = relevance._median_p90(dists)
    return float(np.mean(rr)), med, sum(1 for d in dists if d is not None and d <= 3.0), len(rr)


def examples(rows, recorded, half: int):
    from core.search.moments import sentence_features

    out = []
    for pos, spans, ms in rows:
        if pos % 2 != half:
            continue
        for vid, key, _, lo, hi in ms:
            for s in spans:
                if s.video != vid or not (lo - 2.0 <= s.answer_start <= hi) or key not in recorded:
                    continue
                sents, lx, weights, pref = recorded[key]
                if not sents or not weights:
                    continue
                near = min(range(len(sents)), key=lambda k: abs(sents[k].start_s - s.answer_start))
                if abs(sents[near].start_s - s.answer_start) > MATCH_S:
                    continue
                out.append((np.array(sentence_features(sents, lx, weights, pref[0] if pref else None)), near))
    return out


def fit(data, n_features: int, steps: int = 3000, lr: float = 0.5) -> np.ndarray:
    """Conditional logit by gradient ascent (full batch; the data is a few hundred windows)."""
    w = np.zeros(n_features)
    for _ in range(steps):
        grad = -L2 * w
        for x, y in data:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            grad += x[y] - p @ x
        w += lr * grad / len(data)
    return w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--distractors", action="store_true")
    args = ap.parse_args(argv)
    _corpus.use_scratch_database()
    from core.db import session_scope
    from core.embeddings import get_embedder
    from core.search import moments

    embedder = get_embedder()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    with session_scope() as session:
        item_to_video = relevance.load_chaffee(session, embedder, distractors=args.distractors)
        sets = {n: relevance.chaffee_labels(p) for n, p in relevance.question_sets("all").items()}
        saved = moments.LOCATOR_WEIGHTS
        moments.LOCATOR_WEIGHTS = None
        rule, recorded = _run(session, embedder, item_to_video, sets, record=True)
        data = [ex for name in sets for ex in examples(rule[name], recorded, 0)]
        w = fit(data, len(moments.FEATURES))
        top1 = np.mean([int(np.argmax(x @ w) == y) for x, y in data])
        print(f"fitted on {len(data)} windows of the even positions (sentence picked exactly: {top1:.1%}):")
        for name, c in zip(moments.FEATURES, w):
            print(f"  {name:<22} {c:+.3f}")
        moments.LOCATOR_WEIGHTS = tuple(round(float(c), 3) for c in w)
        fitted, _ = _run(session, embedder, item_to_video, sets, record=False)
        moments.LOCATOR_WEIGHTS = saved
    print(f"\n{'set':<12} {'half':<10} {'locator':<8} {'strict MRR@10':>13} {'med |Δ|':>8} {'≤ 3 s':>7}")
    for name in sets:
        for half, label in ((0, "even/tune"), (1, "odd/held")):
            for tag, res in (("rule", rule), ("fitted", fitted)):
                mrr, med, near, n = figures(res[name], half)
                print(f"{name:<12} {label:<10} {tag:<8} {mrr:13.4f} {med:7.1f}s {near:>3}/{n:<3}")
    print("\nLOCATOR_WEIGHTS = (" + ", ".join(f"{float(c):.3f}" for c in w) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
