"""`search "query"`: the search page's results as text, one block per video.

The first line is always the verdict in words: whether the archive answers the query, or
"No passage in the archive mentions knitting."; moments that do not answer come under the
heading "Related, but not an answer".
"""
from __future__ import annotations

import argparse
import sys
import textwrap

from sqlalchemy import exists, select

from core.db import session_scope
from core.models import Chunk

EMPTY_ARCHIVE_HELP = """The archive is empty: nothing has been indexed yet. Add content with
  python -m core ingest "https://www.youtube.com/watch?v=VIDEO_ID"
  python -m core ingest recording.m4a --title "Q&A call"
  python -m core sync-channel      (queues the whole channel for the scheduler)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search the archive and print the moments with links")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="number of moments to look at (default 10)")
    p.add_argument("--mode", default="hybrid", choices=["hybrid", "vector", "keyword", "hybrid+rerank"])
    p.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from core.search import QueryError, search

    with session_scope() as session:
        try:
            response = search(session, args.query, k=args.k, mode=args.mode)
        except QueryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not response.groups and not session.scalar(select(exists().where(Chunk.id.isnot(None)))):
            print(EMPTY_ARCHIVE_HELP)
            return 0
    verdict = response.verdict
    print(verdict.message if verdict is not None else f"{len(response.groups)} videos.")
    if response.corrected_query:
        print(f"(searched for: {response.corrected_query})")
    if not response.groups:
        return 0
    print()
    if verdict is not None and not verdict.answered:
        print("Related, but not an answer:\n")
    blocks = []
    for n, group in enumerate(response.groups, 1):
        date = group.published_at.date().isoformat() if group.published_at else "date unknown"
        lines = [f"{n}. {group.title} ({date}, {group.source_kind})"]
        for moment in group.moments:
            lines.append(f"   [{moment.timestamp}] {moment.link}")
            snippet = textwrap.shorten(moment.text, width=220, placeholder=" …")
            lines.append(textwrap.indent(textwrap.fill(snippet, width=96), "      "))
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    print(f"\n({response.total_ms:.0f} ms)")
    return 0
