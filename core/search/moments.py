"""Where in a hit window the answer starts: the sentence a moment's link opens at.

A hit is a 45–60 s chunk (or up to three merged ones); the viewer wants the second where the
answer is said. The stored timed segments of that window are cut into sentences, each
sentence gets its own start second, and the sentence nearest the query in meaning (its stored
sentence vector), or where the query's words begin to gather, is the one the link opens at
(LEAD_IN_S before it).

Segments are not sentences, whatever the engine:
  * caption lines (YouTube, Zoom VTT, imported SRT) are a few seconds each and a sentence
    often starts in the middle of one: its second is interpolated by character offset
    inside the line (speech runs at a near-constant rate within a 2–6 s line);
  * a local whisper segment can hold several sentences: each gets its own interpolated second;
  * a sentence can continue over several lines: it keeps the second of its first word;
  * text without punctuation (automatic captions) is cut at line boundaries once a unit
    passes MAX_UNIT_WORDS, so a unit is never the whole window.
A change of speaker or a pause of PAUSE_S always starts a new sentence.

Word timings are not stored: inside a caption line the character offset puts a sentence start
within about a second of the word (lines are 2–6 s), below the one-second resolution of a link,
and YouTube captions and imported SRTs have none to give. A whisper segment is longer (up to
≈ 30 s), so there interpolation is coarser; storing faster-whisper's word times per segment
would make it exact, and is the next step if long local segments become common.

Choosing the sentence by meaning, where sentence vectors are stored (core/sentence_index.py, at
index time: embedding a page's ~600 sentences at query time costs seconds on 2 CPUs): the link opens
at the window's sentence most similar to the query (its own vector, one sentence each), or at the
words' pick (choose(), below) when that is at most AGREE_S before it, then answer_start() moves
past a question as before. Measured with all-MiniLM-L6-v2 (bench/relevance.py, hybrid; tuning half /
held-out half, strict MRR@10): 100-set 0.872 / 0.720 by words → 0.885 / 0.770 by meaning; paraphrase
0.811 / 0.676 → 0.842 / 0.743; with the NFCorpus distractors 0.810 / 0.658 → 0.810 / 0.661 and
0.704 / 0.631 → 0.805 / 0.707. The price is the median |link − answer start| (all questions): 9.7 →
11.0 s, 11.0 → 15.0 s, 8.1 → 11.0 s, 13.0 → 17.0 s — the most similar sentence lies inside the
answer (a strict hit), not at its first words. Measured on the tuning halves and rejected:
  * vectors of the ~10 s of speech from each sentence instead of the sentence alone: 100-set strict
    0.872, paraphrase 0.781 (and 12 s windows at query time, earlier: 9.0 s / 17.0 s medians);
  * the earliest sentence within 85–95 % of the best similarity (whole window, or ≤ 10/20 s before
    the best): lower strict (0.63–0.85) with no steady gain in the medians;
  * words' score + λ × similarity (λ 0.5–2, share 0.7/0.85): strict 0.84–0.87 / 0.71–0.79;
  * walking back from the best sentence to the sentence after a question ≤ 10–30 s before, or over
    neighbours whose similarity stays above the window's mean (+0–1 sd): strict lower or equal,
    medians ±2 s;
  * a question within 0.03–0.2 of the best similarity winning (its answer opened): 100-set strict
    0.885 → 0.905 at 0.1, paraphrase 0.842 → 0.789;
  * extending the window 10–30 s before its start (answers that begin outside it): strict lower;
  * re-ranking moments by their best sentence's similarity (+β, β 0.1–1): no gain on the tuning halves;
  * AGREE_S 5 / 20 s: 5 ties 10 on strict with fewer links within 3 s, 20 lowers strict (0.852).
Replayed offline over every top-10 window of both sets (the locator's inputs dumped once, each rule
re-run on them; it reproduces bench/relevance.py's strict MRR@10 exactly), tuning halves only, and
rejected: the found window is rarely the problem — in the first window overlapping an answer some
sentence opens within 3 s of its start for 37/48 (100-set) and 32/36 (paraphrase) questions, against
20 and 8 that the rule picks; a merged moment spans ≈ 130 s and the most similar sentence lies a
median 9–21 s inside the answer. Choosing better from the same signals did not get there:
  * the start of the run of sentences with the highest Σ(similarity − θ) (θ 0.2–0.5, by sentence or
    by second): strict 0.47–0.87 / 0.38–0.82, at most 19/48 and 13/36 links within 3 s;
  * a softmax over 22 cues of each sentence (its similarity and its neighbours', forward/backward
    means, a question before it, pause, speaker change, reply openers, the words' pick, position,
    and TextTiling coherence between the stored sentence vectors before and after it): 4-fold
    cross-validated, the sentence within 3 s of the answer start in 28–34 of 69 windows; strict
    0.75–0.83 / 0.69–0.82;
  * the words' pick whenever its similarity is ≥ 0.5–0.9 of the best, or AGREE_S up to 120 s:
    medians 5.9 / 10.5 s but strict 0.85 / 0.80;
  * the most similar sentence inside the best chunk of a merged moment (± 0–20 s): no gain.
Where no sentence of the window has a vector (an item not yet back-filled, a paid embedding
provider, keyword mode) the words decide, as measured before sentence vectors: the query's own
words (and the admin's synonyms), weighted by the keyword side's idf and stemmed by Postgres as
the keyword index is. Where no query word occurs in such a window (a pure meaning match) the link
opens at the first sentence of the best chunk.

Constants (CONTEXT_S, EARLIEST_SHARE, FORWARD_S, MAX_UNIT_WORDS) were chosen on those tuning halves
only: the smallest median distance among the settings whose strict MRR@10 on the 100-set's half
stays ≥ 0.85. bench/relevance.py reports the odd halves apart, as held out. Also measured there
and rejected: walking back from the anchor to the start of its reply (after the last question, or
to a "Well, …"/"Yeah, …" opener; such openers are everywhere in conversation), and falling back to
the chunk's start when few of the query's words are in the window.

Questions (answer_start(), and a question winning in choose()) were added from the misses of the
tuning halves (bench/link_misses.py prints them): with bge-small, strict MRR@10 there 0.813 → 0.853
(100-set) and 0.693 → 0.733 (paraphrase). QUESTION_AHEAD_S 12 beat 8 on the paraphrase half; letting
a weaker question win (≥ 0.5 or 0.3 of the best score instead of EARLIEST_SHARE) lowered strict MRR;
walking back to the sentence after a question said up to 10 s / 20 s before the anchor changed
nothing / lowered it; EARLIEST_SHARE re-checked at 0.6 (strict 0.846 < 0.85) and 0.8 (median 4.8 s
against 4.0 s).

Re-checked with all-MiniLM-L6-v2 (the default since), tuning halves (100-set / paraphrase, then
both with the NFCorpus distractors), strict MRR@10 and median |link − answer start|:
EARLIEST_SHARE 0.7 → 0.6 kept strict on the 100-set (0.872) and moved its median 5.9 s → 3.4 s
(with distractors 0.810 → 0.800, 7.9 s → 3.8 s); paraphrase 0.811 → 0.803, 12.5 s either way (with
distractors 0.704 → 0.730, 13.5 s) — a mixed gain that the held-out halves did not confirm (strict
0.720 → 0.700 and 0.689 → 0.635, paraphrase median 7.0 → 11.0 s): 0.7 stays. Also rejected there:
  * 0.5: 100-set strict 0.842 (median 3.3 s), paraphrase 0.750;
  * CONTEXT_S 6 / 10 / 15 s (at every EARLIEST_SHARE 0.5–0.8): lower strict and longer medians;
  * walking back from the anchor over sentences with no pause / speaker change / question between
    them (5–20 s): strict 0.872 → 0.60–0.77 (inside a line there is no pause to stop at);
  * a question holding a query word up to 20–60 s before the anchor taking over at 0.2–0.5 of the
    best score: ±1 question, no clear change;
  * opening up to 15 / 30 s before the window (an answer whose start is outside its chunk): median
    3.0 / 2.7 s but strict 0.852;
  * question detection by "?" only, or without the when/where/which/who openers: better on the
    100-set, worse on the paraphrase set;
  * MAX_UNIT_WORDS 15 / 25 (finer units for unpunctuated captions): 100-set strict 0.865 / 0.855,
    median 9.7 / 7.8 s;
  * a conditional logit over 17 cues (query-word shares 0–40 s ahead and 15 s behind, question
    before, reply openers, pauses, speaker change, the rule's pick; fitted on the 79 tuning windows):
    it picked the marked sentence in 46 % of its own training windows, and the paraphrase half's
    strict MRR fell 0.811 → 0.73;
  * the ms-marco cross-encoder scoring the ~10 s from each sentence: medians 10–11 s (and ≈ 7
    pairs/s under load, far outside any budget).
What remains (tuning half of the 100-set, transcripts alone, 22/50 links within 3 s of the answer
start): 12 answers start before or outside the moment's window (retrieval chose a later chunk of a
long answer, or the answer starts inside a long unpunctuated caption unit), 11 links land later
than the answer start (in 6 of them, more than 3 sentences later, the answer's first sentence holds
none of the query's words: "Well, I don't know." after the question), 3 earlier, 2 questions have
no overlapping moment; paraphrase (13/38 within 3 s): 14 later (9 of them at a first sentence with
no query word), 5 earlier, 4 outside, 2 without. Finding those needs meaning at the sentence, not
the query's words.
"""
from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.stems import known_words_stemming_to, word_stems

# The link opens this long before the sentence, then floored to the second: 0.5–1.5 s of lead-in.
# 1.0 (1–2 s) put the link of a sentence said 4–5 s before the answer start outside the strict
# window; 0.3 measured the same strict MRR as 0.5 but would leave a mid-line sentence's first word
# (its second interpolated by character offset, ≈ ±0.5 s) to chance.
LEAD_IN_S = 0.5
PAUSE_S = 1.5  # silence between two lines that ends a sentence even without punctuation
MAX_UNIT_WORDS = 35  # unpunctuated text: a new unit at the next line boundary past this many words
CONTEXT_S = 3.0  # a sentence is scored with the query words said within this many seconds of its start
EARLIEST_SHARE = 0.7  # the link opens at the earliest sentence scoring this share of the best one
WINDOW_MARGIN_S = 2.0  # segments this close outside the window still count (a sentence cut at its edge)
FORWARD_S = 15.0  # after a question that holds the query's words, its answer begins within this
QUESTION_AHEAD_S = 12.0  # a sentence followed this soon by a question is part of that question
QUESTION_TAIL_WORDS = 8  # a sentence this short right after a question is still the question
QUESTION_TAIL_S = 8.0  # … when it starts within this of the question
# Choosing by meaning (choose_by_meaning): the words' pick wins when it is at most this much
# before the most similar sentence (tuning halves: 5 and 10 s tie on strict MRR@10, 10 s puts
# more links within 3 s of the answer start; 20 s lowers strict MRR).
AGREE_S = 10.0


class TimedLine(NamedTuple):
    """One stored transcript segment (caption cue, whisper segment, VTT line)."""

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


class Sentence(NamedTuple):
    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


class Located(NamedTuple):
    """The answer sentence of one window, and the window's sentences around it (for the snippet)."""

    sentence: Sentence
    index: int  # type: ignore[assignment]  # position of `sentence` in `sentences` (shadows tuple.index)
    sentences: tuple[Sentence, ...]
    score: float  # the best sentence's Σ idf of query words (choose()); 0 = no query word in the window

    @property
    def link_s(self) -> float:
        return link_second(self.sentence.start_s)


def link_second(sentence_start_s: float) -> float:
    """The second a link opens at for a sentence: a short lead-in, never before 0."""
    return float(max(0, math.floor(sentence_start_s - LEAD_IN_S)))


# ---------------------------------------------------------------------------------------------
# Segments → sentences
# ---------------------------------------------------------------------------------------------

# Sentence end: terminal punctuation (and closing quotes/brackets) followed by whitespace.
_END = re.compile(r"[.?!…]+[\"'”’)\]]*(?=\s|$)")
_ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "st", "vs", "prof", "e.g", "i.e", "approx"})


@lru_cache(maxsize=65536)
def _pieces(line: str) -> tuple[tuple[int, int, bool], ...]:
    """(start, end, ends a sentence) character ranges of one line, in order. Cached: the lines
    of a popular passage are cut again for every search that shows it."""
    out, pos = [], 0
    for m in _END.finditer(line):
        if m.group(0) == "." and line[line.rfind(" ", 0, m.start()) + 1 : m.start()].lower() in _ABBREVIATIONS:
            continue
        out.append((pos, m.end(), True))
        pos = m.end()
        while pos < len(line) and line[pos].isspace():
            pos += 1
    if pos < len(line):
        out.append((pos, len(line), False))
    return tuple(out)


def split_sentences(lines: Sequence[TimedLine]) -> list[Sentence]:
    """Time-ordered lines → sentences, each with the interpolated second of its first word."""
    sentences: list[Sentence] = []
    cur_start = cur_end = 0.0
    cur_text: list[str] = []
    cur_speaker: str | None = None
    cur_words, closed = 0, True

    def flush() -> None:
        if cur_text:
            sentences.append(Sentence(cur_start, cur_end, " ".join(cur_text), cur_speaker))

    for line in lines:
        body = " ".join(line.text.split())
        if not body:
            continue
        span = max(line.end_s - line.start_s, 0.0)
        first = True
        for a, b, ends in _pieces(body):
            t0 = line.start_s + span * a / len(body)
            t1 = line.start_s + span * b / len(body)
            new = closed
            if first and not new:
                new = (line.speaker != cur_speaker or line.start_s - cur_end > PAUSE_S
                       or cur_words >= MAX_UNIT_WORDS)
            if new:
                flush()
                cur_start, cur_text, cur_speaker, cur_words = t0, [], line.speaker, 0
            piece = body[a:b].strip()
            cur_text.append(piece)
            cur_words += len(piece.split())
            cur_end = t1
            closed = ends
            first = False
    flush()
    return sentences


# ---------------------------------------------------------------------------------------------
# Loading the windows' lines, and the query words each sentence holds
# ---------------------------------------------------------------------------------------------


class Window(NamedTuple):
    media_item_id: int
    start_s: float
    end_s: float


def load_lines(session: Session, windows: Sequence[Window]) -> list[list[TimedLine]]:
    """The stored segments of each window (one query for all; ix_segments_item_start)."""
    if not windows:
        return []
    rows = session.execute(
        text(
            """
            SELECT w.n, s.start_s, s.end_s, s.text, s.speaker
            FROM unnest(CAST(:items AS bigint[]), CAST(:los AS float8[]), CAST(:his AS float8[]))
                 WITH ORDINALITY AS w(item, lo, hi, n)
            JOIN transcript_segments s
              ON s.media_item_id = w.item AND s.start_s < w.hi AND s.start_s >= w.lo - 60 AND s.end_s > w.lo
            ORDER BY w.n, s.start_s, s.idx
            """
        ),
        {
            "items": [int(w.media_item_id) for w in windows],
            "los": [float(w.start_s) - WINDOW_MARGIN_S for w in windows],
            "his": [float(w.end_s) + WINDOW_MARGIN_S for w in windows],
        },
    ).all()
    out: list[list[TimedLine]] = [[] for _ in windows]
    for n, start, end, body, speaker in rows:
        out[int(n) - 1].append(TimedLine(float(start), float(end), body, speaker))
    return out


_WORD = re.compile(r"[0-9a-z]+(?:['’][a-z]+)?")


def sentence_lexemes(session: Session, texts: Sequence[str], weights: Mapping[str, float]) -> list[frozenset[str]]:
    """The query lexemes (keys of `weights`) each text holds, its words stemmed as Postgres does."""
    words = [set(_WORD.findall(t.lower())) for t in texts]
    if not words:
        return []
    word_stems(session, set().union(*words))
    relevant = known_words_stemming_to(frozenset(weights))
    keys = relevant.keys()
    return [frozenset().union(*(relevant[w] for w in hits)) if (hits := ws & keys) else frozenset() for ws in words]


# ---------------------------------------------------------------------------------------------
# Choosing the sentence
# ---------------------------------------------------------------------------------------------


def choose(sentences: Sequence[Sentence], lexemes: Sequence[frozenset[str]],
           weights: Mapping[str, float]) -> tuple[int, float]:
    """(index, score) of the sentence where the query's words begin to gather.

    A sentence's score is the idf of the distinct query words said from its start to
    CONTEXT_S later (a question's words are often spread over a sentence and the next). Only
    a sentence that itself holds a query word can be chosen, so the link never opens on the
    filler before it. The best score marks the passage; the link opens at the *earliest*
    sentence scoring at least EARLIEST_SHARE of it, because an answer names its subject
    before it says the most about it — unless one of those sentences is a question: then the
    earliest such question (answer_start() moves on to its answer). The score returned is the best one; (-1, 0.0) when no
    sentence holds a query word.
    """
    own = [sum(weights.get(lx, 0.0) for lx in lxs) for lxs in lexemes]
    scores: dict[int, float] = {}
    for i, s in enumerate(sentences):
        if own[i] <= 0:
            continue
        seen: set[str] = set()
        j = i
        while j < len(sentences) and sentences[j].start_s - s.start_s <= CONTEXT_S:
            seen |= {lx for lx in lexemes[j] if lx in weights}
            j += 1
        scores[i] = sum(weights[lx] for lx in seen)
    if not scores:
        return -1, 0.0
    top = max(scores.values())
    good = [i for i, v in scores.items() if v >= EARLIEST_SHARE * top - 1e-9]
    # A question among them wins over earlier statements: its answer is what the viewer asked.
    questions = [i for i in good if is_question(sentences[i])]
    return min(questions or good), top


_QUESTION_OPENER = re.compile(
    r"^\W*(?:(?:and|so|but|okay|ok|now|well|yeah|alright)\W+)*"
    r"(?:could|can|does|do|did|is|are|was|were|what|what's|how|why|when|where|which|who|should|would|will|have|has)\b",
    re.IGNORECASE,
)


def is_question(sentence: Sentence) -> bool:
    body = sentence.text.rstrip()
    return body.endswith("?") or bool(_QUESTION_OPENER.match(body))


def answer_start(sentences: Sequence[Sentence], anchor: int) -> int:
    """From the sentence that holds the query's words to the one where its answer begins.

    Viewers ask what the host asked, and a host reading a viewer's question out says the
    question's words around the question mark, not only in it. So the anchor is taken as part of
    a question, and the link opens at the first sentence after that question (and after any
    question that follows it, within FORWARD_S), when
      * the anchor is a question;
      * a question starts within QUESTION_AHEAD_S after it ("My dad is two months on carnivore and
        his triglycerides went up … Is there any reason for concern?");
      * it is a short tail (≤ QUESTION_TAIL_WORDS words, within QUESTION_TAIL_S) of the question
        just before it ("…what is the best way to gain muscle? Work out frequency, fat to protein
        ratio.") — it then opens at the next sentence.
    Otherwise the anchor itself. A forward step costs little when wrong: a strict hit may lie
    anywhere up to the answer's end but only 5 s before its start. (Walking back from an anchor to
    the start of the reply that holds it — to the sentence after the last question, or a "Well,
    …"/"Yeah, …" opener — was measured and made the links worse: such openers are everywhere in
    conversation.)
    """
    here = sentences[anchor]
    q = anchor if is_question(here) else next(
        (j for j in range(anchor + 1, len(sentences))
         if sentences[j].start_s - here.start_s <= QUESTION_AHEAD_S and is_question(sentences[j])), -1)
    if q >= 0 and sentences[q].start_s - here.start_s > QUESTION_AHEAD_S:
        q = -1
    if q < 0:
        if (anchor > 0 and is_question(sentences[anchor - 1]) and len(here.text.split()) <= QUESTION_TAIL_WORDS
                and here.start_s - sentences[anchor - 1].start_s <= QUESTION_TAIL_S):
            j = anchor + 1
            return j if j < len(sentences) and sentences[j].start_s - here.start_s < FORWARD_S else anchor
        return anchor
    j = q + 1
    while j < len(sentences) and is_question(sentences[j]) and sentences[j].start_s - here.start_s < FORWARD_S:
        j += 1
    return j if j < len(sentences) and sentences[j].start_s - here.start_s < FORWARD_S else anchor


def _stored_sentences(window: str, space_id: int) -> str:
    """SQL of the stored sentences (start_s, embedding) of the window row `window` (its item, lo,
    hi): those starting in [lo, hi), and the one stored sentence before lo (within a minute; the
    window's first sentence may be its tail: _sentence_sims). One definition for both loaders."""
    return f"""
        (SELECT v.start_s, v.embedding FROM sentence_vectors v
         WHERE v.media_item_id = {window}.item AND v.embedding_space_id = {int(space_id)}
           AND v.start_s >= {window}.lo AND v.start_s < {window}.hi)
        UNION ALL
        (SELECT v.start_s, v.embedding FROM sentence_vectors v
         WHERE v.media_item_id = {window}.item AND v.embedding_space_id = {int(space_id)}
           AND v.start_s < {window}.lo AND v.start_s >= {window}.lo - 60
         ORDER BY v.start_s DESC LIMIT 1)"""


def load_similarities(session: Session, windows: Sequence[Window], firsts: Sequence[float], query_vector,
                      space: tuple[int, int]) -> list[dict[float, float]]:
    """Per window: sentence start second → cosine of its stored vector (core/sentence_index.py)
    with the query's, for the stored sentences starting from `firsts[n]` (the window's first
    loaded line) to its end, and the one stored sentence before that (the window's first
    sentence may be its tail: _sentence_sims). One query; only the query's embedding space."""
    sid, dim = int(space[0]), int(space[1])
    rows = session.execute(
        text(
            f"""
            SELECT w.n, v.start_s, 1 - (v.embedding::vector({dim}) <=> CAST(:qvec AS vector({dim})))
            FROM unnest(CAST(:items AS bigint[]), CAST(:los AS float8[]), CAST(:his AS float8[]))
                 WITH ORDINALITY AS w(item, lo, hi, n)
            CROSS JOIN LATERAL ({_stored_sentences('w', sid)}) v
            """
        ),
        {
            "items": [int(w.media_item_id) for w in windows],
            "los": [float(f) - 1e-6 for f in firsts],
            "his": [float(w.end_s) + WINDOW_MARGIN_S for w in windows],
            "qvec": np.asarray(query_vector, dtype=np.float32),
        },
    ).all()
    out: list[dict[float, float]] = [{} for _ in windows]
    for n, start, sim in rows:
        out[int(n) - 1][_second_key(start)] = float(sim)
    return out


def load_lines_and_similarities(session: Session, windows: Sequence[Window], query_vector, space: tuple[int, int]
                                ) -> tuple[list[list[TimedLine]], list[dict[float, float]]]:
    """load_lines() and load_similarities() in one statement: the same rows, one round trip.

    The similarities' lower bound per window (its first loaded line, else its start) is taken
    from the lines the same statement reads, as locate() took it from load_lines()."""
    if not windows:
        return [], []
    sid, dim = int(space[0]), int(space[1])
    rows = session.execute(
        text(
            f"""
            WITH w AS MATERIALIZED (
                SELECT * FROM unnest(CAST(:items AS bigint[]), CAST(:los AS float8[]), CAST(:his AS float8[]),
                                     CAST(:starts AS float8[])) WITH ORDINALITY AS w(item, lo, hi, wstart, n)
            ), lines AS MATERIALIZED (
                SELECT w.n, s.start_s, s.end_s, s.text, s.speaker, s.idx
                FROM w JOIN transcript_segments s
                  ON s.media_item_id = w.item AND s.start_s < w.hi AND s.start_s >= w.lo - 60 AND s.end_s > w.lo
            ), firsts AS (
                SELECT w.n, w.item, w.hi,
                       coalesce((SELECT min(l.start_s) FROM lines l WHERE l.n = w.n), w.wstart) - CAST(:eps AS float8) AS lo
                FROM w
            )
            SELECT 0 AS kind, l.n, l.start_s, l.end_s, l.text, l.speaker, NULL::float8 AS sim, l.idx
            FROM lines l
            UNION ALL
            SELECT 1, f.n, v.start_s, NULL, NULL, NULL, 1 - (v.embedding::vector({dim}) <=> CAST(:qvec AS vector({dim}))), NULL
            FROM firsts f
            CROSS JOIN LATERAL ({_stored_sentences('f', sid)}) v
            ORDER BY 1, 2, 3, 8
            """
        ),
        {
            "items": [int(w.media_item_id) for w in windows],
            "los": [float(w.start_s) - WINDOW_MARGIN_S for w in windows],
            "his": [float(w.end_s) + WINDOW_MARGIN_S for w in windows],
            "starts": [float(w.start_s) for w in windows],
            "eps": 1e-6,
            "qvec": np.asarray(query_vector, dtype=np.float32),
        },
    ).all()
    lines: list[list[TimedLine]] = [[] for _ in windows]
    sims: list[dict[float, float]] = [{} for _ in windows]
    for kind, n, start, end, body, speaker, sim, _idx in rows:
        if kind == 0:
            lines[int(n) - 1].append(TimedLine(float(start), float(end), body, speaker))
        else:
            sims[int(n) - 1][_second_key(start)] = float(sim)
    return lines, sims


def _second_key(start_s: float) -> float:
    # Sentence starts are recomputed from the same stored floats by the same arithmetic at index
    # and at query time; the rounding only guards against a different float formatting path.
    return round(float(start_s), 3)


def _sentence_sims(sentences: Sequence[Sentence], stored: Mapping[float, float]) -> list[float | None]:
    """Each window sentence's similarity, from the stored sentence it is. A window's first
    sentence can be the tail of a stored one that began in an earlier segment (the window's
    lines are cut into sentences from its first line on): it takes the vector of that stored
    sentence, the last one starting before it (within a minute)."""
    if not stored:
        return [None] * len(sentences)
    starts = sorted(stored)
    out: list[float | None] = []
    for x in sentences:
        key = _second_key(x.start_s)
        if key in stored:
            out.append(stored[key])
            continue
        k = bisect.bisect_right(starts, key) - 1
        out.append(stored[starts[k]] if k >= 0 and key - starts[k] <= 60.0 else None)
    return out


def choose_by_meaning(sentences: Sequence[Sentence], sims: Sequence[float | None], by_words: int) -> int:
    """The sentence most similar to the query (its stored vector's cosine); -1 when no sentence
    of the window has a vector. When the query's words begin to gather (`by_words`, choose()'s
    pick, -1 for none) at most AGREE_S before it, that earlier sentence is taken: the same
    answer, nearer its start."""
    have = [i for i, v in enumerate(sims) if v is not None]
    if not have:
        return -1
    best = max(have, key=lambda i: sims[i])  # type: ignore[arg-type, return-value]
    if by_words >= 0 and 0 <= sentences[best].start_s - sentences[by_words].start_s <= AGREE_S:
        return by_words
    return best


def locate(
    session: Session,
    windows: Sequence[Window],
    weights: Mapping[str, float],
    prefer: Sequence[tuple[float, float] | None] | None = None,
    *,
    query_vector=None,
    space: tuple[int, int] | None = None,
) -> list[Located | None]:
    """The answer sentence of each window, or None where the window has no stored segments
    (the caller then keeps the chunk's own start). `prefer` gives each window's best chunk
    (start, end): where a window that holds none of the query's words opens. With the query's
    vector and its embedding space, the sentence is chosen by meaning where the item's sentence
    vectors are stored (choose_by_meaning), else by the query's words (choose)."""
    if query_vector is not None and space is not None:  # one round trip for the lines and the similarities
        lines, sims = load_lines_and_similarities(session, windows, query_vector, space)
    else:
        lines, sims = load_lines(session, windows), [{} for _ in windows]
    per_window = [[s for s in split_sentences(ls) if s.start_s < w.end_s and s.end_s > w.start_s]
                  for ls, w in zip(lines, windows)]
    flat = [s.text for sents in per_window for s in sents]
    lexemes = sentence_lexemes(session, flat, weights) if weights and flat else [frozenset()] * len(flat)
    out: list[Located | None] = []
    pos = 0
    for n, sents in enumerate(per_window):
        lx = lexemes[pos : pos + len(sents)]
        pos += len(sents)
        if not sents:
            out.append(None)
            continue
        pref = prefer[n] if prefer else None
        i, score = choose(sents, lx, weights)
        by_meaning = choose_by_meaning(sents, _sentence_sims(sents, sims[n]), i)
        if by_meaning >= 0:
            i = answer_start(sents, by_meaning)
        elif i >= 0:
            i = answer_start(sents, i)
        else:
            # No query word in the window: a meaning-only match. Open at the first sentence that
            # starts inside the best chunk (its own start, snapped to a sentence).
            lo = pref[0] if pref else windows[n].start_s
            i = next((k for k, s in enumerate(sents) if s.start_s >= lo - WINDOW_MARGIN_S), 0)
        out.append(Located(sents[i], i, tuple(sents), score))
    return out


def snippet_around(located: Located, words: int) -> tuple[str, bool, bool]:
    """About `words` words with the answer sentence in the middle: (text, cut before, cut after)."""
    sents = located.sentences
    i = located.index
    body = sents[i].text.split()
    if len(body) >= words:
        return " ".join(body[:words]), i > 0, True
    room = words - len(body)
    before: list[str] = []
    for s in reversed(sents[:i]):
        before = s.text.split() + before
        if len(before) >= room // 2:
            break
    before = before[-(room // 2):] if room // 2 else []
    after: list[str] = []
    for s in sents[i + 1:]:
        after += s.text.split()
        if len(after) >= room - len(before):
            break
    after = after[: room - len(before)]
    cut_before = len(before) < sum(len(s.text.split()) for s in sents[:i])
    cut_after = len(after) < sum(len(s.text.split()) for s in sents[i + 1:])
    return " ".join(before + body + after), cut_before, cut_after
