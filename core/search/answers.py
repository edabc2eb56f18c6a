"""Cited answers built only from the top clips of a search.

With an OpenAI-compatible chat model configured (settings.openai_chat_model, and
openai_base_url / openai_api_key), the model writes a short answer from the numbered
clips; any sentence that does not cite a clip it was given is dropped, so every sentence
shown links to a clip that opens at its second. The call's tokens go into the ledger
(engine "chat"). Offline, or when the model fails or the budget is spent, the answer is
extractive: the clips' sentences closest to the question, each cited the same way.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.search.records import SearchResponse, format_timestamp
from core.search.shaping import stem

log = logging.getLogger(__name__)

MAX_CLIPS = 5
MAX_SENTENCES = 3
CHAT_ENGINE = "chat"
# Used only when the admin has not priced "chat" in the budget's price table (core/backfill/budget.py).
DEFAULT_CHAT_USD_PER_MILLION_TOKENS = 0.60
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")
_CITE = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Clip:
    number: int  # [n] in the answer
    media_item_id: int
    chunk_id: int
    title: str
    start_s: float
    end_s: float
    text: str
    link: str

    @property
    def timestamp(self) -> str:
        return format_timestamp(self.start_s)


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    clip: int  # the clip number it cites
    start_s: float  # where in that clip's media the sentence is said (≈ for chat answers)
    link: str


@dataclass
class Answer:
    sentences: list[AnswerSentence]
    clips: list[Clip]
    engine: str  # "extractive" | "chat"
    model: str | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(f"{s.text} [{s.clip}]" for s in self.sentences)


def clips_of(response: SearchResponse, *, max_clips: int = MAX_CLIPS, link_base: str = "/") -> list[Clip]:
    """The top moments across videos, best first: each video's best moment, then second ones."""
    picked = []
    for depth in range(3):
        for group in response.groups:
            if depth < len(group.moments):
                picked.append((group, group.moments[depth]))
    picked.sort(key=lambda gm: -gm[1].score)
    return [
        Clip(n, g.media_item_id, m.chunk_id, g.title, m.start_s, m.end_s, m.text, m.link)
        for n, (g, m) in enumerate(picked[:max_clips], start=1)
    ]


def _sentence_second(session: Session, clip: Clip, sentence: str, offset_words: int, total_words: int) -> float:
    """When the sentence is said: its word offset mapped into the clip's time span, snapped
    back to the start of the transcript segment it falls in (when segments are stored)."""
    span = max(clip.end_s - clip.start_s, 0.0)
    estimate = clip.start_s + span * (offset_words / max(total_words, 1))
    seg_start = session.execute(
        text(
            "SELECT max(start_s) FROM transcript_segments "
            "WHERE media_item_id = :item AND start_s <= :t AND start_s >= :lo"
        ),
        {"item": clip.media_item_id, "t": estimate + 0.5, "lo": clip.start_s - 1},
    ).scalar()
    return float(seg_start) if seg_start is not None else float(estimate)


def _clip_link(clip: Clip, second: float, link_base: str) -> str:
    # Clip links come from deep_link already; rebuild for the sentence's own second.
    if "youtube.com/watch" in clip.link:
        return re.sub(r"&t=\d+s", f"&t={int(second)}s", clip.link)
    if "play=" in clip.link:
        return re.sub(r"([?&])t=\d+", rf"\g<1>t={int(second)}", clip.link)
    return clip.link


def extractive_answer(
    session: Session, response: SearchResponse, *, embedder=None, max_sentences: int = MAX_SENTENCES, link_base: str = "/"
) -> Answer:
    clips = clips_of(response, link_base=link_base)
    terms = {stem(t) for t in response.prepared.terms}
    candidates: list[tuple[Clip, str, int, int]] = []  # clip, sentence, word offset, clip words
    for clip in clips:
        words_before = 0
        total = len(clip.text.split())
        for sentence in _SENTENCE.split(clip.text):
            n = len(sentence.split())
            if 6 <= n <= 60:
                candidates.append((clip, sentence.strip(), words_before, total))
            words_before += n
    if not candidates:
        return Answer([], clips, "extractive", notes=["no clip had a full sentence to quote"])
    overlap = np.array(
        [len({stem(w) for w in re.findall(r"[A-Za-z0-9']+", s)} & terms) / max(len(terms), 1) for _, s, _, _ in candidates],
        dtype=np.float32,
    )
    rank_prior = np.array([1.0 / (c.number + 1) for c, _, _, _ in candidates], dtype=np.float32)
    score = overlap + 0.3 * rank_prior
    if embedder is not None:
        # Meaning, not only shared words: cosine between the question and each sentence.
        qv = embedder.embed_query(response.prepared.cleaned)
        sv = embedder.embed_documents([s for _, s, _, _ in candidates])
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
        clip, sentence, offset, total = candidates[i]
        second = _sentence_second(session, clip, sentence, offset, total)
        sentences.append(AnswerSentence(sentence, clip.number, second, _clip_link(clip, second, link_base)))
    return Answer(sentences, clips, "extractive")


# ---------------------------------------------------------------------------------------------
# Chat model (OpenAI-compatible)
# ---------------------------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You answer questions about Dr. Anthony Chaffee's talks using ONLY the numbered transcript clips "
    "given. Write at most 4 short sentences. End every sentence with the number of the clip it comes "
    "from in square brackets, like [2]. Never use knowledge that is not in the clips. If the clips do "
    "not answer the question, reply with one sentence saying so, citing the closest clip."
)


def _chat_messages(question: str, clips: list[Clip]) -> list[dict]:
    listing = "\n\n".join(f"[{c.number}] {c.title} at {c.timestamp}:\n{c.text}" for c in clips)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Clips:\n\n{listing}\n\nQuestion: {question}"},
    ]


def _price_usd(session: Session, tokens: int) -> tuple[float, bool]:
    """(dollars, priced by the budget's table?)"""
    try:
        from core.backfill import budget

        price = budget.get_prices(session).get(CHAT_ENGINE)
        if price is not None and not price.free:
            return budget.cost({CHAT_ENGINE: price}, CHAT_ENGINE, tokens=tokens), True
    except Exception:  # budget module absent or its settings unreadable: fall back to the default
        log.debug("chat price from budget unavailable", exc_info=True)
    return DEFAULT_CHAT_USD_PER_MILLION_TOKENS * tokens / 1e6, False


def _record_cost(session: Session, model: str, tokens: int, item_id: int | None) -> float:
    usd, priced = _price_usd(session, tokens)
    note = f"cited answer ({model}, {tokens} tokens)"
    if priced:
        from core.backfill import budget

        return float(budget.record_spend(session, CHAT_ENGINE, tokens=tokens, note=note, item_id=item_id))
    from core.models import LedgerEntry

    session.add(LedgerEntry(engine=CHAT_ENGINE, tokens=tokens, usd=usd, note=note, media_item_id=item_id))
    session.flush()
    return usd


def _budget_left(session: Session) -> float | None:
    try:
        from core.backfill import budget

        return budget.state(session).left
    except Exception:
        return None


def chat_answer(session: Session, response: SearchResponse, *, settings=None, link_base: str = "/") -> Answer:
    """Ask the configured chat model; raises on transport errors (answer() falls back)."""
    from openai import OpenAI

    from core.config import get_settings

    settings = settings or get_settings()
    clips = clips_of(response, link_base=link_base)
    if not clips:
        return Answer([], [], "chat", settings.openai_chat_model, notes=["no clips to answer from"])
    client = OpenAI(api_key=settings.openai_api_key or "missing-key", base_url=settings.openai_base_url, max_retries=2, timeout=60)
    reply = client.chat.completions.create(
        model=settings.openai_chat_model, messages=_chat_messages(response.query, clips), temperature=0
    )
    content = (reply.choices[0].message.content or "").strip()
    tokens = int(reply.usage.total_tokens) if reply.usage is not None else 0
    usd = _record_cost(session, settings.openai_chat_model, tokens, clips[0].media_item_id)

    by_number = {c.number: c for c in clips}
    sentences: list[AnswerSentence] = []
    dropped = 0
    for sentence in _SENTENCE.split(content):
        cited = [int(n) for n in _CITE.findall(sentence) if int(n) in by_number]
        body = _CITE.sub("", sentence).strip()
        body = re.sub(r"\s+([.!?,;:])", r"\1", body)
        if not cited or not body:
            dropped += 1
            continue
        clip = by_number[cited[0]]
        sentences.append(AnswerSentence(body, clip.number, clip.start_s, clip.link))
    notes = [f"dropped {dropped} sentence(s) without a valid citation"] if dropped else []
    return Answer(sentences, clips, "chat", settings.openai_chat_model, tokens, usd, notes)


def chat_configured(settings=None) -> bool:
    from core.config import get_settings

    s = settings or get_settings()
    return bool(s.openai_chat_model and (s.openai_base_url or s.openai_api_key))


def answer(
    session: Session, response: SearchResponse, *, use_chat: bool | None = None, embedder=None, settings=None,
    link_base: str = "/",
) -> Answer:
    """A short cited answer for a search response: chat when configured and affordable, else extractive."""
    want_chat = chat_configured(settings) if use_chat is None else use_chat
    notes: list[str] = []
    if want_chat and response.groups:
        left = _budget_left(session)
        if left is not None and left <= 0:
            notes.append("chat answer skipped: the budget is spent")
        else:
            try:
                result = chat_answer(session, response, settings=settings, link_base=link_base)
                if result.sentences:
                    return result
                notes += result.notes + ["the chat model gave no cited sentence"]
            except Exception as exc:  # network, auth, rate limit: the extractive answer still helps
                log.warning("chat answer failed: %s", exc)
                notes.append(f"chat answer failed ({type(exc).__name__}); showing quoted sentences instead")
    result = extractive_answer(session, response, embedder=embedder, link_base=link_base)
    result.notes = notes + result.notes
    return result
