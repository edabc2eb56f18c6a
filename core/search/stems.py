"""Words → their Postgres stems, as the keyword index stems them, kept per process.

The sentence locator (moments.py) finds a query's words among a window's sentences and the
verdict (verdict.py) turns a question's content words into lexemes; both must stem exactly as
chunks.tsv does ('english', so a sentence matches the query words its chunk matched on). A
word's stems depend on the word alone: Postgres is asked once per new word, in one statement
for all of them, and this cache answers after. The inverse map stem → words makes "which known
words are forms of these lexemes" set arithmetic instead of a loop over a window's words.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

CACHE_WORDS = 200_000  # ≈ 40 MB with the inverse map; an archive's vocabulary is far smaller


class _WordStems:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.of: dict[str, tuple[str, ...]] = {}  # word → its stems, in to_tsvector's array order
        self.words_of: dict[str, set[str]] = {}  # stem → the known words that have it

    def stems(self, session: Session, words: Iterable[str]) -> dict[str, tuple[str, ...]]:
        wanted = set(words)
        with self.lock:
            known = {w: self.of[w] for w in wanted if w in self.of}
        missing = sorted(wanted.difference(known))
        if not missing:
            return known
        rows = session.execute(
            text("SELECT w, tsvector_to_array(to_tsvector('english', w)) FROM unnest(CAST(:w AS text[])) AS u(w)"),
            {"w": missing},
        ).all()
        found = {w: tuple(lexemes or ()) for w, lexemes in rows}
        with self.lock:
            if len(self.of) + len(found) > CACHE_WORDS:
                self.of.clear()
                self.words_of.clear()
            for w, lexemes in found.items():
                self.of[w] = lexemes
                for lx in lexemes:
                    self.words_of.setdefault(lx, set()).add(w)
        return known | found

    def words_stemming_to(self, lexemes: frozenset[str]) -> dict[str, frozenset[str]]:
        with self.lock:
            words = set().union(*(self.words_of.get(lx, ()) for lx in lexemes))
            return {w: lexemes.intersection(self.of[w]) for w in words}


_cache = _WordStems()


def word_stems(session: Session, words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each word's stems (a stop word: none), asking Postgres only for words not seen before."""
    return _cache.stems(session, words)


def known_words_stemming_to(lexemes: frozenset[str]) -> dict[str, frozenset[str]]:
    """Every word seen so far (word_stems) that stems to one of `lexemes` → those of its stems."""
    return _cache.words_stemming_to(lexemes)
