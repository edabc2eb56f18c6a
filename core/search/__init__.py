"""Search: query → embedding + full text → fused, grouped, cited results.

    from core.search import search, SearchFilters, QueryError
    response = search(session, "seed oils", k=10, filters=SearchFilters(sources=("youtube",)))
    for video, moment in response.hits():
        print(video.title, moment.timestamp, moment.link)

One module per stage: preprocess (validate, filler, spelling, synonyms) → retrieval (HNSW
vector, websearch full text) → fusion (weighted RRF) → rerank (optional cross-encoder) →
shaping (group per video, merge, highlight, sort) → verdict (answered, related only or
nothing); around them: cache (content-versioned results), suggest (query log, autocomplete),
trending (what ≥ 3 sessions asked and the archive answered), feedback (votes that toggle once per
browser session), answers (cited answers from answering moments only), links (deep links); for
the viewer's page: viewer (the URL's view state, the count line, thumbnails) and transcript (the
panel beside the player, TXT/SRT/VTT files).
"""
from core.search import cache
from core.search.answers import Answer, AnswerSentence, Clip, answer
from core.search.engine import archive_is_empty, search
from core.search.feedback import feedback_summary, judgments, record_feedback
from core.search.fusion import FusionConfig, fusion_config, set_fusion_config
from core.search.links import deep_link
from core.search.preprocess import get_synonyms, set_synonyms
from core.search.records import (
    MAX_QUERY_CHARS,
    Moment,
    QueryError,
    SearchFilters,
    SearchResponse,
    SearchVerdict,
    Verdict,
    VideoGroup,
    format_timestamp,
)
from core.search.suggest import Suggestion, autocomplete, log_query, popular_queries
from core.search.trending import Trend, trending

__all__ = [
    "Answer", "AnswerSentence", "Clip", "FusionConfig", "MAX_QUERY_CHARS", "Moment", "QueryError",
    "SearchFilters", "SearchResponse", "SearchVerdict", "Suggestion", "Trend", "VideoGroup", "answer", "archive_is_empty",
    "autocomplete", "cache", "deep_link", "feedback_summary", "format_timestamp", "fusion_config",
    "get_synonyms", "judgments", "log_query", "popular_queries", "record_feedback", "search",
    "set_fusion_config", "set_synonyms", "trending", "Verdict",
]
