"""`reembed`: move every indexed chunk into the configured embedding model's vector space, and
give every transcript sentence its vector there (core/sentence_index.py: the link locator's).

The scheduler does the same in the background (a batch a minute); this runs it to the end
now, printing progress, e.g. after changing EMBEDDING_MODEL on a machine without a scheduler.
"""
from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reembed", help="re-embed chunks indexed with another model into the configured one")
    p.add_argument("--status", action="store_true", help="only say how many items are still to do")
    p.set_defaults(func=cmd_reembed)


def cmd_reembed(args: argparse.Namespace) -> int:
    from core.db import session_scope
    from core.embeddings import ensure_space, get_embedder
    from core.reembed import PaidReembedRefused, ReembedReport, pending_count, reembed_pending

    embedder = get_embedder()
    if args.status:
        with session_scope() as s:
            space = ensure_space(s, embedder)
            left = pending_count(s, space.id)
        print(ReembedReport(embedder.model, 0, 0, left, 0.0).line() if left else
              ReembedReport(embedder.model, 0, 0, 0, 0.0).line())
        return 0

    def show(report: ReembedReport) -> None:
        print(f"\r  {report.items} item(s), {report.chunks} chunks re-embedded", end="", file=sys.stderr, flush=True)

    try:
        report = reembed_pending(embedder=embedder, progress=show)
    except PaidReembedRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.items:
        print(file=sys.stderr)
    print(report.line())
    from core.sentence_index import backfill

    filled = backfill(embedder=embedder)
    if filled.items:  # on stderr beside the progress: stdout keeps its one summary line
        print(f"sentence vectors: {filled.sentences} sentences of {filled.items} item(s) embedded", file=sys.stderr)
    return 0
