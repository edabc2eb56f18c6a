"""The two retrievers: nearest chunks by cosine (pgvector HNSW) and full-text matches
(Postgres websearch_to_tsquery, English configuration). Each returns ranked Candidates.

Both apply the same filters and the privacy rule in SQL, inside the ranking query, so a
filtered search still fills its k: the vector side turns on pgvector's iterative index
scan (hnsw.iterative_scan), which keeps walking the graph until enough rows pass the
filter instead of returning the few of the first ef_search neighbours that happen to.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search import cache
from core.search.records import Candidate, SearchFilters

EF_SEARCH = 400  # HNSW candidate list: its recall@10 at 100k chunks is printed by bench/search_latency.py


def filter_sql(filters: SearchFilters | None, include_hidden: bool) -> tuple[str, dict]:
    """WHERE fragments over `c` (chunks) and `m` (media_items) with their bound parameters.

    Only fixed SQL text here; every user value goes in as a bound parameter.
    """
    clauses: list[str] = []
    params: dict = {}
    if not include_hidden:
        clauses.append("m.visible")
    f = filters or SearchFilters()
    if f.date_from:
        clauses.append("m.published_at >= :f_date_from")
        params["f_date_from"] = f.date_from
    if f.date_to:
        clauses.append("m.published_at < :f_date_to")
        params["f_date_to"] = f.date_to + timedelta(days=1)  # the end day is included
    if f.sources:
        clauses.append("m.source_id IN (SELECT id FROM sources WHERE kind = ANY(:f_sources))")
        params["f_sources"] = list(f.sources)
    if f.min_duration_s is not None:
        clauses.append("m.duration_s >= :f_min_dur")
        params["f_min_dur"] = float(f.min_duration_s)
    if f.max_duration_s is not None:
        clauses.append("m.duration_s <= :f_max_dur")
        params["f_max_dur"] = float(f.max_duration_s)
    if f.speaker and f.speaker.strip():
        needle = f.speaker.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("c.speakers ILIKE :f_speaker")
        params["f_speaker"] = f"%{needle}%"
        if f.speaker_only:  # names are comma-separated (speaker names never hold a comma)
            clauses.append("c.speakers NOT LIKE '%,%'")
    if f.media_item_id is not None:
        clauses.append("m.id = :f_item")
        params["f_item"] = int(f.media_item_id)
    return (" AND ".join(clauses) or "TRUE"), params


def vector_candidates(
    session: Session,
    query_vector: np.ndarray,
    *,
    space_id: int,
    dim: int,
    limit: int,
    filters: SearchFilters | None = None,
    include_hidden: bool = False,
    ef_search: int = EF_SEARCH,
    exact: bool = False,
) -> list[Candidate]:
    """Chunks nearest to the query vector, best first (score = cosine similarity).

    `exact=True` bypasses the index (a sequential scan): the ground truth for recall.
    """
    where, params = filter_sql(filters, include_hidden)
    sid, d = int(space_id), int(dim)  # integers from our own table: safe to inline
    # The index is a partial expression index: the planner uses it only when the query repeats
    # the indexed expression and the predicate literally, hence the inlined integers.
    distance = f"(c.embedding::vector({d}) <=> CAST(:qvec AS vector({d})))"
    order = f"{distance} + 0" if exact else distance  # "+ 0" hides the expression from the index
    session.execute(
        text("SELECT set_config('hnsw.ef_search', :ef, true), set_config('hnsw.iterative_scan', :mode, true)"),
        {"ef": str(max(ef_search, limit)), "mode": "off" if exact else "relaxed_order"},
    )
    # relaxed_order may return neighbours slightly out of order: sort the k we got once more.
    sql = text(
        f"""
        SELECT id, dist FROM (
            SELECT c.id, {distance} AS dist
            FROM chunks c JOIN media_items m ON m.id = c.media_item_id
            WHERE c.embedding_space_id = {sid} AND {where}
            ORDER BY {order}
            LIMIT :limit
        ) nearest ORDER BY dist, id
        """
    )
    vec = np.asarray(query_vector, dtype=np.float32)
    rows = session.execute(sql, {**params, "qvec": vec, "limit": int(limit)}).all()
    return [Candidate(int(cid), rank, 1.0 - float(dist)) for rank, (cid, dist) in enumerate(rows, start=1)]


# ---------------------------------------------------------------------------------------------
# Keyword side: term weights
# ---------------------------------------------------------------------------------------------

STATS_SAMPLE_CHUNKS = 20_000  # document frequencies from an even sample: bounded cost at any size
# Chunks the keyword query may score. Scoring is per matching row, so a common word in a big
# archive (in a third of the chunks) would dominate the query's time; candidates come from the query's
# rarest words until about this many rows, and common words only add to those rows' scores.
ROW_BUDGET = 2_000
# The hard bound behind it: the rarest word alone may hold more (a one-word query, "energy", is in
# 2% of a million chunks: 20k rows, each a heap page of a fat row, ≈ 0.2 s). Past this many the
# rows scored are the first ones the index hands over, and the vector side's candidates, whose
# keyword share retrieval.rescore reads anyway, carry the ranking.
ROW_CAP = 4_000


@dataclass(frozen=True)
class KeywordStats:
    """Document frequency of each lexeme (Postgres 'english' stems) over a sample of chunks."""

    chunks: int  # chunks in the sample
    df: dict[str, int]
    scale: float = 1.0  # archive size / sample size

    def rows(self, lexeme: str) -> float:
        """Estimated chunks of the whole archive that contain the lexeme."""
        return self.df.get(lexeme, 0) * self.scale

    def idf(self, lexeme: str) -> float:
        # BM25's idf: a word found in few chunks says much more about a match than a common one.
        n, d = max(self.chunks, 1), self.df.get(lexeme, 0)
        return math.log(1.0 + (n - d + 0.5) / (d + 0.5))


def build_keyword_stats(session: Session) -> KeywordStats:
    """KeywordStats of the archive now: ts_stat over a sample of chunks."""
    total = session.execute(text("SELECT coalesce(max(id), 0) FROM chunks")).scalar_one()
    stride = max(1, int(total // STATS_SAMPLE_CHUNKS) + 1) if total > STATS_SAMPLE_CHUNKS else 1
    sample = f"SELECT tsv FROM chunks WHERE id % {int(stride)} = 0"  # integers only: safe to inline
    n = session.execute(text(f"SELECT count(*) FROM ({sample}) s")).scalar_one()
    df: dict[str, int] = dict(session.execute(text(f"SELECT word, ndoc FROM ts_stat('{sample}')")).tuples().all()) if n else {}
    return KeywordStats(int(n), {w: int(d) for w, d in df.items()}, float(stride))


keyword_stats = cache.per_version(build_keyword_stats)  # keyword_stats(session, version)


_lexemes_lock = threading.Lock()
_lexemes_cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()


def query_lexemes(session: Session, keyword: str) -> list[str]:
    """The query's words as Postgres stems them (the same 'english' configuration as chunks.tsv).

    Kept per query text (the stems depend on the text alone): a question asked again costs no
    round trip, as search()'s query vectors."""
    with _lexemes_lock:
        if keyword in _lexemes_cache:
            _lexemes_cache.move_to_end(keyword)
            return list(_lexemes_cache[keyword])
    found = tuple(
        session.execute(text("SELECT tsvector_to_array(to_tsvector('english', :kw))"), {"kw": keyword}).scalar_one() or ()
    )
    with _lexemes_lock:
        _lexemes_cache[keyword] = found
        while len(_lexemes_cache) > 1024:
            _lexemes_cache.popitem(last=False)
    return list(found)


@dataclass(frozen=True)
class KeywordQuery:
    """One query's full-text scoring, built once and shared by the keyword retriever and the
    hybrid rescoring (retrieval.rescore), so both score a chunk with the same formula."""

    keyword: str  # websearch_to_tsquery input (the prepared query)
    match_sql: str  # the tsquery that selects candidates
    weight_sql: str  # Σ idf of the query words chunk `c` contains (SQL over bound :lx/:w params)
    params: dict
    ceiling: float  # the score of a chunk with every word, all together, close: Σ idf + 1 + 1
    rows: float = 0.0  # estimated chunks the match selects (KeywordStats; 0 when unknown)

    def sql(self) -> tuple[str, str]:
        """(the `q` CTE body, the score of chunk `c`), both over this query's bound params.

        Score: the idf weights + 1 when every word (or the quoted phrase) is there + ts_rank_cd
        (query words close together, ≈ 0…1).
        """
        return (
            f"SELECT {self.match_sql} AS anyq, websearch_to_tsquery('english', :kw) AS allq",
            f"{self.weight_sql} + (c.tsv @@ q.allq)::int + ts_rank_cd(c.tsv, q.anyq, 1)",
        )


def keyword_query(session: Session, keyword: str, *, strict: bool = False, stats: KeywordStats | None = None) -> KeywordQuery:
    """Questions are long and rarely have every word in one 45-second chunk, so unless the
    user typed websearch operators (`strict`), a chunk matching any of the query's rarer
    words is a candidate (rarest first, up to ROW_BUDGET estimated rows)."""
    lexemes = [] if strict else query_lexemes(session, keyword)
    if not lexemes:
        return KeywordQuery(keyword, "websearch_to_tsquery('english', :kw)", "0", {}, 2.0)
    weights = {lx: (stats.idf(lx) if stats else 1.0) for lx in dict.fromkeys(lexemes)}
    match = list(weights)
    if stats and stats.chunks:
        # Rarest first (unseen words too: absent from the sample, maybe not from the archive).
        match, budget = [], 0.0
        for lx in sorted(weights, key=stats.rows):
            if match and budget + stats.rows(lx) > ROW_BUDGET:
                break
            match.append(lx)
            budget += stats.rows(lx)
    names = {lx: f"lx{i}" for i, lx in enumerate(weights)}
    params = {names[lx]: lx for lx in weights} | {f"w{i}": float(w) for i, w in enumerate(weights.values())}

    def lexeme_sql(lx: str) -> str:
        return f"CAST(quote_literal(CAST(:{names[lx]} AS text)) AS tsquery)"

    return KeywordQuery(
        keyword,
        "(" + " || ".join(lexeme_sql(lx) for lx in match) + ")",
        " + ".join(f"(c.tsv @@ {lexeme_sql(lx)})::int * :w{i}" for i, lx in enumerate(weights)),
        params,
        sum(weights.values()) + 2.0,
        sum(stats.rows(lx) for lx in match) if stats and stats.chunks else 0.0,
    )


# From this many estimated matching chunks on, the privacy rule is checked against a hash of the
# visible items (built once, ≈ 1 ms at 3,600 items) rather than by one primary-key probe per chunk
# (≈ 2 µs each: 7 of the 19.6 ms of a 3,436-row query at 100k chunks, bench/search_profile.py).
HASHED_VISIBILITY_ROWS = 1_000


def keyword_candidates(
    session: Session,
    keyword: str | KeywordQuery,
    *,
    limit: int,
    filters: SearchFilters | None = None,
    include_hidden: bool = False,
    strict: bool = False,
    stats: KeywordStats | None = None,
) -> list[Candidate]:
    """Full-text matches, best first (candidates as keyword_query selects them).

    Score: the sum of the idf of the query words a chunk contains (a BM25 without
    term-frequency saturation — chunks are short), + 1 when it holds all the words or the
    quoted phrase, + ts_rank_cd (query words close together) to break ties.
    """
    kq = keyword if isinstance(keyword, KeywordQuery) else keyword_query(session, keyword, strict=strict, stats=stats)
    where, params = filter_sql(filters, include_hidden)
    q_sql, score_sql = kq.sql()
    source = f"chunks c JOIN media_items m ON m.id = c.media_item_id, q WHERE c.tsv @@ q.anyq AND {where}"
    if where == "m.visible" and kq.rows >= HASHED_VISIBILITY_ROWS:
        # The same rows in the same order (the chunks' bitmap scan drives both forms, so the
        # LIMIT keeps the same ones): "OR NULL" keeps the IN a hashed subplan, checked per chunk,
        # where a plain IN or join leaves the planner free to reorder. NULL when not visible
        # drops the row as FALSE does. (A hashed subplan needs the visible ids in memory:
        # ~100k items fit in the default hash memory; the plan is 1,600.)
        source = ("chunks c, q WHERE c.tsv @@ q.anyq AND "
                  "(c.media_item_id IN (SELECT m.id FROM media_items m WHERE m.visible) OR NULL)")
    sql = text(
        f"""
        WITH q AS MATERIALIZED ({q_sql}),
        scored AS MATERIALIZED (
            SELECT c.id, {score_sql} AS score
            FROM {source}
            LIMIT :cap
        )
        SELECT id, score FROM scored
        ORDER BY score DESC, id
        LIMIT :limit
        """
    )
    rows = session.execute(sql, {**params, **kq.params, "kw": kq.keyword, "limit": int(limit),
                                 "cap": max(ROW_CAP, int(limit))}).all()
    return [Candidate(int(cid), rank, float(score)) for rank, (cid, score) in enumerate(rows, start=1)]


def rescore(
    session: Session,
    chunk_ids: list[int],
    kq: KeywordQuery,
    query_vector: np.ndarray | None,
    *,
    space_id: int | None,
    dim: int | None,
) -> dict[int, tuple[float, float]]:
    """Both scores of every candidate either retriever found: {chunk id: (cosine, keyword share)}.

    A chunk the vector side ranked 101st still has a cosine, and one the keyword side left out
    may hold the query's rarest word: score fusion needs both numbers for every candidate, not
    "absent". Cosine is 0 for chunks of another embedding model; the keyword share is the
    chunk's keyword score (the one keyword_candidates ranks by) over KeywordQuery.ceiling.
    Only ids the retrievers returned (already filtered) are scored: a primary-key lookup.
    """
    if not chunk_ids:
        return {}
    if query_vector is not None and space_id is not None and dim is not None:
        sid, d = int(space_id), int(dim)  # integers from our own table: safe to inline
        cosine = f"CASE WHEN c.embedding_space_id = {sid} THEN 1 - (c.embedding::vector({d}) <=> CAST(:qvec AS vector({d}))) END"
        vec_param = {"qvec": np.asarray(query_vector, dtype=np.float32)}
    else:
        cosine, vec_param = "NULL", {}
    q_sql, score_sql = kq.sql()
    sql = text(
        f"""
        WITH q AS MATERIALIZED ({q_sql})
        SELECT c.id, {cosine} AS cos, {score_sql} AS kw
        FROM chunks c, q
        WHERE c.id = ANY(:ids)
        """
    )
    rows = session.execute(sql, {**kq.params, **vec_param, "kw": kq.keyword, "ids": [int(i) for i in chunk_ids]}).all()
    return {int(cid): (float(cos or 0.0), min(1.0, float(kw) / kq.ceiling)) for cid, cos, kw in rows}
