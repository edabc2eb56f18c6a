"""The verdict: does the archive answer this query — *answered*, *related only* or *nothing*?

Search always finds *something*: the nearest chunks of any archive are near. A health archive
must not present the closest passage about diet as the answer to a question about autism, so
every search is judged from signals measured on its top moments (each moment's best chunk):

- cosine: how close the chunk is to the query in meaning (the embedding model);
- coverage: the share of the query's content-word idf the chunk holds. A question whose rare
  word ("knitting") is in no passage cannot be answered by a passage about something else,
  however close in meaning the rest of the question is ("carnivore diet" is everywhere here);
- the cross-encoder's probability, where the reranker ran.

A moment *answers* when its answer score — cosine + w × coverage − p when a term of the query (a
name or technical word, rare in everyday English) occurs in no passage at all — reaches a threshold (FusionConfig.verdict_*, fitted by bench/verdict.py
on labelled in-archive and out-of-archive questions; one threshold on one number was not
enough, STACK-NOTES, and the bench prints that baseline beside it). Without an answering moment the verdict is *nothing* when the query's key (rarest)
content word occurs in no searchable passage, else *related*; the response then keeps at most
a few moments, shown as related, never as an answer.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.fusion import FusionConfig
from core.search.preprocess import is_rare_term
from core.search.records import MomentEvidence, PreparedQuery, SearchFilters, SearchVerdict, Verdict, VideoGroup
from core.search.retrieval import KeywordStats, filter_sql
from core.search.stems import word_stems

# Top moments (by score) the verdict reads: an answer further down is not what a viewer sees
# first. (Under an answered verdict the moments below are judged by the same rule, for their labels.)
VERDICT_DEPTH = 5
_WORD = re.compile(r"[a-z0-9][a-z0-9']*")
# Sampled chunks holding a word beyond which it is taken as present without a probe.
COMMON_ROWS = 20
# An absent word this long is still "mentioned" when the archive has a longer word it begins.
MIN_PREFIX = 4
# Words Postgres does not drop but that carry no topic: never a key term, never "not mentioned".
_NOT_CONTENT = frozenset(
    """vs versus ok okay like really please thing things get got would could should also ever even much many lot lots
    way ways good bad best better worst say says said tell think know want need use used make makes go going
    dr doctor whose who's""".split()
)


class QueryTerms:
    """The query's content words (Postgres 'english' stems), their idf weights, and the words as typed."""

    def __init__(self, lexemes: dict[str, str], stats: KeywordStats | None):
        self.word = lexemes  # lexeme → the word as the user typed it (first one)
        self.idf = {lx: (stats.idf(lx) if stats is not None else 1.0) for lx in lexemes}
        self.sampled_rows = {lx: (stats.df.get(lx, 0) if stats is not None else 0) for lx in lexemes}
        self.total = sum(self.idf.values())

    @property
    def lexemes(self) -> list[str]:
        return list(self.word)

    def rarest_first(self) -> list[str]:
        return sorted(self.word, key=lambda lx: (-self.idf[lx], lx))

    def coverage(self, present: Sequence[bool]) -> float:
        """Share of the query's idf held by a chunk whose lexeme presence is `present`."""
        if self.total <= 0:
            return 0.0
        return sum(self.idf[lx] for lx, has in zip(self.word, present) if has) / self.total


def query_terms(session: Session, cleaned: str, stats: KeywordStats | None) -> QueryTerms:
    """Content words of the query as searched (filler removed, spelling fixed; synonyms left out:
    the question's own words are what an answer must hold)."""
    words = [w for w in dict.fromkeys(_WORD.findall(cleaned.lower())) if w not in _NOT_CONTENT]
    if not words:
        return QueryTerms({}, stats)
    stems = word_stems(session, words)
    lexemes: dict[str, str] = {}
    for w in words:
        for lx in stems.get(w) or ():  # stop words have no lexeme
            lexemes.setdefault(lx, w)
    return QueryTerms(lexemes, stats)


def _tsquery(i: int) -> str:
    return f"CAST(quote_literal(CAST(:lx{i} AS text)) AS tsquery)"


def evidence_rows(
    session: Session, chunk_ids: Sequence[int], terms: QueryTerms, query_vector: np.ndarray | None,
    space: tuple[int, int] | None, rescuers: Sequence[tuple[set[str], list[str]]] = (),
) -> dict[int, tuple[float | None, list[bool]]]:
    """{chunk id: (cosine or None, [holds lexeme i])} for the given chunks (a primary-key lookup).

    A lexeme also counts as held when the chunk says one of the other phrases of a synonym group
    the query mentions it in (`rescuers`, from _rescuing_phrases): "IBD" held as "Crohn's disease".
    """
    if not chunk_ids:
        return {}
    params: dict = {f"lx{i}": lx for i, lx in enumerate(terms.lexemes)}
    alts = [(words, alternatives) for words, alternatives in rescuers if alternatives]
    params |= {f"alt{g}_{j}": a for g, (_, alternatives) in enumerate(alts) for j, a in enumerate(alternatives)}
    if query_vector is not None and space is not None:
        sid, d = int(space[0]), int(space[1])  # integers from our own table: safe to inline
        cosine = f"CASE WHEN c.embedding_space_id = {sid} THEN 1 - (c.embedding::vector({d}) <=> CAST(:qvec AS vector({d}))) END"
        params["qvec"] = np.asarray(query_vector, dtype=np.float32)
    else:
        cosine = "NULL::float8"
    has = "ARRAY[" + ", ".join(f"c.tsv @@ {_tsquery(i)}" for i in range(len(terms.lexemes))) + "]::boolean[]"
    said = "ARRAY[" + ", ".join(
        "(" + " OR ".join(f"c.tsv @@ phraseto_tsquery('english', :alt{g}_{j})" for j in range(len(alternatives))) + ")"
        for g, (_, alternatives) in enumerate(alts)
    ) + "]::boolean[]"
    rows = session.execute(
        text(f"SELECT c.id, {cosine} AS cos, {has} AS has, {said} AS said FROM chunks c WHERE c.id = ANY(:ids)"),
        {**params, "ids": [int(c) for c in chunk_ids]},
    ).all()
    out = {}
    for cid, cos, h, group_said in rows:
        present = list(h or [])
        for (words, _), yes in zip(alts, group_said or ()):
            if yes:
                present = [p or terms.word[lx] in words for p, lx in zip(present, terms.lexemes)]
        out[int(cid)] = (None if cos is None else float(cos), present)
    return out


def _rescuing_phrases(query: str, synonyms: Mapping[str, Sequence[str]]) -> list[tuple[set[str], list[str]]]:
    """For each synonym group the query mentions: (the query words of the mentioned phrases,
    the phrases that may stand in for them). The archive may say those words only as these.

    A group's key is the broader name and its values narrower or equal ones ("plant toxins":
    oxalates, lectins, …). A passage that names the key answers for any member, and a member
    answers for the key; members never stand in for each other: a passage on lectins does not
    answer a question on oxalates, however near the keyword side finds it.
    """
    def mentioned(phrase: str) -> bool:
        return f" {' '.join(_WORD.findall(phrase.lower()))} " in low

    low = f" {' '.join(_WORD.findall(query.lower()))} "
    out = []
    for key, values in synonyms.items():
        present = [p for p in (key, *values) if mentioned(p)]
        if not present:
            continue
        stand_ins = [v for v in values if v not in present] if key in present else [key]
        out.append(({w for p in present for w in _WORD.findall(p.lower())}, stand_ins))
    return out


def missing_lexemes(
    session: Session, terms: QueryTerms, *, filters: SearchFilters | None, include_hidden: bool,
    query: str = "", synonyms: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The query's lexemes that no searchable passage (same filters and privacy rule) contains.

    One GIN probe per lexeme. A word of a synonym phrase the query mentions is not missing when
    one of the group's other phrases occurs ("seed oils" said as "vegetable oils").
    """
    # A word in many chunks of the keyword statistics' sample is there: probing it would make GIN
    # build a bitmap of every chunk holding it (milliseconds at 100k chunks). Filters narrow what
    # "there" means, so then every word is probed.
    unfiltered = filters is None or filters.is_empty()
    lexemes = [lx for lx in terms.lexemes if not (unfiltered and terms.sampled_rows.get(lx, 0) >= COMMON_ROWS)]
    if not lexemes:
        return []
    where, params = filter_sql(filters, include_hidden)

    def probes(tsqueries: Sequence[str], early: Sequence[bool] = ()) -> str:
        """SELECT of one boolean[]: does a searchable chunk match each tsquery?

        A word that may be absent (rare in the sample, a prefix, a phrase) is probed through a
        MATERIALIZED CTE, planned for all its rows: the GIN bitmap, stopping at the first. Under a
        plain EXISTS the planner may pick a scan of chunks in order hoping for an early hit, and for
        an absent word that reads every chunk (1.5 s of the p95 at a million chunks). A word common
        in the sample (`early`, probed only under filters) keeps the plain EXISTS: the early hit
        comes, and its bitmap would hold a large share of the archive."""
        early = list(early) or [False] * len(tsqueries)
        match = "SELECT 1 FROM chunks c JOIN media_items m ON m.id = c.media_item_id WHERE c.tsv @@ {} AND " + where
        if unfiltered:
            # Only the privacy rule: each matching chunk's item by its primary key, stopping at the
            # first visible one. A plain join let the planner hash every media item first, for each
            # probed word (≈ 1.5 ms each at 3,600 items), to find one row. Under filters the join
            # stays: most matching chunks may fail them, and the hash then pays for itself.
            match = ("SELECT 1 FROM chunks c CROSS JOIN LATERAL (SELECT m.visible FROM media_items m "
                     "WHERE m.id = c.media_item_id OFFSET 0) m WHERE c.tsv @@ {} AND " + where)
        ctes = [f"h{i} AS MATERIALIZED ({match.format(q)})" for i, q in enumerate(tsqueries) if not early[i]]
        arr = ", ".join(f"EXISTS ({match.format(q)})" if early[i] else f"EXISTS (SELECT 1 FROM h{i})"
                        for i, q in enumerate(tsqueries))
        return ("WITH " + ", ".join(ctes) + " " if ctes else "") + f"SELECT ARRAY[{arr}]::boolean[]"

    params = {**params, **{f"lx{i}": lx for i, lx in enumerate(lexemes)}}
    found = session.execute(
        text(probes([_tsquery(i) for i in range(len(lexemes))],
                    [terms.sampled_rows.get(lx, 0) >= COMMON_ROWS for lx in lexemes])), params,
    ).scalar_one()
    gone = [lx for lx, ok in zip(lexemes, found) if not ok]
    # Another form of the word counts ("teens" → the archive's "teenagers": stem teen, teenag).
    longer = [lx for lx in gone if len(lx) >= MIN_PREFIX]
    if longer:
        pre = {f"pre{i}": lx for i, lx in enumerate(longer)}
        said = session.execute(
            text(probes([f"CAST(quote_literal(CAST(:pre{i} AS text)) || ':*' AS tsquery)" for i in range(len(longer))])),
            {**params, **pre},
        ).scalar_one()
        gone = [lx for lx in gone if lx not in {p for p, ok in zip(longer, said) if ok}]
    if not gone or not synonyms:
        return gone
    for words, alternatives in _rescuing_phrases(query, synonyms):
        rescuable = [lx for lx in gone if terms.word[lx] in words]
        if not rescuable or not alternatives:
            continue
        alt = {f"alt{i}": a for i, a in enumerate(alternatives)}
        said = any(session.execute(
            text(probes([f"phraseto_tsquery('english', :alt{i})" for i in range(len(alt))])), {**params, **alt},
        ).scalar_one())
        if said:
            gone = [lx for lx in gone if lx not in rescuable]
    return gone


def rare_term_missing(missing_words: Iterable[str]) -> bool:
    """The answer score's penalty applies when a *term* of the question is nowhere in the archive:
    a name or technical word (preprocess.is_rare_term: under one per million words of everyday
    English), not an everyday word the speakers happened not to use. Among the labelled questions
    (bench/verdict.py) the everyday missing words are incidental ("prepare", "farmer", "ugly": 0 of
    the out-of-archive key terms), while every out-of-archive key term is rare ("metformin",
    "vitiligo", "autism"); a penalty on any missing word had to stay small (0.04) to keep the
    in-archive questions answered, and let most health questions through."""
    return any(is_rare_term(w) for w in missing_words)


# Keyword mode has no cosine: a moment answers when it holds this share of the query's words
# and every word occurs somewhere (a diagnostic mode; the default hybrid uses the score).
KEYWORD_MODE_COVERAGE = 0.5


def answer_score(cosine: float, coverage: float, cfg: FusionConfig, *, absent: bool = False) -> float:
    """cosine + w × coverage − p × absent: closeness in meaning, credited for holding the
    question's rarer words, penalised when one of them occurs nowhere in the archive."""
    return cosine + cfg.verdict_coverage_weight * coverage - (cfg.verdict_absent_penalty if absent else 0.0)


def moment_answers(cosine: float | None, coverage: float, rerank: float | None, cfg: FusionConfig, *,
                   absent: bool = False) -> bool:
    """The rule, in one place (bench/verdict.py fits its thresholds with this same function).

    `absent`: a term of the query (rare_term_missing) occurs in no searchable passage.
    """
    if cosine is None:
        ok = coverage >= KEYWORD_MODE_COVERAGE and not absent
    else:
        ok = answer_score(cosine, coverage, cfg, absent=absent) >= cfg.verdict_min_score
    if rerank is not None and cfg.verdict_rerank > 0:
        return ok and rerank >= cfg.verdict_rerank
    return ok


def is_related(ev: MomentEvidence, cfg: FusionConfig) -> bool:
    """Worth showing as "related, but not an answer": close in meaning (or, with no vector, sharing a word)."""
    if ev.cosine is None:
        return ev.coverage > 0
    return ev.cosine >= cfg.verdict_related_cosine


MAX_NAMED = 3  # missing words named in the message, rarest first


def _quote_list(words: Sequence[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def message(verdict: Verdict, query: str, missing: Sequence[str], *, answered_videos: int, filtered: bool,
            related_shown: int) -> str:
    """What the page and the CLI say, in words."""
    where = "the archive" if not filtered else "the archive (with these filters)"
    if verdict is Verdict.ANSWERED:
        return f"Answered in {answered_videos} video{'s' if answered_videos != 1 else ''}."
    if missing:  # the rarest few: the key terms of the question
        head = f"No passage in {where} mentions {_quote_list(list(missing)[:MAX_NAMED])}."
    else:
        head = f"No passage in {where} answers “{query}”."
    if related_shown:
        return head + " The passages below are related, but not an answer."
    return head


def judge(
    session: Session,
    prepared: PreparedQuery,
    groups: list[VideoGroup],
    *,
    cfg: FusionConfig,
    stats: KeywordStats | None,
    query_vector: np.ndarray | None,
    space: tuple[int, int] | None,
    rerank_probs: dict[int, float] | None = None,
    filters: SearchFilters | None = None,
    include_hidden: bool = False,
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> tuple[SearchVerdict, list[VideoGroup]]:
    """The verdict on shaped results, and the groups to show (marked; trimmed when not answered).

    Moments that answer get `answers = True`: the top VERDICT_DEPTH decide the verdict; when they
    answer, every moment below is judged by the same rule, and one that fails is shown as related.
    Without any, at most cfg.verdict_related_moments related moments are kept (best first), each in
    its video group.
    """
    terms = query_terms(session, prepared.cleaned, stats)
    moments = sorted(((m.score, g_i, m) for g_i, g in enumerate(groups) for m in g.moments), key=lambda x: -x[0])
    top = moments[:VERDICT_DEPTH]
    rescuers = _rescuing_phrases(prepared.cleaned, synonyms) if synonyms else []
    # Every shown moment's evidence in one lookup: the verdict reads the top ones, and under an
    # answered verdict the lower ones are labelled too, so none is shown as an answer unjudged.
    rows = evidence_rows(session, [m.chunk_id for _, _, m in moments], terms, query_vector, space, rescuers)
    gone = set(missing_lexemes(session, terms, filters=filters, include_hidden=include_hidden,
                               query=prepared.cleaned, synonyms=synonyms))
    absent = rare_term_missing(terms.word[lx] for lx in gone)

    def judge(m) -> MomentEvidence:
        """The rule applied to one moment (marking it), with the signals it read."""
        cos, has = rows.get(m.chunk_id, (None, []))
        cov = terms.coverage(has)
        rr = (rerank_probs or {}).get(m.chunk_id)
        m.answers = moment_answers(cos, cov, rr, cfg, absent=absent)
        score = None if cos is None else round(answer_score(cos, cov, cfg, absent=absent), 4)
        return MomentEvidence(m.chunk_id, cos, round(cov, 4), rr, score, m.answers)

    evidence = [judge(m) for _, _, m in top]
    answered = any(e.answers for e in evidence)
    if answered:
        for _, _, m in moments[VERDICT_DEPTH:]:
            judge(m)
    cosines = [e.cosine for e in evidence if e.cosine is not None]
    rerank = [e.rerank for e in evidence if e.rerank is not None]
    key_terms = tuple(terms.word[lx] for lx in terms.rarest_first())
    missing = [terms.word[lx] for lx in terms.rarest_first() if lx in gone]
    if answered:
        verdict, shown = Verdict.ANSWERED, groups
    else:
        # "Nothing": the archive never says one of the query's words (or nothing matched at all).
        verdict = Verdict.NOTHING if missing or not moments else Verdict.RELATED
        # Evidence is best first: the closest related moments, at most the configured few.
        keep = {e.chunk_id for e in [e for e in evidence if is_related(e, cfg)][: cfg.verdict_related_moments]}
        shown = []
        for g in groups:
            kept = [m for m in g.moments if m.chunk_id in keep]
            if kept:
                g.moments = kept
                g.score = max(m.score for m in kept)
                shown.append(g)
    answered_videos = sum(1 for g in shown if g.answers)
    filtered = filters is not None and not filters.is_empty()
    related_shown = 0 if answered else sum(len(g.moments) for g in shown)
    result = SearchVerdict(
        verdict=verdict,
        message=message(verdict, prepared.original, missing, answered_videos=answered_videos, filtered=filtered,
                        related_shown=related_shown),
        cosine=round(max(cosines), 4) if cosines else None,
        coverage=max((e.coverage for e in evidence), default=0.0),
        rerank=round(max(rerank), 4) if rerank else None,
        key_terms=key_terms,
        missing_terms=tuple(missing),
        evidence=tuple(evidence),
    )
    return result, shown
