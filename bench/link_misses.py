"""The sentence locator's misses on the *tuning* half (even positions) of the transcript sets:
for each even-position question whose first relevant moment's link is not a strict hit (link
outside [answer start − 5 s, answer end]), print the link second, the answer start, the span,
the chosen sentence and the sentence said at the answer start. Odd positions are never printed
(they are the held-out half of bench/relevance.py).

    python bench/link_misses.py [--distractors] [--set 100-set|paraphrase|all]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402
import relevance  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--distractors", action="store_true")
    ap.add_argument("--set", dest="qset", default="all", choices=("all", "100-set", "paraphrase"))
    ap.add_argument("--all-rows", action="store_true", help="print strict hits too")
    ap.add_argument("--window", type=float, nargs=3, metavar=("TARGET_S", "MAX_S", "OVERLAP_S"),
                    help="chunk the transcripts with these window settings (core/chunking.py) instead of the defaults")
    args = ap.parse_args(argv)
    _corpus.use_scratch_database()

    from core.db import session_scope
    from core.embeddings import get_embedder
    from core.search import search
    from core.search.moments import Window, load_lines, split_sentences

    embedder = get_embedder()
    with session_scope() as session:
        item_to_video = relevance.load_chaffee(session, embedder, distractors=args.distractors, window=args.window)
        video_item = {v: i for i, v in item_to_video.items()}
        for name, path in relevance.question_sets(args.qset).items():
            labels = relevance.chaffee_labels(path)
            strict_rr, n, dists = 0.0, 0, []
            print(f"\n== {name} (even positions only) ==")
            for pos, (qid, q, spans) in enumerate(labels):
                if pos % 2:
                    continue
                n += 1
                r = search(session, q, k=10, mode="hybrid", log=False, use_cache=False, embedder=embedder,
                           moments_per_video=10)
                moments = sorted(((m.score, item_to_video[g.media_item_id], m) for g, m in r.hits()),
                                 key=lambda x: -x[0])[:10]
                links = [(vid, float(int(m.start_s))) for _, vid, m in moments]
                gains = relevance._strict_gains(links, spans)
                rr = relevance.mrr_at(gains)
                strict_rr += rr
                placed = [(vid, m.window_start_s if m.window_start_s is not None else m.start_s, m.end_s,
                           float(int(m.start_s))) for _, vid, m in moments]
                dists.append(relevance._first_distance(placed, spans))
                ovl = next((k for k, (_, vid, m) in enumerate(moments)
                            if any(s.video == vid and (m.window_start_s or m.start_s) < s.end and m.end_s > s.start
                                   for s in spans)), None)
                if rr == 1.0 and not args.all_rows:
                    continue
                d = dists[-1]
                print(f"\n{qid} strict-rr {rr:.2f} ovl-rank {ovl if ovl is None else ovl + 1} "
                      f"Δ {'-' if d is None else f'{d:.0f}s'}  {q}")
                for s in spans:
                    print(f"   span {s.video} {s.start:.0f}–{s.end:.0f} answer@{s.answer_start:.0f}")
                for k, (sc, vid, m) in enumerate(moments[:4]):
                    hit = "HIT" if gains[k] else "   "
                    print(f"   #{k + 1} {hit} {vid[:11]} win {m.window_start_s or m.start_s:.0f}–{m.end_s:.0f} "
                          f"link {m.start_s:.0f} score {sc:.3f} :: {(m.sentence or '')[:110]}")
                for s in spans[:2]:
                    if s.video not in video_item:
                        continue
                    lines = load_lines(session, [Window(video_item[s.video], s.answer_start - 6, s.answer_start + 8)])[0]
                    sents = [x for x in split_sentences(lines) if x.end_s > s.answer_start - 6]
                    for x in sents[:4]:
                        mark = ">>" if x.start_s <= s.answer_start + 1 and x.end_s > s.answer_start else "  "
                        print(f"      {mark} {x.start_s:7.1f} [{x.speaker}] {x.text[:110]}")
            med, p90, have = relevance._median_p90(dists)
            print(f"\n{name} even: strict MRR@10 {strict_rr / n:.4f} over {n}; |link − answer start| median {med:.1f} s, "
                  f"p90 {p90:.1f} s ({have} with an overlapping moment)")
        session.rollback()
    return 0


if __name__ == "__main__":
    sys.exit(main())
