"""Cited answers built only from the moments that answer the query, each sentence with its speaker.

Rules (issue 11): an answer quotes only moments the verdict marked as answering
(`Moment.answers`); with none there is no answer at all, only the verdict's "nothing on
this" message. Every sentence says who said it when the transcript names speakers
(`transcript_segments.speaker`, `chunks.speakers`) and never joins two speakers' words as one
person's: the clips are *speaker turns* (consecutive segments of one speaker inside an
answering moment), sentences are cut inside a turn, and a chat sentence citing turns of two
different speakers is dropped. A moment whose chunk names several speakers but has no timed
segments cannot be split by speaker, so it is not quoted.

With an OpenAI-compatible chat model configured (settings.openai_chat_model, and
openai_base_url / openai_api_key), the model writes a short answer from the numbered turns;
any sentence that does not cite a turn it was given is dropped. Its spend goes through the
budget like transcription: an estimate is reserved under the budget lock before the call
(refused when it would pass a cap), settled to the actual tokens after it, released when the
call fails (core/backfill/budget.py). Offline, or when the model fails or the budget refuses, the answer
is extractive: the turns' sentences closest to the question, each cited the same way.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.links import deep_link
from core.search.moments import TimedLine, split_sentences
from core.search.records import Moment, SearchResponse, VideoGroup, format_timestamp
from core.search.shaping import stem

if TYPE_CHECKING:  # openai is imported where the call is made (it is slow to import)
    from openai.types.chat import ChatCompletionMessageParam

log = logging.getLogger(__name__)

MAX_MOMENTS = 5  # answering moments quoted from, best first
MAX_CLIPS = 12  # speaker turns given to the chat model
MAX_SENTENCES = 3
CHAT_ENGINE = "chat"
MAX_ANSWER_TOKENS = 300  # the completion cap sent with the request (part of the reserved estimate)
CHARS_PER_TOKEN = 3.0  # English is ≈ 4 characters a token: 3 errs high, so actual ≤ reserved
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")
_CITE = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Clip:
    """One speaker's turn inside an answering moment: what an answer sentence may cite."""

    number: int  # [n] in the answer
    media_item_id: int
    chunk_id: int  # the moment's best chunk
    title: str
    start_s: float
    end_s: float
    text: str
    link: str
    speaker: str | None = None  # None: the transcript names no speakers
    pieces: tuple[tuple[float, float, str], ...] = ()  # (start, end, text) of the turn's timed segments
    url: str = ""  # the item's URL and local file: where a sentence's own deep link points
    media_path: str | None = None
    link_s: float | None = None  # where `link` opens (None: start_s)

    @property
    def opens_at(self) -> float:
        return self.start_s if self.link_s is None else self.link_s

    @property
    def timestamp(self) -> str:
        return format_timestamp(self.opens_at)


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    clip: int  # the clip number it cites
    start_s: float  # where in that clip's media the sentence is said (chat answers: where the clip's link opens)
    link: str
    speaker: str | None = None  # who said it (the cited turn's speaker); None when unlabelled


@dataclass
class Answer:
    sentences: list[AnswerSentence]
    clips: list[Clip]
    engine: str  # "extractive" | "chat" | "none" (nothing answers the query)
    model: str | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(f"{s.speaker + ': ' if s.speaker else ''}{s.text} [{s.clip}]" for s in self.sentences)


# ---------------------------------------------------------------------------------------------
# Clips: speaker turns of the answering moments
# ---------------------------------------------------------------------------------------------


def answering_moments(response: SearchResponse, *, limit: int = MAX_MOMENTS) -> list[tuple[VideoGroup, Moment]]:
    """The moments the verdict says answer the query, best first; none unless it is *answered*."""
    if response.verdict is None or not response.verdict.answered:
        return []
    picked = [(g, m) for g, m in response.hits() if m.answers]
    picked.sort(key=lambda gm: -gm[1].score)
    return picked[:limit]


def _window(moment: Moment) -> tuple[float, float]:
    """The moment's hit window. `start_s` is where its link opens (just before the answer
    sentence, core/search/moments.py); the window, and `text`, start at window_start_s."""
    start = moment.window_start_s if moment.window_start_s is not None else moment.start_s
    return min(start, moment.start_s), moment.end_s


def _turns(session: Session, group: VideoGroup, moment: Moment) -> list[tuple[str | None, list[tuple[float, float, str]]]]:
    """(speaker, [(start, end, text)]) runs of one speaker inside the moment's window, in speech order.

    From the stored timed segments; without any, the moment's text (the whole window) is one
    turn when its chunk names at most one speaker, and nothing when it names several (no way to
    tell who said what).
    """
    lo, hi = _window(moment)
    rows = session.execute(
        text(
            "SELECT start_s, end_s, text, speaker FROM transcript_segments "
            "WHERE media_item_id = :item AND start_s >= :lo AND start_s < :hi ORDER BY start_s, idx"
        ),
        # A segment a few tenths before the window still belongs to it (chunk and segment
        # boundaries come from the same times, rounded).
        {"item": group.media_item_id, "lo": lo - 0.5, "hi": hi},
    ).all()
    if not rows:
        if len(moment.speakers) > 1:
            return []
        return [(moment.speakers[0] if moment.speakers else None, [(lo, hi, moment.text)])]
    turns: list[tuple[str | None, list[tuple[float, float, str]]]] = []
    for start, end, body, speaker in rows:
        who = (speaker or "").strip() or None
        if turns and turns[-1][0] == who:
            turns[-1][1].append((float(start), float(end), body))
        else:
            turns.append((who, [(float(start), float(end), body)]))
    return turns


def clips_of(session: Session, response: SearchResponse, *, link_base: str = "/", max_clips: int = MAX_CLIPS) -> list[Clip]:
    """The speaker turns of the answering moments, numbered from 1 (best moment first).

    A clip's link opens at its turn's start, except the turn that holds the moment's answer
    sentence: that one opens where the moment's own link does (Moment.start_s, just before
    the sentence), not up to a minute earlier at the start of the turn.
    """
    clips: list[Clip] = []
    for group, moment in answering_moments(response):
        answer_at = moment.sentence_start_s if moment.sentence_start_s is not None else moment.start_s
        for speaker, segs in _turns(session, group, moment):
            if len(clips) == max_clips:
                return clips
            start, end = segs[0][0], segs[-1][1]
            link_s = moment.start_s if start <= answer_at < end else start
            clips.append(Clip(
                number=len(clips) + 1, media_item_id=group.media_item_id, chunk_id=moment.chunk_id, title=group.title,
                start_s=start, end_s=end, text=" ".join(t.strip() for _, _, t in segs),
                link=deep_link(_ItemRef(group.media_item_id, group.url, group.media_path), link_s, base=link_base),
                speaker=speaker, pieces=tuple((s, e, t.strip()) for s, e, t in segs), url=group.url,
                media_path=group.media_path, link_s=link_s,
            ))
    return clips


def _clips(session: Session | None, response: SearchResponse, link_base: str, clips: list[Clip] | None) -> list[Clip]:
    """The clips given, or read with the session (one of the two is needed)."""
    if clips is not None:
        return clips
    if session is None:
        raise TypeError("an answer needs a session or the clips already read")
    return clips_of(session, response, link_base=link_base)


class _ItemRef:
    """The three attributes deep_link() reads."""

    __slots__ = ("id", "url", "media_path")

    def __init__(self, item_id: int, url: str, media_path: str | None):
        self.id, self.url, self.media_path = item_id, url, media_path


def _sentence_link(clip: Clip, second: float, link_base: str) -> str:
    return deep_link(_ItemRef(clip.media_item_id, clip.url, clip.media_path), second, base=link_base)


def sentences_of(clip: Clip) -> list[tuple[str, float]]:
    """(sentence, the second it starts) inside one turn, cut and timed as the moments' answer
    sentences are (core/search/moments.split_sentences: the second of its first word,
    interpolated inside its segment), so a quoted sentence and the moment's link agree."""
    pieces = clip.pieces or ((clip.start_s, clip.end_s, clip.text),)
    lines = [TimedLine(start, end, body, clip.speaker) for start, end, body in pieces]
    return [(s.text, s.start_s) for s in split_sentences(lines) if s.text.strip()]


# ---------------------------------------------------------------------------------------------
# Extractive answer
# ---------------------------------------------------------------------------------------------


def _no_answer(response: SearchResponse) -> Answer:
    v = response.verdict
    if v is not None and v.answered:  # answering moments, but none can be split by speaker
        why = "The passages that answer this name several speakers without timed turns: none is quoted."
    else:
        why = v.message if v is not None else "No passage in the archive answers this."
    return Answer([], [], "none", notes=[why])


def extractive_answer(
    session: Session | None, response: SearchResponse, *, embedder=None, max_sentences: int = MAX_SENTENCES,
    link_base: str = "/", clips: list[Clip] | None = None,
) -> Answer:
    clips = _clips(session, response, link_base, clips)
    if not clips:
        return _no_answer(response)
    terms = {stem(t) for t in response.prepared.terms}
    candidates: list[tuple[Clip, str, float]] = []  # clip, sentence, second
    for clip in clips:
        for sentence, second in sentences_of(clip):
            if 6 <= len(sentence.split()) <= 60:
                candidates.append((clip, sentence, second))
    if not candidates:
        return Answer([], clips, "extractive", notes=["no answering passage had a full sentence to quote"])
    overlap = np.array(
        [len({stem(w) for w in re.findall(r"[A-Za-z0-9']+", s)} & terms) / max(len(terms), 1) for _, s, _ in candidates],
        dtype=np.float32,
    )
    rank_prior = np.array([1.0 / (c.number + 1) for c, _, _ in candidates], dtype=np.float32)
    score = overlap + 0.3 * rank_prior
    if embedder is not None:
        # Meaning, not only shared words: cosine between the question and each sentence.
        qv = np.asarray(embedder.embed_query(response.prepared.cleaned), dtype=np.float32)
        sv = np.asarray(embedder.embed_documents([s for _, s, _ in candidates]), dtype=np.float32)
        score = score + 2.0 * (sv @ qv)
    order = np.argsort(-score, kind="stable")
    chosen: list[int] = []
    for i in order:
        if len(chosen) == max_sentences:
            break
        if any(candidates[i][1] == candidates[j][1] for j in chosen):
            continue
        chosen.append(int(i))
    # Read in the order of the clips and, within a clip, of speech.
    chosen.sort(key=lambda i: (candidates[i][0].number, candidates[i][2]))
    sentences = []
    for i in chosen:
        clip, sentence, second = candidates[i]
        sentences.append(AnswerSentence(sentence, clip.number, second, _sentence_link(clip, second, link_base),
                                        clip.speaker))
    return Answer(sentences, clips, "extractive")


# ---------------------------------------------------------------------------------------------
# Chat model (OpenAI-compatible)
# ---------------------------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You answer questions about Dr. Anthony Chaffee's talks using ONLY the numbered transcript clips "
    "given. Each clip is the words of one speaker, named in the clip when the transcript names them. "
    "Write at most 4 short sentences. Say who said what as the clips name them; never attribute words "
    "to Dr. Chaffee or anyone else unless the clip names that speaker, and never combine clips of "
    "different speakers in one sentence. End every sentence with the number of the clip it comes from "
    "in square brackets, like [2]. Never use knowledge that is not in the clips. If the clips do not "
    "answer the question, reply with one sentence saying so, citing the closest clip."
)


def _chat_messages(question: str, clips: list[Clip]) -> list[ChatCompletionMessageParam]:
    def head(c: Clip) -> str:
        who = f"{c.speaker} speaking" if c.speaker else "speaker not named"
        return f"[{c.number}] {c.title} at {c.timestamp}, {who}:"

    listing = "\n\n".join(f"{head(c)}\n{c.text}" for c in clips)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Clips:\n\n{listing}\n\nQuestion: {question}"},
    ]


def estimate_tokens(messages: Iterable[Mapping[str, object]]) -> int:
    """A high estimate of a call's tokens: the prompt's characters / 3, plus the completion cap."""
    chars = sum(len(str(m["content"])) for m in messages)  # our messages' contents are plain text
    return int(chars / CHARS_PER_TOKEN) + MAX_ANSWER_TOKENS


class ChatRefused(RuntimeError):
    """The budget does not allow the call now (the message says why)."""


def chat_answer(session: Session | None, response: SearchResponse, *, settings=None, link_base: str = "/",
                clips: list[Clip] | None = None) -> Answer:
    """Ask the configured chat model, its spend reserved first; raises ChatRefused when the
    budget says no, and transport errors as they come (answer() falls back to quoting)."""
    from openai import OpenAI

    from core.backfill import budget
    from core.config import get_settings
    from core.db import session_scope

    settings = settings or get_settings()
    clips = _clips(session, response, link_base, clips)
    if not clips:
        return _no_answer(response)
    messages = _chat_messages(response.query, clips)
    item_id = clips[0].media_item_id
    # Its own transaction, committed before the call: the reservation is then visible to every
    # other viewer's (and worker's) reserve, which runs under the same budget lock.
    with session_scope() as own:
        held = budget.reserve_call(own, CHAT_ENGINE, tokens=estimate_tokens(messages), item_id=item_id)
    if not held.ok:
        raise ChatRefused(held.reason)
    try:
        client = OpenAI(api_key=settings.openai_api_key or "missing-key", base_url=settings.openai_base_url,
                        max_retries=2, timeout=60)
        reply = client.chat.completions.create(
            model=settings.openai_chat_model, messages=messages, temperature=0, max_tokens=MAX_ANSWER_TOKENS,
        )
    except BaseException:
        with session_scope() as own:
            budget.release(own, held.reservation_id)
        raise
    content = (reply.choices[0].message.content or "").strip()
    tokens = int(reply.usage.total_tokens) if reply.usage is not None else estimate_tokens(messages)
    with session_scope() as own:
        usd = budget.settle(own, held.reservation_id, [budget.UsageLike(CHAT_ENGINE, tokens=tokens)], job_id=None,
                            item_id=item_id, note=f"cited answer ({settings.openai_chat_model}, {tokens} tokens)")

    by_number = {c.number: c for c in clips}
    sentences: list[AnswerSentence] = []
    dropped = mixed = 0
    for sentence in _SENTENCE.split(content):
        cited = [int(n) for n in _CITE.findall(sentence) if int(n) in by_number]
        body = _CITE.sub("", sentence).strip()
        body = re.sub(r"\s+([.!?,;:])", r"\1", body)
        if not cited or not body:
            dropped += 1
            continue
        if len({by_number[n].speaker for n in cited}) > 1:
            mixed += 1  # one sentence over two speakers' words: it would make one person say both
            continue
        clip = by_number[cited[0]]
        sentences.append(AnswerSentence(body, clip.number, clip.opens_at, clip.link, clip.speaker))
    notes = [f"dropped {dropped} sentence(s) without a valid citation"] if dropped else []
    if mixed:
        notes.append(f"dropped {mixed} sentence(s) that joined two speakers' words")
    return Answer(sentences, clips, "chat", settings.openai_chat_model, tokens, float(usd), notes)


def chat_configured(settings=None) -> bool:
    from core.config import get_settings

    s = settings or get_settings()
    return bool(s.openai_chat_model and (s.openai_base_url or s.openai_api_key))


def answer(
    session: Session | None, response: SearchResponse, *, use_chat: bool | None = None, embedder=None, settings=None,
    link_base: str = "/", clips: list[Clip] | None = None,
) -> Answer:
    """A short cited answer for a search response: chat when configured and the budget allows,
    else extractive; no answer at all (engine "none", the verdict's message as its note) when
    no moment answers the query. With `clips` already read (core/search_db.answer reads them on
    a replica) no session is needed."""
    clips = _clips(session, response, link_base, clips)
    if not clips:
        return _no_answer(response)
    want_chat = chat_configured(settings) if use_chat is None else use_chat
    notes: list[str] = []
    if want_chat:
        try:
            result = chat_answer(session, response, settings=settings, link_base=link_base, clips=clips)
            if result.sentences:
                return result
            notes += result.notes + ["the chat model gave no cited sentence"]
        except ChatRefused as exc:
            notes.append(f"chat answer skipped: {exc}")
        except Exception as exc:  # network, auth, rate limit: the extractive answer still helps
            log.warning("chat answer failed: %s", exc)
            notes.append(f"chat answer failed ({type(exc).__name__}); showing quoted sentences instead")
    result = extractive_answer(session, response, embedder=embedder, link_base=link_base, clips=clips)
    result.notes = notes + result.notes
    return result
