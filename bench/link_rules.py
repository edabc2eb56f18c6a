"""Where else a moment's link could open: the sentence locator's rule beside alternatives, over
the same windows, with the ceiling a perfect chooser would reach.

For each labelled question, the moment bench/relevance.py measures |link − answer start| on
(its best-ranked moment whose window overlaps an answer span), and where each rule opens that
moment's window:
  app             the link search() returns (core/search/moments.py: locate())
  window start    the start of the moment's first chunk (search before the sentence locator)
  oracle          the window's sentence nearest the answer start: the most any rule that picks a
                  sentence of this window could reach
  meaning share   the earliest sentence whose stored vector's cosine with the query is at least
                  SHARE of the window's best, then answer_start() (a question moves on to its answer)
  cross-encoder   the sentence whose next CE_WORDS words the packaged cross-encoder (the app's
                  reranker) scores highest against the query, then answer_start()
Per set and half (even positions, where the locator's constants were tuned; odd, held out):
the median |link − answer start|, how many links open within 3 s of it, and how many are strict
hits (in [answer start − 5 s, answer end]). The cross-encoder rule scores every sentence of a
window (≈ 28 a window, 0.3–0.5 s a question on 2 cores), too slow for a search; it is here to
show what a stronger reader of the passage would gain.

    python bench/link_rules.py [--distractors] [--share 0.85] [--ce-words 25]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402
import relevance  # noqa: E402

WITHIN_S = 3.0  # the issue's target for the median |link − answer start|


@dataclass
class Case:
    """One question's measured moment: its window's sentences and their cosines, and its spans."""

    set_name: str
    position: int
    query: str
    app_link: float
    window_start: float
    sentences: list  # core.search.moments.Sentence
    sims: list[float | None]
    spans: list  # relevance.Span, of the moment's video


def collect(session, embedder, item_to_video, distractors_note: str) -> list[Case]:
    """Run every labelled question through search() and keep its measured moment's window, as
    the locator saw it (its lines and the stored sentence vectors' cosines)."""
    import core.search.shaping as shaping
    from core.search import moments as loc
    from core.search import search

    seen: list[tuple] = []  # (windows, query_vector, space) of each locate() call of one search
    real_locate = shaping.locate

    def recording_locate(session_, windows, weights, prefer=None, *, query_vector=None, space=None):
        seen.append((list(windows), query_vector, space))
        return real_locate(session_, windows, weights, prefer, query_vector=query_vector, space=space)

    shaping.locate = recording_locate
    cases: list[Case] = []
    try:
        for name, path in relevance.question_sets("all").items():
            for pos, (_qid, q, spans) in enumerate(relevance.chaffee_labels(path)):
                seen.clear()
                r = search(session, q, k=10, mode="hybrid", log=False, use_cache=False, embedder=embedder,
                           moments_per_video=10)
                ranked = sorted(((m.score, item_to_video[g.media_item_id], g.media_item_id, m) for g, m in r.hits()),
                                key=lambda x: -x[0])[:10]
                for _, vid, item, m in ranked:
                    lo = m.window_start_s if m.window_start_s is not None else m.start_s
                    mine = [s for s in spans if s.video == vid and lo < s.end and m.end_s > s.start]
                    if not mine:
                        continue
                    window, qvec, space = next(((w, v, sp) for ws, v, sp in seen for w in ws
                                                if w.media_item_id == item and abs(w.start_s - lo) < 1e-6), (None,) * 3)
                    if window is None:
                        break
                    if qvec is not None and space is not None:
                        lines, sims = loc.load_lines_and_similarities(session, [window], qvec, space)
                    else:
                        lines, sims = loc.load_lines(session, [window]), [{}]
                    sents = [s for s in loc.split_sentences(lines[0]) if s.start_s < window.end_s and s.end_s > window.start_s]
                    if sents:
                        cases.append(Case(name, pos, q, float(int(m.start_s)), lo, sents,
                                          loc._sentence_sims(sents, sims[0]), mine))
                    break
    finally:
        shaping.locate = real_locate
    print(f"{len(cases)} questions with a moment overlapping an answer span{distractors_note}", file=sys.stderr)
    return cases


def _distance(case: Case, link: float) -> float:
    return min(abs(link - s.answer_start) for s in case.spans)


def _strict(case: Case, link: float) -> bool:
    return any(s.answer_start - relevance.STRICT_BEFORE_S <= link <= s.end for s in case.spans)


def rules(share: float, ce_words: int):
    """name → rule(case) → link second."""
    from core.search import moments as loc
    from core.search.fusion import FusionConfig
    from core.search.rerank import get_cross_encoder

    cross_encoder = get_cross_encoder(FusionConfig().reranker, max_tokens=128)

    def at(case: Case, i: int) -> float:
        return loc.link_second(case.sentences[loc.answer_start(case.sentences, i)].start_s)

    def meaning_share(case: Case) -> float:
        have = [i for i, v in enumerate(case.sims) if v is not None]
        if not have:
            return case.app_link
        top = max(case.sims[i] for i in have)  # type: ignore[type-var]
        return at(case, min(i for i in have if case.sims[i] >= share * top))  # type: ignore[operator]

    def by_cross_encoder(case: Case) -> float:
        texts = [s.text for s in case.sentences]
        passages = [" ".join(" ".join(texts[i:]).split()[:ce_words]) for i in range(len(texts))]
        scores = cross_encoder.score(case.query, passages)
        return at(case, int(max(range(len(passages)), key=lambda i: scores[i])))

    def oracle(case: Case) -> float:
        return min((loc.link_second(s.start_s) for s in case.sentences), key=lambda link: _distance(case, link))

    return {
        "app": lambda c: c.app_link,
        "window start": lambda c: float(int(c.window_start)),
        "oracle": oracle,
        f"meaning share {share}": meaning_share,
        f"cross-encoder {ce_words} words": by_cross_encoder,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--distractors", action="store_true", help="with the 3,633 NFCorpus abstracts as distractor items")
    ap.add_argument("--share", type=float, default=0.85)
    ap.add_argument("--ce-words", type=int, default=25)
    args = ap.parse_args(argv)
    _corpus.use_scratch_database()

    from core.db import session_scope
    from core.embeddings import get_embedder

    embedder = get_embedder()
    with session_scope() as session:
        item_to_video = relevance.load_chaffee(session, embedder, distractors=args.distractors)
        cases = collect(session, embedder, item_to_video, " (with distractors)" if args.distractors else "")
        session.rollback()
    links = {name: [rule(c) for c in cases] for name, rule in rules(args.share, args.ce_words).items()}
    print(f"{'rule':28s} {'set':10s} {'half':8s} {'n':>3s} {'median s':>8s} {'≤3 s':>5s} {'strict':>6s}")
    for set_name in dict.fromkeys(c.set_name for c in cases):
        for half, keep in (("tuning", 0), ("held-out", 1), ("all", None)):
            idx = [i for i, c in enumerate(cases) if c.set_name == set_name and (keep is None or c.position % 2 == keep)]
            for name, opened in links.items():
                dist = [_distance(cases[i], opened[i]) for i in idx]
                near = sum(d <= WITHIN_S for d in dist)
                strict = sum(_strict(cases[i], opened[i]) for i in idx)
                print(f"{name:28s} {set_name:10s} {half:8s} {len(idx):3d} {statistics.median(dist):8.1f} "
                      f"{near:5d} {strict:6d}")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
