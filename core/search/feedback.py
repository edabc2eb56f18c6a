"""Thumbs up / down per hit: stored anonymously, summarised for the admin, and read back by
bench/relevance.py as extra relevance judgments.

On the page a vote toggles (up, down, none) and counts once per browser session: `set_vote`
keeps one row per (session token, query, moment) and changes it in place; pressing the same
thumb again takes the vote back (`toggled`). `record_feedback` (one row per call, no session)
stays for callers outside the page.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.models import Chunk, Feedback
from core.search.suggest import normalise_query


@dataclass(frozen=True)
class FeedbackRow:
    query: str
    media_item_id: int | None
    title: str | None
    start_s: float | None
    up: int
    down: int


@dataclass(frozen=True)
class Judgment:
    """One user's verdict on one moment, as the benchmark uses it."""

    query: str
    external_id: str  # YouTube id / file hash of the media item
    start_s: float
    end_s: float
    relevant: bool


def record_feedback(session: Session, query: str, chunk_id: int, vote: int) -> Feedback:
    """Store +1 / -1 for the moment `chunk_id` shown for `query`."""
    if vote not in (1, -1):
        raise ValueError("vote must be +1 or -1")
    chunk = session.get(Chunk, int(chunk_id))
    if chunk is None:
        raise ValueError(f"no chunk {chunk_id}")
    row = Feedback(
        query=normalise_query(query), chunk_id=chunk.id, media_item_id=chunk.media_item_id,
        start_s=chunk.start_s, vote=vote,
    )
    session.add(row)
    session.flush()
    return row


class Vote(IntEnum):
    DOWN = -1
    NONE = 0
    UP = 1


def toggled(current: Vote, pressed: Vote) -> Vote:
    """The vote after pressing a thumb: the same thumb again takes the vote back."""
    return Vote.NONE if pressed == current else pressed


def set_vote(session: Session, query: str, chunk_id: int, session_key: str, vote: Vote) -> Vote:
    """This browser session's vote on one moment for one query: up, down, or none (row removed)."""
    if not session_key:
        raise ValueError("a vote needs the browser session it belongs to")
    q = normalise_query(query)
    key = str(session_key)[:64]
    mine = (Feedback.session_key == key) & (Feedback.query == q) & (Feedback.chunk_id == int(chunk_id))
    if vote == Vote.NONE:
        session.execute(delete(Feedback).where(mine))
        return Vote.NONE
    chunk = session.get(Chunk, int(chunk_id))
    if chunk is None:
        raise ValueError(f"no chunk {chunk_id}")
    stmt = pg_insert(Feedback).values(query=q, chunk_id=chunk.id, media_item_id=chunk.media_item_id,
                                      start_s=chunk.start_s, vote=int(vote), session_key=key)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[Feedback.session_key, Feedback.query, Feedback.chunk_id],
        index_where=Feedback.session_key.isnot(None),
        set_={"vote": int(vote), "at": func.now()},
    ))
    return Vote(int(vote))


@dataclass
class TabVotes:
    """The votes one browser tab made, as it made them, laid over the stored ones it reads back.

    The page reads votes from a search replica (core/search_db.py), which may not have replayed
    the tab's latest vote yet, or not at all while the primary is away and the write waits in
    the queue. What this tab pressed last is what its thumbs show, and what the next press
    toggles from."""

    made: dict[tuple[str, int], Vote] = field(default_factory=dict)

    def shown(self, query: str, stored: dict[int, Vote]) -> dict[int, Vote]:
        q = normalise_query(query)
        mine = {cid: v for (mq, cid), v in self.made.items() if mq == q}
        return {cid: v for cid, v in {**stored, **mine}.items() if v is not Vote.NONE}

    def press(self, query: str, chunk_id: int, pressed: Vote, stored: dict[int, Vote]) -> Vote:
        """The vote after pressing a thumb (see `toggled`), remembered for this tab."""
        vote = toggled(self.shown(query, stored).get(int(chunk_id), Vote.NONE), pressed)
        self.made[(normalise_query(query), int(chunk_id))] = vote
        return vote


def session_votes(session: Session, session_key: str | None, query: str) -> dict[int, Vote]:
    """This browser session's votes for `query`, by moment (chunk id): what its thumbs show."""
    if not session_key:
        return {}
    rows = session.execute(
        select(Feedback.chunk_id, Feedback.vote).where(
            Feedback.session_key == str(session_key)[:64], Feedback.query == normalise_query(query))
    ).all()
    return {int(c): Vote(int(v)) for c, v in rows if c is not None}


def feedback_summary(session: Session, *, limit: int = 200) -> list[FeedbackRow]:
    """Votes per (query, moment), most voted first: for the admin console."""
    rows = session.execute(
        text(
            """
            SELECT f.query, f.media_item_id, m.title, f.start_s,
                   count(*) FILTER (WHERE f.vote > 0), count(*) FILTER (WHERE f.vote < 0)
            FROM feedback f LEFT JOIN media_items m ON m.id = f.media_item_id
            GROUP BY f.query, f.media_item_id, m.title, f.start_s
            ORDER BY count(*) DESC, max(f.at) DESC
            LIMIT :lim
            """
        ),
        {"lim": limit},
    ).all()
    return [FeedbackRow(q, mid, t, s, int(u), int(d)) for q, mid, t, s, u, d in rows]


def judgments(session: Session) -> list[Judgment]:
    """Net verdict per (query, moment): relevant when up-votes outnumber down-votes."""
    rows = session.execute(
        text(
            """
            SELECT f.query, m.external_id, c.start_s, c.end_s, sum(f.vote)
            FROM feedback f
            JOIN media_items m ON m.id = f.media_item_id
            JOIN chunks c ON c.id = f.chunk_id
            GROUP BY f.query, m.external_id, c.start_s, c.end_s
            HAVING sum(f.vote) <> 0
            """
        )
    ).all()
    return [Judgment(q, ext, float(s), float(e), int(v) > 0) for q, ext, s, e, v in rows]
