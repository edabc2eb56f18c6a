"""Query preprocessing: validate, strip filler, fix misspellings, add domain synonyms.

Validation strips control and invisible characters (a NUL byte cannot be stored in a
PostgreSQL text field, and must not crash the page). Spelling: a query word that is neither
an English word (pyspellchecker's curated word list, 160k words) nor an archive word is
replaced by the closest frequent archive word (rapidfuzz), so "cholestrol" finds
"cholesterol", while a real English word the archive lacks ("rigs", "seed") is always
searched as typed. Every correction is listed in PreparedQuery.corrections so the page can
offer "Search instead for …" (search(…, correct=False)). Synonyms are a list the admin edits
(app_settings key "synonyms"); they widen the keyword side only, because the embedding
already knows that "seed oils" and "vegetable oils" are near.
"""
from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache

from rapidfuzz import fuzz, process
from sqlalchemy import text
from sqlalchemy.orm import Session

from core import settings_store
from core.search import cache
from core.search.records import MAX_QUERY_CHARS, PreparedQuery, QueryError

logger = logging.getLogger(__name__)

SYNONYMS_KEY = settings_store.Key.SYNONYMS

# Domain defaults until the admin saves a list. Each key and its values are one group:
# any phrase of the group found in a query adds the others.
DEFAULT_SYNONYMS: dict[str, list[str]] = {
    "seed oils": ["vegetable oils", "industrial seed oils", "canola oil", "sunflower oil"],
    "ldl": ["cholesterol", "lipoproteins"],
    "carnivore diet": ["meat only diet", "animal based diet", "zero carb"],
    "keto": ["ketogenic", "ketosis"],
    "plant toxins": ["antinutrients", "oxalates", "lectins"],
    "heart disease": ["cardiovascular disease", "atherosclerosis", "heart attack"],
    "sugar": ["glucose", "fructose", "carbohydrates"],
    "red meat": ["beef", "steak"],
    "fasting": ["intermittent fasting", "time restricted eating"],
    "insulin resistance": ["diabetes", "metabolic syndrome"],
}

# Conversational wrappers around the real question ("what does he say about X" → "X").
_FILLER = [
    r"\bwhat (?:does|did|do) (?:dr\.?\s*|doctor\s+)?(?:anthony\s+)?(?:chaffee|he|you)\s+(?:say|think|talk|believe|recommend)s?\s*(?:about|of|on|regarding)?\b",
    r"\bwhat (?:is|are|was) (?:dr\.?\s*|doctor\s+)?(?:anthony\s+)?(?:chaffee'?s|his|your)\s+(?:view|views|opinion|opinions|take|thoughts|position|stance)\s*(?:about|of|on|regarding)?\b",
    r"\b(?:does|did) (?:dr\.?\s*|doctor\s+)?(?:anthony\s+)?(?:chaffee|he)\s+(?:ever\s+)?(?:talk|speak|say anything|mention)\s*(?:about|on)?\b",
    r"\b(?:can|could) you (?:please\s+)?(?:tell me|explain|show me|find)\s*(?:about|what|where|when)?\b",
    r"\b(?:tell me|show me|explain|i want to know|i'd like to know|i would like to know)\s*(?:about|what|where|when)?\b",
    r"\b(?:where|when) (?:does|did) (?:dr\.?\s*|doctor\s+)?(?:anthony\s+)?(?:chaffee|he)\s+(?:talk|speak|say)\s*(?:about)?\b",
    r"\baccording to (?:dr\.?\s*|doctor\s+)?(?:anthony\s+)?chaffee\b",
    r"\b(?:dr\.?|doctor)\s+(?:anthony\s+)?chaffee'?s?\b",
    r"^\s*(?:please|hey|hi)\b",
]
_FILLER_RE = [re.compile(p, re.IGNORECASE) for p in _FILLER]
_WORD = re.compile(r"[a-z][a-z']*[a-z]|[a-z]")
_OPERATORS = re.compile(r'"|(?:^|\s)-\w|\bor\b', re.IGNORECASE)

# Words never "corrected": English function words, and short words (too many near misses).
_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours out over own same she should so some
    such than that the their theirs them then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours yourself
    say says said tell think eat eating good bad best worst much many take get make go know like really
    does also just""".split()
)
MIN_CORRECTABLE = 4  # shorter words are left as typed
VOCAB_SAMPLE_CHUNKS = 20_000  # enough text to know the archive's frequent words at any size


def strip_control(value: str) -> str:
    """`value` without control, format or surrogate characters; other whitespace becomes a space.

    NUL and friends cannot be stored in PostgreSQL text (DataError) and mean nothing in a
    search; zero-width and bidi marks would make two identical-looking queries differ. The
    common case (a printable query) costs one str.isprintable() call.
    """
    if value.isprintable():
        return value
    out = []
    for ch in value:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch)[0] != "C":  # Cc, Cf, Cs, Co, Cn: nothing a user meant to type
            out.append(ch)
    return "".join(out)


def validate(query: str | None) -> str:
    """The query with control characters and outer whitespace removed, or QueryError in words a user understands."""
    raw = query or ""
    q = strip_control(raw).strip()
    if not q:
        if raw.strip():
            raise QueryError(
                "The query holds only control or invisible characters: type a word or a question to search."
            )
        raise QueryError("The query is empty: type a word or a question to search.")
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(
            f"The query is too long ({len(q):,} characters); keep it under {MAX_QUERY_CHARS} characters."
        )
    return re.sub(r"\s+", " ", q)


def strip_filler(query: str) -> str:
    """Remove conversational wrappers; never leaves nothing (then the query stays as typed)."""
    out = query
    for pattern in _FILLER_RE:
        out = pattern.sub(" ", out)
    out = re.sub(r"\s+", " ", out).strip(" ?!.,;:")
    return out if _WORD.search(out.lower()) else query.strip(" ?!.,;:") or query


# ---------------------------------------------------------------------------------------------
# Synonyms (admin-editable)
# ---------------------------------------------------------------------------------------------


def _clean_mapping(mapping: Mapping[str, Iterable[object] | None]) -> dict[str, list[str]]:  # a str splits on , ; \n
    out: dict[str, list[str]] = {}
    for key, values in mapping.items():
        k = re.sub(r"\s+", " ", strip_control(str(key))).strip().lower()
        if isinstance(values, str):
            values = [v for v in re.split(r"[,;\n]", values)]
        # strip_control: JSONB rejects NUL (\u0000) as well.
        vals = [re.sub(r"\s+", " ", strip_control(str(v))).strip().lower() for v in (values or [])]
        vals = [v for v in dict.fromkeys(vals) if v and v != k]
        if k and vals:
            out[k] = vals
    return out


def get_synonyms(session: Session) -> dict[str, list[str]]:
    """The synonym groups in force: the admin's list, or the built-in domain list if none saved."""
    stored = settings_store.load_synonyms(session)
    if stored is None:
        return dict(DEFAULT_SYNONYMS)
    return _clean_mapping(stored.get("mapping", stored))


def set_synonyms(session: Session, mapping: Mapping[str, list[str] | str]) -> dict[str, list[str]]:
    """Save the admin's synonym groups (term → alternatives; strings may be comma-separated).

    Returns the cleaned mapping that was stored. Cached search results are dropped because
    the same query may now find more.
    """
    cleaned = _clean_mapping(mapping)
    settings_store.save_synonyms(session, cleaned)
    from core.search import cache

    cache.invalidate(session)
    return cleaned


def expand_synonyms(query: str, mapping: Mapping[str, list[str]]) -> list[str]:
    """Phrases to add for the query: every other member of each group the query mentions."""
    low = f" {' '.join(_WORD.findall(query.lower()))} "
    added: list[str] = []
    for key, values in mapping.items():
        group = [key, *values]
        present = [p for p in group if f" {' '.join(_WORD.findall(p))} " in low]
        if present:
            added.extend(p for p in group if p not in present and p not in added)
    return added


# ---------------------------------------------------------------------------------------------
# Spelling, against the archive's vocabulary
# ---------------------------------------------------------------------------------------------


class Vocabulary:
    """Word → frequency over titles and (a sample of) transcript text, cached per content version."""

    def __init__(self, counts: Counter):
        self.counts = counts
        # Candidates for corrections: words seen at least twice (one-offs are often ASR errors).
        self.words = [w for w, n in counts.items() if n >= 2 and len(w) >= MIN_CORRECTABLE - 1]

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    def correct(self, word: str) -> str | None:
        """The frequent archive word closest to `word`, if one is close enough; else None."""
        if not self.words:
            return None
        cutoff = 80 if len(word) >= 6 else 75
        found = process.extract(word, self.words, scorer=fuzz.ratio, limit=8, score_cutoff=cutoff)
        # A typo rarely changes the first letter; requiring it avoids far-fetched swaps.
        found = [f for f in found if f[0][0] == word[0]]
        if not found:
            return None
        # Closeness first, then how common the word is in the archive.
        best = max(found, key=lambda f: (f[1] + 4 * math.log10(self.counts[f[0]] + 1)))
        return best[0]


@lru_cache(maxsize=1)
def _english_counts() -> tuple[dict[str, int], int]:
    """pyspellchecker's English word counts (OpenSubtitles and SCOWL) and their total."""
    from spellchecker import SpellChecker

    freq = SpellChecker(language="en", distance=1).word_frequency
    return dict(freq.dictionary), int(freq.total_words)


RARE_PER_MILLION = 1.0  # a word said less than once per million words of everyday English is a term or a name


def is_rare_term(word: str) -> bool:
    """A name or technical term rather than an everyday word: said less than once per million words
    in pyspellchecker's English counts (absent from them counts as rare), letters only ("parkinson's"
    → "parkinson"; numbers are never terms). The verdict uses it: "metformin", "vitiligo" or "autism"
    missing from the archive means the question is not answered there; "farmer" or "prepare"
    missing does not (measured in bench/verdict.py)."""
    w = word.lower()
    for suffix in ("'s", "’s"):
        if w.endswith(suffix):
            w = w[: -len(suffix)]
    if not w.isalpha():
        return False
    counts, total = _english_counts()
    return counts.get(w, 0) < RARE_PER_MILLION * total / 1e6


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Real English words: a query word found here is never "corrected" into an archive word.

    The list is pyspellchecker's English dictionary (≈ 160k words from OpenSubtitles and
    SCOWL, common misspellings such as "recieve" left out; ≈ 0.6 s and ≈ 20 MB once per
    process), plus the whole-word entries of the packaged uncased BERT tokenizer vocabulary
    (modern words such as "bitcoin"). "rigs" must not become "risk", nor "seed" "see", just because
    the archive never says them.
    """
    from core.packaged_models import bert_uncased_vocab

    words: set[str] = set(_english_counts()[0])
    words.update(w for w in bert_uncased_vocab().read_text(encoding="utf-8").split() if w.isalpha() and len(w) >= 3)
    return frozenset(words)


def build_vocabulary(session: Session, *, sample: int = VOCAB_SAMPLE_CHUNKS) -> Vocabulary:
    """Word counts of the visible archive: its words are what spelling corrects towards and what
    autocomplete offers, so a word said only in a hidden item must never surface there."""
    total = session.execute(text("SELECT coalesce(max(id), 0) FROM chunks")).scalar_one()
    stride = max(1, int(total // sample) + 1) if total > sample else 1
    # Every `stride`-th chunk by id: an even sample of the archive in one index-free scan.
    rows = session.execute(
        text(
            "SELECT c.text FROM chunks c JOIN media_items m ON m.id = c.media_item_id "
            "WHERE c.id % :stride = 0 AND m.visible "
            "UNION ALL SELECT title FROM media_items WHERE visible"
        ),
        {"stride": stride},
    ).scalars()
    counts: Counter = Counter()
    for value in rows:
        counts.update(_WORD.findall((value or "").lower()))
    return Vocabulary(counts)


def _load_vocabulary(session: Session) -> Vocabulary:
    english_words()  # loaded once per process, here rather than inside a timed query
    return build_vocabulary(session)


vocabulary = cache.per_version(_load_vocabulary)  # vocabulary(session, version)


def spelling_variant(word: str) -> str | None:
    """The same word spelt on the other side of the Atlantic ("fibre" → "fiber", "anemia" →
    "anaemia"), or None when it has no other spelling (breame's word lists)."""
    from breame.spelling import get_american_spelling, get_british_spelling

    for other in (get_american_spelling(word), get_british_spelling(word)):
        if other and other != word:
            return other
    return None


def correct_spelling(query: str, vocab: Vocabulary, known: frozenset[str] = frozenset()) -> tuple[str, list[tuple[str, str]]]:
    """Replace unknown words by their closest frequent archive word; `known` words stay as typed.

    A real word is never replaced by another word, but it is by its own other spelling when only
    that one is in the archive: Dr. Chaffee's transcripts say "fiber", and "fibre" must not read
    as a topic the archive never covers."""
    corrections: list[tuple[str, str]] = []
    english = english_words()  # never united with `known`: copying 160k words would cost ms a query
    letters = [c for c in query if c.isalpha()]
    shouting = bool(letters) and all(c.isupper() for c in letters)  # an all-caps query: capitals mean nothing

    def fix(match: re.Match) -> str:
        word = match.group(0)
        low = word.lower()
        if (low not in vocab and low not in known and not (word.isupper() and not shouting)
                and (other := spelling_variant(low)) and other in vocab):
            corrections.append((word, other))
            return other
        if (len(low) < MIN_CORRECTABLE or low in _STOP or low in vocab or "'" in low
                or low in english or low in known or (word.isupper() and not shouting)):
            # An acronym typed in capitals ("ADHD", "CPAP") is a term, never a typo of an archive
            # word ("ADHD" became "add" and the verdict then read the question as answered).
            return word
        better = vocab.correct(low)
        if better and better != low:
            corrections.append((word, better))
            return better
        return word

    return re.sub(r"[A-Za-z][A-Za-z']*", fix, query), corrections


# ---------------------------------------------------------------------------------------------
# All together
# ---------------------------------------------------------------------------------------------


def highlight_terms(*phrases: str) -> tuple[str, ...]:
    words = []
    for phrase in phrases:
        words += [w for w in _WORD.findall(phrase.lower()) if w not in _STOP and len(w) > 1]
    return tuple(dict.fromkeys(words))


def prepare(
    query: str,
    *,
    vocab: Vocabulary | None = None,
    synonyms: Mapping[str, list[str]] | None = None,
    correct: bool = True,
) -> PreparedQuery:
    """Validated, cleaned query plus what the keyword side searches for.

    correct=False searches the words as typed (the page's "Search instead for …" link).
    """
    original = validate(query)
    operators = bool(_OPERATORS.search(original))
    # Websearch syntax is the user's precise intent: no filler stripping or fixing inside it.
    cleaned = original if operators else strip_filler(original)
    corrections: list[tuple[str, str]] = []
    if vocab is not None and correct and not operators:
        known = frozenset(w for k, vs in (synonyms or {}).items() for p in [k, *vs] for w in _WORD.findall(p))
        cleaned, corrections = correct_spelling(cleaned, vocab, known)
    added = expand_synonyms(cleaned, synonyms) if synonyms else []
    keyword = cleaned if operators or not added else " or ".join([cleaned, *(f'"{a}"' for a in added)])
    return PreparedQuery(
        original=original,
        cleaned=cleaned,
        keyword=keyword,
        corrections=tuple(corrections),
        synonyms=tuple(added),
        terms=highlight_terms(cleaned, *added),
        operators=operators,
        typed_terms=highlight_terms(cleaned),
    )
