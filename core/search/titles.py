"""Title and description search: a title finds its video, transcribed or not.

Transcript search cannot find a video whose transcript never says the words of its title, nor
one that is listed but not transcribed yet (queued, being transcribed, held for review). This
stage searches `media_items.search_tsv` (title weight A, description weight B; GIN index) and
returns a short, separate list beside the moments, each with the item's transcription status,
so a viewer sees "queued for transcription" instead of nothing. Hidden items never appear
unless the caller is an admin (include_hidden).

A title matches when it holds most of the query's weight: each query word counts by its
rarity among all titles and descriptions (idf), a word in the title fully and one only in the
description half (descriptions repeat boilerplate). Words found in more than COMMON_SHARE of
the titles ("carnivore", "diet", "chaffee" in this channel) cannot bring a title in on their
own, or every search would list dozens of titles; a query that *is* a title (picked from
autocomplete) always finds it.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.links import deep_link
from core.search.records import PreparedQuery, SearchFilters
from core.search.retrieval import filter_sql

TITLE_LIMIT = 5  # a few lines under the moments, never a second result page
MIN_SHARE = 0.6  # of the query's idf weight that the title (+ half the description) must hold
COMMON_SHARE = 0.25  # a word in more titles than this is too common to select a title alone
DESCRIPTION_WEIGHT = 0.5


class TitleStatus(str, Enum):
    """Where the matched item stands, in the words the page shows."""

    TRANSCRIBED = "transcribed"
    QUEUED = "queued"  # waiting in the backfill queue (or for a retry)
    TRANSCRIBING = "transcribing"  # being fetched or transcribed now
    NOT_TRANSCRIBED = "not transcribed"  # skipped, dead-lettered or held for review

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def of(cls, item_status: str) -> "TitleStatus":
        """The viewer-facing status of a media_items.status value (core.models.ITEM_STATUSES)."""
        return _FROM_ITEM.get(item_status, cls.NOT_TRANSCRIBED)


_LABELS = {
    TitleStatus.TRANSCRIBED: "title match",
    TitleStatus.QUEUED: "queued for transcription",
    TitleStatus.TRANSCRIBING: "being transcribed",
    TitleStatus.NOT_TRANSCRIBED: "not transcribed",
}
_FROM_ITEM = {
    "indexed": TitleStatus.TRANSCRIBED,
    "queued": TitleStatus.QUEUED,
    "failed": TitleStatus.QUEUED,  # not settled: the queue tries it again
    "fetching": TitleStatus.TRANSCRIBING,
    "transcribing": TitleStatus.TRANSCRIBING,
    "review": TitleStatus.NOT_TRANSCRIBED,
    "skipped": TitleStatus.NOT_TRANSCRIBED,
    "dead": TitleStatus.NOT_TRANSCRIBED,
}


@dataclass(frozen=True)
class TitleMatch:
    """A video whose title (or description) matches the query."""

    media_item_id: int
    title: str
    url: str
    link: str  # opens the video at its start (YouTube, or the app's player for a local file)
    status: TitleStatus
    source_kind: str
    published_at: datetime | None
    duration_s: float | None
    score: float  # share of the query's weight the title holds (1.0: the query is the title)
    has_moments: bool = False  # the same video is among the response's moments too

    @property
    def transcribed(self) -> bool:
        return self.status is TitleStatus.TRANSCRIBED


# ---------------------------------------------------------------------------------------------
# Word rarity among titles, per content version
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TitleStats:
    items: int
    df: dict[str, int]  # lexeme → items whose title or description holds it

    def idf(self, lexeme: str) -> float:
        n, d = max(self.items, 1), self.df.get(lexeme, 0)
        return math.log(1.0 + (n - d + 0.5) / (d + 0.5))

    def common(self, lexeme: str) -> bool:
        return self.items > 0 and self.df.get(lexeme, 0) > COMMON_SHARE * self.items


_stats_lock = threading.Lock()
_stats_cache: dict[object, TitleStats] = {}
_lexeme_lock = threading.Lock()
_lexeme_cache: OrderedDict[str, list[str]] = OrderedDict()


def title_stats(session: Session, version: object) -> TitleStats:
    """Document frequencies over every item's title + description (ts_stat; once per version)."""
    with _stats_lock:
        found = _stats_cache.get(version)
    if found is not None:
        return found
    n = session.execute(text("SELECT count(*) FROM media_items")).scalar_one()
    df: dict[str, int] = dict(
        session.execute(text("SELECT word, ndoc FROM ts_stat('SELECT search_tsv FROM media_items')")).tuples().all()
    ) if n else {}
    stats = TitleStats(int(n), {w: int(d) for w, d in df.items()})
    with _stats_lock:
        _stats_cache.clear()
        _stats_cache[version] = stats
    return stats


def _lexemes(session: Session, query: str) -> list[str]:
    """The query's words as PostgreSQL stems them ('english', as search_tsv), kept per query text:
    a question asked again costs no round trip (like search()'s query vectors)."""
    with _lexeme_lock:
        if query in _lexeme_cache:
            _lexeme_cache.move_to_end(query)
            return _lexeme_cache[query]
    found = session.execute(text("SELECT tsvector_to_array(to_tsvector('english', :q))"), {"q": query}).scalar_one()
    lexemes = list(dict.fromkeys(found or []))
    with _lexeme_lock:
        _lexeme_cache[query] = lexemes
        while len(_lexeme_cache) > 1024:
            _lexeme_cache.popitem(last=False)
    return lexemes


# ---------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------


# One statement whose text depends only on the filters, so the driver can keep it prepared.
# Every query value is a bound array; the lexemes come from PostgreSQL's own to_tsvector.
_TITLES_SQL = """
    WITH cand AS MATERIALIZED (
        SELECT m.id, m.title, m.url, m.media_path, m.status, m.published_at, m.duration_s, m.source_id,
               m.search_tsv AS tsv,
               tsvector_to_array(ts_filter(m.search_tsv, '{{a}}')) AS in_title,
               tsvector_to_array(m.search_tsv) AS anywhere
        FROM media_items m
        WHERE m.search_tsv @@ (coalesce((SELECT string_agg(quote_literal(x), ' | ')::tsquery
                                         FROM unnest(CAST(:select AS text[])) x), ''::tsquery)
                               || phraseto_tsquery('english', :typed))
          AND {where}
    ), scored AS (
        SELECT c.*,
               -- the query is the title: no title word the query lacks, the query's words in order
               (c.in_title <@ tsvector_to_array(to_tsvector('english', :typed))
                AND c.tsv @@ phraseto_tsquery('english', :typed)) AS is_title,
               c.anywhere && CAST(:rare AS text[]) AS rare_hit,
               (SELECT coalesce(sum(u.w * CASE WHEN u.lx = ANY(c.in_title) THEN 1.0
                                               WHEN u.lx = ANY(c.anywhere) THEN :desc_w ELSE 0 END), 0)
                FROM unnest(CAST(:lx AS text[]), CAST(:w AS float8[])) AS u(lx, w)) AS share
        FROM cand c
    )
    SELECT sc.id, sc.title, sc.url, sc.media_path, sc.status, sc.published_at, sc.duration_s, s.kind,
           sc.is_title, sc.share
    FROM scored sc JOIN sources s ON s.id = sc.source_id
    WHERE sc.is_title OR (sc.rare_hit AND sc.share >= :min_share)
    ORDER BY sc.is_title DESC, sc.share DESC, sc.published_at DESC NULLS LAST, sc.id
    LIMIT :lim
"""


def title_matches(
    session: Session,
    prepared: PreparedQuery,
    *,
    version: object,
    filters: SearchFilters | None = None,
    include_hidden: bool = False,
    shown: set[int] | frozenset[int] = frozenset(),
    limit: int = TITLE_LIMIT,
    link_base: str = "/",
) -> list[TitleMatch]:
    """Items whose title/description match the query, best first; `shown`: ids of the items the
    response lists with moments (marked has_moments). Filters apply as to moments; a speaker
    filter leaves none (titles have no speaker)."""
    filters = filters or SearchFilters()
    if filters.speaker and filters.speaker.strip():
        return []
    stats = title_stats(session, version)
    if not stats.items:
        return []
    lexemes = _lexemes(session, prepared.cleaned)
    weights = {lx: stats.idf(lx) for lx in lexemes}
    total = sum(weights.values()) or 1.0
    rare = [lx for lx in lexemes if not stats.common(lx)]
    # Candidates, in one GIN scan. A title missing all of the heaviest words that together weigh
    # more than 1 - MIN_SHARE cannot reach MIN_SHARE, and the rare words are the heaviest (idf), so
    # a share match holds one of `heavy` ∩ rare. A query that is a title matches its phrase.
    heavy, acc = [], 0.0
    for lx in sorted(lexemes, key=lambda lx: -weights[lx]):
        heavy.append(lx)
        acc += weights[lx] / total
        if acc > 1 - MIN_SHARE:
            break
    selecting = [lx for lx in heavy if lx in rare]

    where, params = filter_sql(filters, include_hidden)
    if prepared.operators:
        # Quotes and -exclusions the user typed hold for titles too.
        where += " AND m.search_tsv @@ websearch_to_tsquery('english', :websearch)"
        params["websearch"] = prepared.original
    params |= {
        "select": selecting,
        "lx": lexemes,
        "w": [weights[lx] / total for lx in lexemes],
        "rare": rare,
        "typed": prepared.original,
        "desc_w": DESCRIPTION_WEIGHT,
        "min_share": MIN_SHARE,
        "lim": int(limit),
    }
    out = []
    for row in session.execute(text(_TITLES_SQL.format(where=where)), params).all():
        out.append(
            TitleMatch(
                media_item_id=row.id,
                title=row.title,
                url=row.url,
                link=deep_link(row, 0, base=link_base),
                status=TitleStatus.of(row.status),
                source_kind=row.kind,
                published_at=row.published_at,
                duration_s=row.duration_s,
                score=1.0 if row.is_title else round(float(row.share), 3),
                has_moments=row.id in shown,
            )
        )
    return out
