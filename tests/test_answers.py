"""Cited answers that never invent: only answering moments, every sentence with its speaker, the
chat model's spend reserved in the budget before the call (real Postgres, real embeddings, the
real `openai` client against the local fake OpenAI server)."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from core.backfill import budget
from core.chunking import chunk_segments
from core.config import load_settings
from core.db import session_scope
from core.embeddings import ensure_space, get_embedder
from core.models import Chunk, LedgerEntry, MediaItem, Reservation, Source, TranscriptSegment
from core.records import Segment
from core.search import Verdict, answer, cache, search
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.slow
HOST, CHAFFEE = "Sarah Kim", "Anthony Chaffee"
# A members' call with two labelled speakers: the host asks, Dr. Chaffee answers, the host
# adds her own story. Which words are whose is what the answers must keep.
DIALOGUE = [
    (HOST, "Our next question is about oxalates. Someone asks whether spinach smoothies can cause kidney stones."),
    (HOST, "I used to drink one every morning, so I am curious too."),
    (CHAFFEE, "Yes, spinach is one of the highest oxalate foods there is. Oxalate binds calcium and forms the crystals "
              "that make most kidney stones."),
    (CHAFFEE, "When people stop eating spinach and nuts, their oxalate levels fall and the stones usually stop forming."),
    (HOST, "My own kidney stones stopped after I quit the green smoothies. I had three stones in two years before that."),
    (CHAFFEE, "That is very common. Some people feel aches for a few weeks while the body clears stored oxalate, "
              "which is called oxalate dumping."),
    (HOST, "Thanks, that helps a lot. Let us move on to questions about sleep and shift work."),
    (HOST, "A nurse writes that she works nights and wonders when she should eat her meals."),
]


@pytest.fixture()
def call(db):
    """One Zoom call whose transcript names its speakers, stored the way the pipeline stores it."""
    cache.clear()
    segs = []
    t = 10.0
    for speaker, line in DIALOGUE:
        dur = 0.4 * len(line.split())
        segs.append(Segment(t, t + dur, line, speaker=speaker))
        t += dur + 0.5
    embedder = get_embedder()
    with session_scope() as s:
        space = ensure_space(s, embedder)
        src = Source(kind="zoom", name="members", url="test://zoom")
        s.add(src)
        s.flush()
        item = MediaItem(source_id=src.id, external_id="call-1", title="Members call: oxalates", url="https://zoom.example/rec/1",
                         media_path="/srv/zoom/call-1.m4a", status="indexed", visible=True, duration_s=t,
                         published_at=datetime(2025, 3, 1, tzinfo=timezone.utc), indexed_at=datetime.now(timezone.utc))
        s.add(item)
        s.flush()
        for i, seg in enumerate(segs):
            s.add(TranscriptSegment(media_item_id=item.id, idx=i, start_s=seg.start, end_s=seg.end, text=seg.text,
                                    speaker=seg.speaker, engine="zoom-vtt"))
        chunks = list(chunk_segments(segs))
        for c, v in zip(chunks, embedder.embed_documents([c.text for c in chunks])):
            s.add(Chunk(media_item_id=item.id, idx=c.index, start_s=c.start, end_s=c.end, text=c.text,
                        speakers=", ".join(c.speakers) or None, embedding=v, embedding_space_id=space.id))
        item.chunk_count = len(chunks)
        return {"item": item.id, "segments": [(seg.start, seg.text, seg.speaker) for seg in segs]}


QUESTION = "can spinach and oxalates cause kidney stones"


def _speaker_of(sentence: str, segments) -> set[str]:
    """Who said the words of a quoted sentence (every speaker whose segment holds part of it)."""
    return {who for _, seg_text, who in segments if sentence in seg_text or seg_text in sentence}


def test_an_extractive_answer_quotes_only_answering_moments_each_sentence_with_its_speaker(call):
    with session_scope() as s:
        r = search(s, QUESTION, log=False)
        assert r.verdict.verdict is Verdict.ANSWERED, r.verdict
        ans = answer(s, r, use_chat=False)
    answering = {m.chunk_id for _, m in r.hits() if m.answers}
    assert ans.engine == "extractive" and ans.sentences
    assert {c.chunk_id for c in ans.clips} <= answering  # cites only moments that hold the answer
    for clip in ans.clips:
        # A clip is one speaker's turn: every segment inside it is that speaker's.
        assert all(who == clip.speaker for start, _, who in call["segments"] if clip.start_s <= start < clip.end_s)
    for sent in ans.sentences:
        speakers = _speaker_of(sent.text, call["segments"])
        assert speakers == {sent.speaker}, (sent, speakers)  # said by exactly the named person, never two
        assert sent.link.startswith("/?play=") and sent.link.endswith(f"&t={int(sent.start_s)}")
    assert any(s.speaker == CHAFFEE and "oxalate" in s.text.lower() for s in ans.sentences)
    assert f"{CHAFFEE}: " in ans.text


def test_a_chat_sentence_joining_two_speakers_is_dropped_and_the_rest_name_their_speaker(call):
    def reply(messages):
        prompt = messages[1]["content"]
        chaffee = next(int(line[1:line.index("]")]) for line in prompt.splitlines() if f"{CHAFFEE} speaking" in line)
        host = next(int(line[1:line.index("]")]) for line in prompt.splitlines() if f"{HOST} speaking" in line)
        return (f"Spinach is very high in oxalate, which forms most kidney stones [{chaffee}]. "
                f"Dr. Chaffee had three stones in two years [{host}][{chaffee}].")

    with FakeOpenAI(chat_reply=reply) as fake:
        settings = load_settings(openai_base_url=fake.base_url, openai_api_key="k", openai_chat_model="gpt-test")
        with session_scope() as s:
            ans = answer(s, search(s, QUESTION, log=False), settings=settings)
        sent = fake.requests_to("/v1/chat/completions")[0].json
    assert ans.engine == "chat"
    assert [(x.text, x.speaker) for x in ans.sentences] == [
        ("Spinach is very high in oxalate, which forms most kidney stones.", CHAFFEE)]
    assert any("joined two speakers" in n for n in ans.notes)
    assert f"{CHAFFEE} speaking" in sent["messages"][1]["content"] and sent["max_tokens"] > 0
    with session_scope() as s:
        res = s.scalars(select(Reservation)).one()
        row = s.scalars(select(LedgerEntry).where(LedgerEntry.engine == "chat")).one()
    # Reserved before the call, settled to the actual tokens after it.
    assert res.status == "settled" and row.reservation_id == res.id and row.tokens == ans.tokens > 0
    assert float(row.usd) == pytest.approx(ans.cost_usd) and float(row.usd) <= float(res.usd)


def test_a_failed_chat_call_releases_its_reservation_and_spends_nothing(call):
    with FakeOpenAI() as fake:
        fake.fail_next(5, status=500)
        settings = load_settings(openai_base_url=fake.base_url, openai_api_key="k", openai_chat_model="gpt-test")
        with session_scope() as s:
            ans = answer(s, search(s, QUESTION, log=False), settings=settings)
    assert ans.engine == "extractive" and ans.sentences and any("failed" in n for n in ans.notes)
    with session_scope() as s:
        assert [r.status for r in s.scalars(select(Reservation))] == ["released"]
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        assert budget.state(s).reserved == 0


def test_two_concurrent_answers_at_a_cap_that_allows_one_never_both_spend(call):
    """Two viewers ask at once; the day's cap fits one answer's estimate, not two. Both reserve
    under the budget lock, so exactly one calls the model; the other quotes the clips instead."""
    entered = threading.Barrier(2)

    def slow_reply(messages):
        import time

        time.sleep(1.5)  # still in flight while the other viewer asks
        return "Spinach is very high in oxalate [1]."

    with session_scope() as s:
        budget.set_price(s, "chat", per_million_tokens=1000.0)  # $0.001 a token: dollars a call
        r = search(s, QUESTION, log=False)
        from core.search.answers import _chat_messages, clips_of, estimate_tokens

        one = budget.cost(budget.get_prices(s), "chat", tokens=estimate_tokens(_chat_messages(r.query, clips_of(s, r))))
        one *= budget.ESTIMATE_MARGIN
        budget.set_budget(s, daily=round(one * 1.2, 2), monthly=200)  # one estimate fits; a second, or spent + one, does not
    results: list = [None, None]
    with FakeOpenAI(chat_reply=slow_reply) as fake:
        settings = load_settings(openai_base_url=fake.base_url, openai_api_key="k", openai_chat_model="gpt-test")

        def viewer(n: int) -> None:
            with session_scope() as s:
                response = search(s, QUESTION, log=False)
                entered.wait()
                results[n] = answer(s, response, settings=settings)

        threads = [threading.Thread(target=viewer, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        calls = fake.requests_to("/v1/chat/completions", status=None)
    engines = sorted(a.engine for a in results)
    assert engines == ["chat", "extractive"] and len(calls) == 1
    refused = next(a for a in results if a.engine == "extractive")
    assert any("chat answer skipped" in n and "budget" in n for n in refused.notes), refused.notes
    with session_scope() as s:
        st = budget.state(s)
        assert s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.engine == "chat")) == 1
        assert st.reserved == 0 and st.spent_today <= st.limits.daily_cap


def test_the_reaper_leaves_an_answer_in_flight_alone(call):
    with session_scope() as s:
        held = budget.reserve_call(s, "chat", tokens=2000, item_id=call["item"])
    assert held.ok and held.reservation_id
    with session_scope() as s:
        assert budget.reap_reservations(s) == []  # a job-less call reservation is not a lost job
        assert s.get(Reservation, held.reservation_id).status == "open"


def test_clips_cover_the_moments_whole_window_and_the_answer_turn_opens_at_the_moments_second(call):
    """Moment.start_s is the link second (just before the answer sentence), not the window start:
    the clips are cut from the whole window, and the turn holding the answer sentence opens
    where the moment's own link does, not at the start of that speaker's turn."""
    from core.search.answers import clips_of

    with session_scope() as s:
        r = search(s, QUESTION, log=False)
        clips = clips_of(s, r)
    moment = next(m for _, m in r.hits() if m.answers)
    assert moment.window_start_s is not None and moment.sentence_start_s is not None
    mine = [c for c in clips if c.chunk_id == moment.chunk_id]
    # From the window's first segment: the host's question before the answer is there too.
    assert min(c.start_s for c in mine) <= moment.window_start_s + 0.5
    assert max(c.end_s for c in mine) >= moment.end_s - 0.5
    holding = next(c for c in mine if c.start_s <= moment.sentence_start_s < c.end_s)
    assert holding.link == moment.link and holding.timestamp == moment.timestamp
