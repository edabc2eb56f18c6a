""""Trending searches" that one person cannot fill: what several viewers asked and the archive answered.

A question trends only when
- at least MIN_SESSIONS distinct browser sessions asked it in the window (query_log.session_key:
  the same visitor searching the same words again counts once; a row logged outside the page,
  e.g. by the CLI, has no session and counts as its own),
- its search was *answered* (never one the verdict said "related only" or "nothing" on),
- it does not look like markup or SQL (`<script>`, `' OR 1=1 --`): such text is shown to nobody,
  escaped or not,
- it names no hidden item (unpublished Zoom meetings) unless the reader is an admin,
- and the admin has not hidden a term it contains (Admin → Audit & feedback; `hide_term`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.models import TrendingHidden
from core.search import cache
from core.search.suggest import ANSWERED, hidden_titles, looks_like_code, names_hidden, normalise_query

MIN_SESSIONS = 3
WINDOW_DAYS = 7

@dataclass(frozen=True)
class Trend:
    query: str
    count: int  # distinct sessions that asked it in the window
    previous: int  # distinct sessions in the window before it (rising topics have count > previous)


def _word_pattern(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(term) + r"(?!\w)")


def hidden_terms(session: Session) -> list[str]:
    return list(session.execute(select(TrendingHidden.term).order_by(TrendingHidden.term)).scalars())


def hide_term(session: Session, term: str, actor: str) -> str:
    """Hide every trending question containing `term` (whole words); returns the stored form."""
    cleaned = normalise_query(term)
    if not cleaned:
        raise ValueError("Type the word or question to hide from Trending.")
    session.execute(pg_insert(TrendingHidden).values(term=cleaned, hidden_by=actor).on_conflict_do_nothing())
    # A new content version: every process (and every replica, once it has replayed this)
    # drops the Trending it cached, instead of showing the hidden question until a TTL runs out.
    cache.invalidate(session)
    return cleaned


def unhide_term(session: Session, term: str) -> bool:
    removed = session.execute(delete(TrendingHidden).where(TrendingHidden.term == term).returning(TrendingHidden.term))
    if removed.first() is None:
        return False
    cache.invalidate(session)
    return True


def trending(
    session: Session, *, days: int = WINDOW_DAYS, limit: int = 10, include_hidden: bool = False,
    min_sessions: int = MIN_SESSIONS,
) -> list[Trend]:
    """Answered questions most sessions asked in the last `days` days (with the window before)."""
    rows = session.execute(
        text(
            """
            SELECT query, now_n, before_n FROM (
                SELECT query,
                       count(DISTINCT session_key) FILTER (WHERE recent)
                         + count(*) FILTER (WHERE recent AND session_key IS NULL) AS now_n,
                       count(DISTINCT session_key) FILTER (WHERE NOT recent)
                         + count(*) FILTER (WHERE NOT recent AND session_key IS NULL) AS before_n
                FROM (SELECT query, session_key, at >= now() - make_interval(days => :days) AS recent
                      FROM query_log
                      WHERE at >= now() - make_interval(days => :days * 2) AND verdict = :answered) q
                GROUP BY query
            ) t
            WHERE now_n >= :min_n
            ORDER BY now_n DESC, now_n - before_n DESC, query
            LIMIT :lim
            """
        ),
        {"days": int(days), "min_n": int(min_sessions), "lim": limit * 3 + 20, "answered": ANSWERED},
    ).all()
    hidden = [] if include_hidden else hidden_titles(session)
    blocked = [_word_pattern(t) for t in hidden_terms(session)]
    out = [
        Trend(q, int(n), int(b)) for q, n, b in rows
        if not looks_like_code(q) and not names_hidden(q, hidden) and not any(p.search(q) for p in blocked)
    ]
    return out[:limit]
