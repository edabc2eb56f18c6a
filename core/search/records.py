"""Typed records of the search stages: what goes in (filters), what flows between the
stages (candidates), and what comes out (moments grouped per video, timings)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Iterator, Literal, NamedTuple

if TYPE_CHECKING:  # titles.py imports this module
    from core.search.titles import TitleMatch

Mode = Literal["hybrid", "vector", "keyword", "hybrid+rerank"]
Sort = Literal["relevance", "date"]
MODES: tuple[str, ...] = ("hybrid", "vector", "keyword", "hybrid+rerank")
SORTS: tuple[str, ...] = ("relevance", "date")
MAX_QUERY_CHARS = 500


class QueryError(ValueError):
    """The query cannot be searched as typed; the message says why, in words for the user."""


@dataclass(frozen=True)
class SearchFilters:
    """Narrow a search; every field None/empty means 'any'."""

    date_from: date | None = None
    date_to: date | None = None  # inclusive
    sources: tuple[str, ...] = ()  # any of "youtube", "zoom", "upload"
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    speaker: str | None = None  # substring of chunks.speakers (Zoom, inline labels, voice), case-insensitive
    speaker_only: bool = False  # and no other speaker in the chunk (speaker turns: "only the host speaking")
    media_item_id: int | None = None  # one video only ("Search in this video" on the page)

    def is_empty(self) -> bool:
        return self == SearchFilters()

    def cache_key(self) -> tuple:
        return (
            self.date_from, self.date_to, tuple(sorted(self.sources)),
            self.min_duration_s, self.max_duration_s, (self.speaker or "").strip().lower() or None,
            self.speaker_only,
            self.media_item_id,
        )


class Candidate(NamedTuple):
    """One chunk as a retriever ranked it (rank 1 = best)."""

    chunk_id: int
    rank: int
    score: float  # cosine similarity (vector) or ts_rank (keyword); only comparable within one list


class PreparedQuery(NamedTuple):
    """The query after preprocessing: what each retriever actually receives."""

    original: str
    cleaned: str  # filler removed, spelling corrected: embedded and shown as 'searched for'
    keyword: str  # websearch_to_tsquery input (cleaned + synonyms joined with 'or')
    corrections: tuple[tuple[str, str], ...]  # (typed, corrected)
    synonyms: tuple[str, ...]  # expansions that were added
    terms: tuple[str, ...]  # words to highlight in snippets: the query's own words first, then synonyms
    operators: bool  # the user typed websearch syntax (quotes, -, or): keep their AND/NOT
    # The query's own words (as searched, i.e. after spelling correction), without synonym
    # expansions: highlighted first / more strongly than `synonym_terms`.
    typed_terms: tuple[str, ...] = ()

    @property
    def synonym_terms(self) -> tuple[str, ...]:
        """Highlight words that only a synonym expansion brought in."""
        typed = set(self.typed_terms)
        return tuple(t for t in self.terms if t not in typed)

    @property
    def search_instead(self) -> str | None:
        """What was typed, when spelling correction changed it: the page's "Search instead for …"
        (search it with search(…, correct=False)); None when nothing was corrected."""
        return self.original if self.corrections else None


@dataclass
class Moment:
    """One place in one video: one chunk, or adjacent matching chunks merged."""

    chunk_id: int  # the best chunk of the moment (feedback and answers cite it)
    start_s: float
    end_s: float
    text: str
    snippet_html: str  # escaped text with <mark> around the matched terms
    score: float  # fused score (higher is better)
    link: str  # deep link that opens the video at start_s
    speakers: tuple[str, ...] = ()
    # start_s is where the link opens: LEAD_IN_S before the sentence where the answer starts
    # (core/search/moments.py). The hit window itself is window_start_s … end_s, and `text`
    # is the whole window's text.
    window_start_s: float | None = None
    sentence_start_s: float | None = None  # the answer sentence's own (interpolated) second
    sentence: str | None = None  # the answer sentence as transcribed
    # The snippet as plain text (what snippet_html marks up): the words around the answer
    # sentence, so a text listing quotes what is said where the link opens, not the window's start.
    snippet_text: str = ""
    # Set by the verdict (core/search/verdict.py): this moment holds an answer to the query.
    # Cited answers quote only such moments; a moment shown as "related" has it False.
    answers: bool = False

    @property
    def timestamp(self) -> str:
        return format_timestamp(self.start_s)


@dataclass
class VideoGroup:
    """The hits of one media item, best moment first."""

    media_item_id: int
    title: str
    url: str
    source_kind: str
    published_at: datetime | None
    duration_s: float | None
    media_path: str | None
    visible: bool
    score: float  # best moment's score
    moments: list[Moment] = field(default_factory=list)

    @property
    def answers(self) -> bool:
        """Whether one of its moments answers the query (the verdict marks them)."""
        return any(m.answers for m in self.moments)


class Verdict(str, Enum):
    """Does the archive answer the query? Decided per search from measured signals."""

    ANSWERED = "answered"  # at least one moment holds the answer
    RELATED = "related"  # the archive talks about the topic, but no moment answers the question
    NOTHING = "nothing"  # the query's key term occurs nowhere searchable


class MomentEvidence(NamedTuple):
    """The signals the verdict reads for one of the top moments (its best chunk)."""

    chunk_id: int
    cosine: float | None  # query ↔ chunk; None when no query vector (keyword mode)
    coverage: float  # share of the query's content-word idf the chunk holds, 0…1
    rerank: float | None  # cross-encoder probability, when the reranker ran
    score: float | None  # the answer score the verdict compares (None in keyword mode)
    answers: bool


@dataclass(frozen=True)
class SearchVerdict:
    """The verdict on one search, the signals it came from, and what to tell the user."""

    verdict: Verdict
    message: str  # plain words, e.g. "No passage in the archive mentions knitting."
    cosine: float | None  # best cosine among the top moments
    coverage: float  # best coverage among the top moments
    rerank: float | None  # best reranker probability among the top moments (None: no rerank)
    key_terms: tuple[str, ...]  # the query's content words, rarest first, as typed
    missing_terms: tuple[str, ...]  # content words no searchable passage contains
    evidence: tuple[MomentEvidence, ...] = ()  # per top moment, best first

    @property
    def answered(self) -> bool:
        return self.verdict is Verdict.ANSWERED


@dataclass
class SearchResponse:
    query: str  # as typed
    prepared: PreparedQuery
    mode: str
    sort: str
    groups: list[VideoGroup]
    timings_ms: dict[str, float]
    total_ms: float
    cached: bool = False
    reranked: bool = False
    # Whether the archive answers the query (None only for responses not made by search()).
    # When it does not, `groups` holds at most a few moments, all of them only related.
    verdict: SearchVerdict | None = None
    # Videos whose title/description match the query (core/search/titles.py), with their
    # transcription status: a listed video not transcribed yet shows as "queued for
    # transcription"; has_moments marks those also listed in `groups`.
    titles: list[TitleMatch] = field(default_factory=list)
    # The content version (core/search/cache.py) of the snapshot this response was read in; set
    # by core/search_db.py so that values derived from it (answers) are cached under it.
    content_version: tuple | None = None

    @property
    def corrected_query(self) -> str | None:
        """The query we actually searched when it differs from what was typed ('did you mean')."""
        return self.prepared.cleaned if self.prepared.corrections else None

    @property
    def search_instead(self) -> str | None:
        """The query as typed when it was corrected: offer "Search instead for <this>", which
        searches it with search(…, correct=False). None when nothing was corrected."""
        return self.prepared.search_instead

    def hits(self) -> Iterator[tuple[VideoGroup, Moment]]:
        """Every moment with its video, in display order (for the CLI and simple callers)."""
        for group in self.groups:
            for moment in group.moments:
                yield group, moment

    def __len__(self) -> int:
        return len(self.groups)


def format_timestamp(seconds: float) -> str:
    s = int(max(seconds, 0))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
