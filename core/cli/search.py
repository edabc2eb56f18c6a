"""`search "query"`: the search page's results as text, one block per video.

The first line is always the verdict in words: whether the archive answers the query, or
"No passage in the archive mentions knitting."; without an answer, the moments shown come under
the heading "Related, but not an answer", and under an answered verdict a video or moment that
does not itself answer is marked "related, not an answer". When spelling correction changed the query, the next line
says what was searched and how to search what was typed (`--exact`). Videos whose title matches
are listed with their transcription status ("queued for transcription"), so a video that is
listed but not transcribed yet is shown instead of nothing.

Like the page it reads from the search replicas when SEARCH_DATABASE_URL is set (core/search_db.py);
the query-log row goes to the primary.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import textwrap

from sqlalchemy import exists, select

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
    p.add_argument("--exact", action="store_true",
                   help="search the words exactly as typed (no spelling correction)")
    p.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from core import search_db
    from core.search import QueryError

    try:
        response = search_db.search(args.query, k=args.k, mode=args.mode, correct=not args.exact)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except search_db.SearchUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not response.groups and not response.titles and not search_db.read(
        lambda session: session.scalar(select(exists().where(Chunk.id.isnot(None))))
    ):
        print(EMPTY_ARCHIVE_HELP)
        return 0
    verdict = response.verdict
    answered = verdict is None or verdict.answered
    print(verdict.message if verdict is not None else f"{len(response.groups)} videos.")
    if response.corrected_query:
        print(f"(searched for: {response.corrected_query} — search instead for {_shell_quote(response.search_instead)}"
              " with --exact)")
    titles = _titles_block(response)
    if titles and not answered:
        # Nothing answers: a video whose title matches (perhaps not transcribed yet) comes first.
        print()
        print(titles)
    if not response.groups:
        return 0
    print()
    if not answered:
        print("Related, but not an answer:\n")
    blocks = []
    for n, group in enumerate(response.groups, 1):
        date = group.published_at.date().isoformat() if group.published_at else "date unknown"
        # Under an answered verdict, a video or moment that does not itself answer says so.
        related = answered and not group.answers
        lines = [f"{n}. {group.title} ({date}, {group.source_kind}){' — related, not an answer' if related else ''}"]
        for moment in group.moments:
            label = "  (related, not an answer)" if answered and not related and not moment.answers else ""
            lines.append(f"   [{moment.timestamp}] {moment.link}{label}")
            # The words said around where the link opens (the page's snippet), not the window's start.
            lines.append(textwrap.indent(textwrap.fill(moment.snippet_text or moment.text, width=96), "      "))
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    if titles and answered:
        print()
        print(titles)
    print(f"\n({response.total_ms:.0f} ms)")
    return 0


def _shell_quote(value: str | None) -> str:
    """The typed query as one shell word to paste back: 'like this' (shlex when it holds a quote)."""
    value = value or ""
    return f"'{value}'" if "'" not in value else shlex.quote(value)


def _titles_block(response) -> str:
    """'Videos whose title matches:' and one line per video the moments do not already show,
    with its status in words for one not transcribed yet; "" when there is none."""
    extra = [t for t in response.titles if not t.has_moments]
    if not extra:
        return ""
    lines = ["Videos whose title matches:"]
    for t in extra:
        status = "" if t.transcribed else f" — {t.status.label}"
        lines.append(f"   {t.title}{status}")
        lines.append(f"      {t.link}")
    return "\n".join(lines)
