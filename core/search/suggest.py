"""The query log and what is built from it: autocomplete (trending: core/search/trending.py).

Privacy: the log keeps the normalised query text, its result count and latency — no user,
no IP; a random browser-session token for counting distinct askers — and strips anything that looks like an e-mail address, a URL or a
phone number before storing. Admin searches that include hidden items are not logged, and
a logged query that names a hidden item is never suggested or shown as trending to viewers.
A past query is suggested only once at least MIN_QUERY_COUNT searches asked it, so a single
person's query never surfaces to others.

Autocomplete offers only what search can find, and learns from the verdict, not the number
of moments: a past query is suggested (and trends) only when its search was *answered*
(`log_query(…, verdict="answered")`); a query that found only related passages or nothing
is never offered to the next viewer. Titles it suggests are findable by search
(core/search/titles.py searches titles and descriptions, also of videos not transcribed yet).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz
from sqlalchemy import exists, select, text
from sqlalchemy.orm import Session

from core.models import QueryLogEntry
from core.search.preprocess import strip_control

MIN_QUERY_COUNT = 2
# What search() decided about a query (the verdict stage); only ANSWERED queries are learnt from.
VERDICTS = ("answered", "related", "nothing")
ANSWERED = "answered"
_EMAIL = re.compile(r"\S+@\S+\.\S+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_PHONE = re.compile(r"(?:\+?\d[\d\s().-]{6,}\d)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Suggestion:
    text: str
    kind: str  # "query" (asked before), "term" (a word of the archive), "title" (a video)
    count: int = 0


def normalise_query(query: str) -> str:
    """What the log keeps: lower-case, single spaces, personal details and control characters
    (NUL cannot be stored) removed, ≤ 200 chars."""
    q = _EMAIL.sub(" ", strip_control(query or ""))
    q = _URL.sub(" ", q)
    q = _PHONE.sub(" ", q)
    q = _SPACES.sub(" ", q.lower()).strip(" ?!.,;:'\"")
    return q[:200]


def _verdict_value(verdict: object) -> str | None:
    """'answered' | 'related' | 'nothing' from a string or a str-valued enum; None stays None."""
    if verdict is None:
        return None
    value = str(getattr(verdict, "value", verdict)).strip().lower()
    if value not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
    return value


def log_query(
    session: Session, query: str, result_count: int, latency_ms: float, verdict: object = None,
    session_key: str | None = None,
) -> bool:
    """Log one search (normalised text, counts, the verdict). Only verdict="answered" rows feed
    autocomplete and trending; a row logged without a verdict is kept but never suggested.
    `session_key`: the viewer's browser-session token (trending counts distinct sessions). One
    row per session and query: the same tab asking again (a reload, or a write retried after the
    primary was away, core/primary_writes.py) is not counted again; returns False then."""
    q = normalise_query(query)
    if not q:
        return False
    key = (session_key or None) and str(session_key)[:64]
    if key is not None and session.scalar(
        select(exists().where(QueryLogEntry.session_key == key, QueryLogEntry.query == q))
    ):
        return False
    session.add(
        QueryLogEntry(
            query=q, result_count=int(result_count), latency_ms=float(latency_ms), verdict=_verdict_value(verdict),
            session_key=key,
        )
    )
    session.flush()
    return True


def hidden_titles(session: Session) -> list[str]:
    return [t.lower() for t in session.execute(text("SELECT title FROM media_items WHERE NOT visible")).scalars()]


def names_hidden(query: str, hidden: list[str]) -> bool:
    return any(len(query) >= 4 and (query in t or fuzz.partial_ratio(query, t) >= 90) for t in hidden)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Markup: tags, entities, script URLs, markdown links/code. SQL: comments, statement
# separators, quote-then-OR/AND tautologies, statement shapes (SELECT … FROM, DROP TABLE …).
_MARKUP = re.compile(r"[<>{}`]|&#?\w+;|javascript:|\]\(", re.IGNORECASE)
_SQL = re.compile(
    r";|--|/\*|\*/|\b(?:or|and)\s+['\"]?\d+['\"]?\s*=\s*['\"]?\d+|['\"]\s*(?:or|and)\s+['\"\d]"
    r"|\bselect\s+(?:\*|\w+(?:\s*,\s*\w+)*)\s+from\b|\bunion\s+(?:all\s+)?select\b"
    r"|\b(?:drop|truncate|alter)\s+table\b|\binsert\s+into\b|\bdelete\s+from\b|\bupdate\s+\w+\s+set\b"
    r"|\b(?:sleep|benchmark|pg_sleep|char|concat)\s*\(",
    re.IGNORECASE,
)


def looks_like_code(query: str) -> bool:
    """Markup- or SQL-looking text: never offered to other viewers (suggestions, trending)."""
    return bool(_MARKUP.search(query) or _SQL.search(query))


def autocomplete(
    session: Session, prefix: str, *, limit: int = 8, include_hidden: bool = False, vocabulary=None
) -> list[Suggestion]:
    """Completions for what the user has typed so far: popular answered past queries, archive
    words, titles (all findable by search)."""
    p = _SPACES.sub(" ", strip_control(prefix or "").lower()).lstrip()
    out: dict[str, Suggestion] = {}
    hidden = [] if include_hidden else hidden_titles(session)

    rows = session.execute(
        text(
            """
            SELECT query, count(*) AS n FROM query_log
            WHERE verdict = :answered AND query LIKE :p ESCAPE '\\'
            GROUP BY query HAVING count(*) >= :min_n
            ORDER BY n DESC, max(at) DESC LIMIT :lim
            """
        ),
        {"p": _like_escape(p) + "%", "min_n": MIN_QUERY_COUNT, "lim": limit * 2, "answered": ANSWERED},
    ).all()
    for q, n in rows:
        if q != p and not names_hidden(q, hidden) and not looks_like_code(q):
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


def box_suggestions(session: Session, *, include_hidden: bool = False, queries: int = 40,
                    titles: int = 1000) -> list[Suggestion]:
    """What the page's search box filters while the viewer types: answered questions several
    viewers asked (kind "query"), then video titles, newest first (kind "title"); one entry per
    text, the first kind wins."""
    out: dict[str, Suggestion] = {}
    for s in popular_queries(session, limit=queries, include_hidden=include_hidden):
        out.setdefault(s.text, s)
    visible = "" if include_hidden else "WHERE visible"
    rows = session.execute(
        text(f"SELECT title FROM media_items {visible} ORDER BY published_at DESC NULLS LAST LIMIT :lim"),
        {"lim": int(titles)},
    ).scalars()
    for title in rows:
        out.setdefault(title, Suggestion(title, "title"))
    return list(out.values())
