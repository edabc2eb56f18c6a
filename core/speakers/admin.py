"""The admin's speaker actions, each with its audit row in the same transaction.

Same contract as core.admin_actions: take the caller's session and the actor, raise
AdminActionError with a sentence when refused; the caller commits.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from core import audit
from core.admin_actions import AdminActionError
from core.models import MediaItem
from core.search import cache
from core.sources.base import SourceError
from core.sources.registry import source_for
from core.speakers import ExtraMissing, available, store

MAX_SPAN_S = 600.0  # an enrolment sample longer than 10 minutes is surely not one voice


def _need_extra() -> None:
    if not available():
        raise AdminActionError(str(ExtraMissing()))


def _fmt(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _profile_of(path: Path, start_s: float = 0.0, end_s: float | None = None):
    from core.speakers import voice

    try:
        wav = voice.load_audio(path)
    except Exception as exc:  # PyAV's errors name the codec, not the problem
        raise AdminActionError(f"That file could not be read as audio ({type(exc).__name__}).") from exc
    if end_s is not None and start_s >= len(wav) / voice.SAMPLE_RATE:
        raise AdminActionError(f"The recording is only {_fmt(len(wav) / voice.SAMPLE_RATE)} long.")
    try:
        return voice.profile(wav, start_s, end_s)
    except voice.TooLittleSpeech as exc:
        raise AdminActionError(str(exc).capitalize() + ".") from exc


def enrol_from_item(session: Session, actor: str, item_id: int, start_s: float, end_s: float, name: str) -> str:
    """A voice profile from a span of an item where only that person speaks."""
    _need_extra()
    name = _name(name)
    if not 0 <= start_s < end_s:
        raise AdminActionError("The span must start before it ends.")
    if end_s - start_s > MAX_SPAN_S:
        raise AdminActionError("Pick at most 10 minutes where only that person speaks.")
    item = session.get(MediaItem, int(item_id))
    if item is None:
        raise AdminActionError(f"There is no item {item_id}.")
    workdir = Path(tempfile.mkdtemp(prefix="enrol-"))
    try:
        if item.media_path and Path(item.media_path).exists():
            path = Path(item.media_path)
        elif item.source.kind == "youtube":
            try:
                path = source_for(item.source).fetch_audio(item.external_id, workdir)
            except SourceError as exc:
                raise AdminActionError(f"The video's audio could not be fetched: {exc}") from exc
        else:
            raise AdminActionError(f"Item {item.id} has no audio file to take a voice from.")
        prof = _profile_of(path, start_s, end_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    origin = f"item {item.id} ({item.title[:60]}), {_fmt(start_s)}–{_fmt(end_s)}"
    return _save(session, actor, name, prof, origin)


def enrol_from_clip(session: Session, actor: str, clip: Path, name: str, *, label: str | None = None) -> str:
    """A voice profile from an uploaded clip of that person alone."""
    _need_extra()
    name = _name(name)
    prof = _profile_of(Path(clip))
    return _save(session, actor, name, prof, f"clip {label or Path(clip).name}")


def _name(name: str) -> str:
    try:
        return store.clean_name(name)
    except ValueError as exc:
        raise AdminActionError(str(exc)) from exc


def _save(session: Session, actor: str, name: str, prof, origin: str) -> str:
    before = next(({"seconds": r.seconds, "origin": r.origin} for r in store.profile_rows(session) if r.name == name),
                  None)
    store.save_profile(session, name, prof.vector, prof.seconds, origin)
    audit.record(session, actor, "speaker.enrol", f"voice {name}", before, {"seconds": prof.seconds, "origin": origin})
    return name


def delete_profile(session: Session, actor: str, profile_id: int) -> None:
    name = store.delete_profile(session, profile_id)
    if name is None:
        raise AdminActionError("That voice profile no longer exists.")
    audit.record(session, actor, "speaker.delete", f"voice {name}", {"name": name}, None)


def rename_speaker(session: Session, actor: str, item_id: int, old: str, new: str) -> int:
    """Rename one speaker of one item (e.g. "Guest 1" → "Richard Smith"); later passes keep it."""
    item = session.get(MediaItem, int(item_id))
    if item is None:
        raise AdminActionError(f"There is no item {item_id}.")
    try:
        n = store.rename(session, item, old, new)
    except (ValueError, LookupError) as exc:
        raise AdminActionError(str(exc)) from exc
    audit.record(session, actor, "speaker.rename", f"item {item.id}: {item.title[:80]}", {"speaker": old},
                 {"speaker": store.clean_name(new), "segments": n})
    cache.invalidate(session)
    return n


def set_captioned_audio(session: Session, actor: str, allowed: bool) -> None:
    before = store.captioned_audio_allowed(session)
    store.set_captioned_audio(session, allowed)
    audit.record(session, actor, "speaker.captioned_audio", "speakers", {"allowed": before}, {"allowed": bool(allowed)})
