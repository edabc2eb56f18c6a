"""Speakers in PostgreSQL: voice profiles, segment speakers, each item's pass record, renames.

- `speaker_profiles`: enrolled voices (name, unit vector, which encoder made it).
- `transcript_segments.speaker` / `speaker_by`: a diarization pass writes only segments whose
  speaker is not the transcript's own (speaker_by NULL with a speaker = Zoom VTT or an inline
  label: never touched); `chunks.speakers` is recomputed from the segments, so the search
  filter, the moments and the cited answers read the voice's names like Zoom's.
- `media_items.extra["speakers"]`: the last pass over the item (when, how many speakers, which
  index it saw: a re-transcription replaces the segments and makes the item pending again).
- `media_items.extra["speaker_renames"]`: the admin's renames of that item ("Guest 1" →
  "Richard Smith"), applied again after every later pass.
- app_settings `speakers`: {"captioned_audio": bool}: the admin allows fetching the audio of
  captioned videos for diarization only.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from core import settings_store
from core.models import MediaItem, SpeakerProfile, TranscriptSegment
from core.speakers.naming import NamedProfile, SegmentSpan
from core.speakers.voice import ENCODER

PASS_KEY = "speakers"
RENAMES_KEY = "speaker_renames"
SETTINGS_KEY = "speakers"  # app_settings
VOICE, ADMIN = "voice", "admin"  # transcript_segments.speaker_by
MAX_NAME = 80


class ProfileRow(NamedTuple):
    id: int
    name: str
    seconds: float
    origin: str | None
    created_at: datetime


def clean_name(name: str) -> str:
    """A speaker name as stored, or ValueError saying what is wrong with it.

    Commas are refused: `chunks.speakers` lists names separated by commas.
    """
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ValueError("Give the speaker a name.")
    if "," in cleaned:
        raise ValueError("A speaker name cannot contain a comma.")
    if len(cleaned) > MAX_NAME:
        raise ValueError(f"A speaker name has at most {MAX_NAME} characters.")
    return cleaned


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------


def profiles(session: Session) -> list[NamedProfile]:
    """Enrolled voices this encoder can compare with."""
    rows = session.execute(
        select(SpeakerProfile.name, SpeakerProfile.embedding).where(SpeakerProfile.encoder == ENCODER)
        .order_by(SpeakerProfile.id)
    ).all()
    return [NamedProfile(name, np.asarray(vec, dtype=np.float32)) for name, vec in rows]


def profile_rows(session: Session) -> list[ProfileRow]:
    rows = session.execute(
        select(SpeakerProfile.id, SpeakerProfile.name, SpeakerProfile.seconds, SpeakerProfile.origin,
               SpeakerProfile.created_at).order_by(SpeakerProfile.name)
    ).all()
    return [ProfileRow(*r) for r in rows]


def save_profile(session: Session, name: str, vector: np.ndarray, seconds: float, origin: str) -> SpeakerProfile:
    """Store a voice under a name; enrolling a name again replaces its voice."""
    name = clean_name(name)
    row = session.scalars(select(SpeakerProfile).where(SpeakerProfile.name == name)).first()
    if row is None:
        row = SpeakerProfile(name=name)
        session.add(row)
    row.embedding = np.asarray(vector, dtype=np.float32)
    row.encoder = ENCODER
    row.seconds = float(seconds)
    row.origin = origin
    session.flush()
    return row


def delete_profile(session: Session, profile_id: int) -> str | None:
    row = session.get(SpeakerProfile, int(profile_id))
    if row is None:
        return None
    name = row.name
    session.execute(delete(SpeakerProfile).where(SpeakerProfile.id == row.id))
    return name


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def captioned_audio_allowed(session: Session) -> bool:
    value = settings_store.read_json(session, SETTINGS_KEY, {}) or {}
    return bool(value.get("captioned_audio", False))


def set_captioned_audio(session: Session, allowed: bool) -> None:
    value = dict(settings_store.read_json(session, SETTINGS_KEY, {}, lock=True) or {})
    value["captioned_audio"] = bool(allowed)
    settings_store.write_json(session, SETTINGS_KEY, value)


# ---------------------------------------------------------------------------------------------
# Segments and chunks of one item
# ---------------------------------------------------------------------------------------------


def segment_spans(session: Session, item_id: int, *, lock: bool = False) -> list[SegmentSpan]:
    """The item's segments in order (`lock`: held until commit, so an import cannot interleave)."""
    rows = session.execute(
        text("SELECT start_s, end_s, speaker, speaker_by, text FROM transcript_segments "
             "WHERE media_item_id = :i ORDER BY idx" + (" FOR UPDATE" if lock else "")), {"i": int(item_id)}
    ).all()
    return [SegmentSpan(r.start_s, r.end_s, r.speaker, r.speaker_by, r.text) for r in rows]


def replace_segments(session: Session, item_id: int, segments: Sequence[SegmentSpan], speakers: Sequence[str | None]) -> int:
    """Write the item's segments again, each with its speaker (a voice-split segment is two rows).

    A transcript-named segment keeps its name and its NULL `speaker_by`; every other one is
    the voice's. Returns how many segments the voice named.
    """
    engine = session.scalar(text("SELECT engine FROM transcript_segments WHERE media_item_id = :i LIMIT 1"),
                            {"i": int(item_id)})
    session.execute(delete(TranscriptSegment).where(TranscriptSegment.media_item_id == int(item_id)))
    rows = []
    for idx, (seg, who) in enumerate(zip(segments, speakers)):
        by = None if seg.transcript_named else (VOICE if who else None)
        rows.append({"media_item_id": int(item_id), "idx": idx, "start_s": float(seg.start), "end_s": float(seg.end),
                     "text": seg.text, "speaker": who, "speaker_by": by, "engine": engine or "unknown"})
    if rows:
        session.execute(insert(TranscriptSegment), rows)
    return sum(1 for r in rows if r["speaker_by"] == VOICE)


def renames(item: MediaItem) -> dict[str, str]:
    return dict((item.extra or {}).get(RENAMES_KEY) or {})


def refresh_chunk_speakers(session: Session, item_id: int) -> None:
    """chunks.speakers = the names of the segments inside each chunk, in speaking order."""
    session.execute(
        text(
            """
            UPDATE chunks c SET speakers = sub.names
            FROM (
                SELECT c2.id, string_agg(x.speaker, ', ' ORDER BY x.first) AS names
                FROM chunks c2
                LEFT JOIN LATERAL (
                    SELECT s.speaker, min(s.start_s) AS first FROM transcript_segments s
                    WHERE s.media_item_id = c2.media_item_id AND coalesce(s.speaker, '') <> ''
                      AND s.start_s >= c2.start_s - 0.001 AND s.end_s <= c2.end_s + 0.001
                    GROUP BY s.speaker
                ) x ON true
                WHERE c2.media_item_id = :i
                GROUP BY c2.id
            ) sub
            WHERE c.id = sub.id AND c.speakers IS DISTINCT FROM sub.names
            """
        ),
        {"i": int(item_id)},
    )


def rename(session: Session, item: MediaItem, old: str, new: str) -> int:
    """Rename one speaker of one item (every segment of theirs); kept for later passes."""
    new = clean_name(new)
    old = (old or "").strip()
    n = session.execute(
        text("UPDATE transcript_segments SET speaker = :new, speaker_by = :by "
             "WHERE media_item_id = :i AND speaker = :old"),
        {"i": item.id, "old": old, "new": new, "by": ADMIN},
    ).rowcount  # type: ignore[attr-defined]  # a CursorResult at runtime
    if not n:
        raise LookupError(f"No segment of item {item.id} is spoken by \u201c{old}\u201d.")
    extra = dict(item.extra or {})
    mapping = {k: v for k, v in (extra.get(RENAMES_KEY) or {}).items()}
    # A rename of a renamed speaker follows the chain back to the pass's own label.
    original = next((k for k, v in mapping.items() if v == old), old)
    mapping[original] = new
    extra[RENAMES_KEY] = mapping
    item.extra = extra
    refresh_chunk_speakers(session, item.id)  # chunks already follow the turns: only their names change
    return int(n)


def item_speakers(session: Session, item_id: int) -> list[tuple[str, int, float]]:
    """(name, segments, seconds spoken) of one item, most spoken first."""
    rows = session.execute(
        text("SELECT speaker, count(*) AS n, sum(end_s - start_s) AS secs FROM transcript_segments "
             "WHERE media_item_id = :i AND coalesce(speaker, '') <> '' GROUP BY speaker ORDER BY secs DESC"),
        {"i": int(item_id)},
    ).all()
    return [(r.speaker, int(r.n), float(r.secs or 0)) for r in rows]


# ---------------------------------------------------------------------------------------------
# The pass record
# ---------------------------------------------------------------------------------------------


def record_pass(session: Session, item: MediaItem, **facts: Any) -> None:
    extra = dict(item.extra or {})
    indexed = session.scalar(text("SELECT extract(epoch FROM indexed_at)::text FROM media_items WHERE id = :i"),
                             {"i": item.id})
    extra[PASS_KEY] = {"indexed": indexed, "at": datetime.now(timezone.utc).isoformat(), "encoder": ENCODER, **facts}
    item.extra = extra


# Items whose index the last pass did not see (never diarized, or re-transcribed since).
PENDING_SQL = """
    SELECT m.id FROM media_items m JOIN sources src ON src.id = m.source_id
    WHERE m.status IN ('indexed', 'review') AND m.indexed_at IS NOT NULL
      AND (m.extra -> 'speakers' ->> 'indexed') IS DISTINCT FROM extract(epoch FROM m.indexed_at)::text
      AND EXISTS (SELECT 1 FROM transcript_segments s
                  WHERE s.media_item_id = m.id AND (s.speaker IS NULL OR s.speaker_by IS NOT NULL))
      AND (m.media_path IS NOT NULL
           OR (src.kind = 'youtube' AND (:captioned OR coalesce(m.engine, '') NOT IN ('captions', 'imported'))))
    ORDER BY m.pinned DESC, m.indexed_at DESC
    LIMIT :lim
"""


def pending_ids(session: Session, *, limit: int = 100, captioned: bool | None = None) -> list[int]:
    """Items a pass should run over, newest index first. Captioned YouTube videos (no audio was
    ever fetched for them) count only when the admin allows fetching their audio."""
    allowed = captioned_audio_allowed(session) if captioned is None else captioned
    return list(session.scalars(text(PENDING_SQL), {"captioned": bool(allowed), "lim": int(limit)}))
