"""The query log and what is built from it: autocomplete and trending topics.

Privacy: the log keeps the normalised query text, its result count and latency — no user,
no session, no IP — and strips anything that looks like an e-mail address, a URL or a
phone number before storing. Admin searches that include hidden items are not logged, and
a logged query that names a hidden item is never suggested or shown as trending to viewers.
A past query is suggested only once at least MIN_QUERY_COUNT searches asked it, so a single
person's query never surfaces to others.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.models import QueryLogEntry

MIN_QUERY_COUNT = 2
_EMAIL = re.compile(r"\S+@\S+\.\S+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_PHONE = re.compile(r"(?:\+?\d[\d\s().-]{6,}\d)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Suggestion:
    text: str
    kind: str  # "query" (asked before), "term" (a word of the archive), "title" (a video)
    count: int = 0


@dataclass(frozen=True)
class Trend:
    query: str
    count: int  # searches in the window
    previous: int  # searches in the window before it (rising topics have count > previous)


def normalise_query(query: str) -> str:
    """What the log keeps: lower-case, single spaces, personal details removed, ≤ 200 chars."""
    q = _EMAIL.sub(" ", query)
    q = _URL.sub(" ", q)
    q = _PHONE.sub(" ", q)
    q = _SPACES.sub(" ", q.lower()).strip(" ?!.,;:'\"")
    return q[:200]


def log_query(session: Session, query: str, result_count: int, latency_ms: float, *, verdict: str | None = None) -> None:
    """Log one search. `verdict` is the search's verdict value ("answered", "related", "nothing").

    Autocomplete and trending learn only from searches that found something (result_count > 0):
    until the log has a verdict column of its own, a search the archive does not answer is
    stored with result_count 0, however many related moments it showed.
    """
    q = normalise_query(query)
    if q:
        count = 0 if verdict is not None and verdict != "answered" else int(result_count)
        session.add(QueryLogEntry(query=q, result_count=count, latency_ms=float(latency_ms)))
        session.flush()


def _hidden_titles(session: Session) -> list[str]:
    return [t.lower() for t in session.execute(text("SELECT title FROM media_items WHERE NOT visible")).scalars()]


def _names_hidden(query: str, hidden: list[str]) -> bool:
    return any(len(query) >= 4 and (query in t or fuzz.partial_ratio(query, t) >= 90) for t in hidden)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def autocomplete(
    session: Session, prefix: str, *, limit: int = 8, include_hidden: bool = False, vocabulary=None
) -> list[Suggestion]:
    """Completions for what the user has typed so far: popular past queries, archive words, titles."""
    p = _SPACES.sub(" ", (prefix or "").lower()).lstrip()
    out: dict[str, Suggestion] = {}
    hidden = [] if include_hidden else _hidden_titles(session)

    rows = session.execute(
        text(
            """
            SELECT query, count(*) AS n FROM query_log
            WHERE result_count > 0 AND query LIKE :p ESCAPE '\\'
            GROUP BY query HAVING count(*) >= :min_n
            ORDER BY n DESC, max(at) DESC LIMIT :lim
            """
        ),
        {"p": _like_escape(p) + "%", "min_n": MIN_QUERY_COUNT, "lim": limit * 2},
    ).all()
    for q, n in rows:
        if q != p and not _names_hidden(q, hidden):
            out.setdefault(q, Suggestion(q, "query", int(n)))

    last = p.split(" ")[-1] if p else ""
    if vocabulary is not None and len(last) >= 3:
        head = p[: len(p) - len(last)]
        words = sorted(
            (w for w in vocabulary.words if w.startswith(last) and w != last),
            key=lambda w: -vocabulary.counts[w],
        )[:3]
        for w in words:
            out.setdefault(head + w, Suggestion(head + w, "term", int(vocabulary.counts[w])))

    if p:
        visible = "" if include_hidden else "AND visible"
        titles = session.execute(
            text(
                f"""
                SELECT title FROM media_items
                WHERE (title ILIKE :start ESCAPE '\\' OR title ILIKE :word ESCAPE '\\') {visible}
                ORDER BY published_at DESC NULLS LAST, id DESC LIMIT :lim
                """
            ),
            {"start": _like_escape(p) + "%", "word": "% " + _like_escape(p) + "%", "lim": limit},
        ).scalars()
        for title in titles:
            out.setdefault(title.lower(), Suggestion(title, "title"))
    return list(out.values())[:limit]


def popular_queries(session: Session, *, limit: int = 50, include_hidden: bool = False) -> list[Suggestion]:
    return [s for s in autocomplete(session, "", limit=limit, include_hidden=include_hidden) if s.kind == "query"]


def trending(
    session: Session, *, days: int = 7, limit: int = 10, include_hidden: bool = False
) -> list[Trend]:
    """Most-asked queries of the last `days` days (with results), and their count the period before."""
    rows = session.execute(
        text(
            """
            SELECT query,
                   count(*) FILTER (WHERE at >= now() - make_interval(days => :days)) AS now_n,
                   count(*) FILTER (WHERE at < now() - make_interval(days => :days)) AS before_n
            FROM query_log
            WHERE at >= now() - make_interval(days => :days * 2) AND result_count > 0
            GROUP BY query
            HAVING count(*) FILTER (WHERE at >= now() - make_interval(days => :days)) >= :min_n
            ORDER BY now_n DESC, (count(*) FILTER (WHERE at >= now() - make_interval(days => :days))
                                  - count(*) FILTER (WHERE at < now() - make_interval(days => :days))) DESC,
                     query
            LIMIT :lim
            """
        ),
        {"days": int(days), "min_n": MIN_QUERY_COUNT, "lim": limit * 2},
    ).all()
    hidden = [] if include_hidden else _hidden_titles(session)
    return [Trend(q, int(n), int(b)) for q, n, b in rows if not _names_hidden(q, hidden)][:limit]
