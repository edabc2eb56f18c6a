"""The diarization stage: speaker turns for items already indexed. Free, time-budgeted, resumable.

It runs after transcription, over items whose current index has not had a pass (new items,
items indexed before the extra was installed, items re-transcribed since): the scheduler's
`speaker_turns` job a few minutes at a time, or `python -m core diarize` now. It never spends
money (no ledger row: the encoder runs on this machine) and never re-transcribes: it only
writes the speakers of the existing timed segments.

Audio: an upload's or Zoom recording's own file; for a YouTube video transcribed here, the audio
the pipeline kept for this pass (`keep_audio`, deleted once listened to; fetched again when it
was not kept); fetched files are deleted after the pass. Captioned videos
never had their audio fetched: they are included only when the admin allows it (Admin →
Settings → Speakers).

Time budget and resume: embedding is the slow part; when the budget runs out mid-item, the
voice vectors computed so far are saved beside the item's media
(`<media_dir>/<id>/speaker-windows.npz`) and the next pass continues from there.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.config import get_settings
from core.db import session_scope
from core.models import MediaItem
from core.search import cache
from core.sources.registry import source_for
from core.speakers import ExtraMissing, available, naming, store, turns, voice
from core.speakers.rechunk import rechunk

log = logging.getLogger(__name__)
CHECKPOINT = "speaker-windows.npz"
KEPT_AUDIO = "speaker-audio"  # <media_dir>/<id>/speaker-audio.<ext>: a transcribed video's audio, kept for one pass
MAX_KEPT = 20  # past this many waiting files the pipeline deletes as before, and the pass fetches again
TICK_BUDGET_S = 240.0  # the scheduler's pass: a few minutes every SCHEDULE_S
SCHEDULE_S = 300.0


class ItemPass(NamedTuple):
    item_id: int
    speakers: list[str]  # names, in order of first appearance
    segments_named: int
    audio_s: float
    seconds: float  # wall time of the pass

    def line(self) -> str:
        return (f"item {self.item_id}: {len(self.speakers)} speaker(s) ({', '.join(self.speakers) or 'no speech'}), "
                f"{self.segments_named} segment(s) named, {self.audio_s / 60:.1f} min of audio in {self.seconds:.0f} s")


class PassReport(NamedTuple):
    done: list[ItemPass]
    left: int  # items still pending after this pass (resumed next time)
    failed: list[tuple[int, str]]
    out_of_time: bool

    def line(self) -> str:
        parts = [f"speaker turns: {len(self.done)} item(s) done"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        parts.append(f"{self.left} left" + (" (time budget reached; the next pass resumes)" if self.out_of_time else ""))
        return ", ".join(parts)


class NoAudio(Exception):
    """The item has no audio this pass may use; the message says why."""


def _checkpoint(item_id: int) -> Path:
    return get_settings().media_dir / str(item_id) / CHECKPOINT


def _kept(item_id: int) -> Path | None:
    return next(iter(sorted((get_settings().media_dir / str(item_id)).glob(KEPT_AUDIO + ".*"))), None)


def keep_audio(item_id: int, audio: Path) -> bool:
    """Called by the pipeline instead of deleting a transcribed YouTube video's audio: keep it for
    this item's speaker pass (which deletes it), so the audio is not fetched twice. False (the
    caller deletes the file) without the extra, or when MAX_KEPT files already wait."""
    if not available() or not audio.exists():
        return False
    waiting = list(get_settings().media_dir.glob(f"*/{KEPT_AUDIO}.*"))
    if len(waiting) >= MAX_KEPT:
        return False
    dest = get_settings().media_dir / str(item_id) / f"{KEPT_AUDIO}{audio.suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(audio), dest)
    return True


def _audio_for(item: MediaItem, workdir: Path, *, captioned_ok: bool) -> Path:
    if item.media_path and Path(item.media_path).exists():
        return Path(item.media_path)
    if (kept := _kept(item.id)) is not None:
        return kept
    if item.source.kind != "youtube":
        raise NoAudio(f"item {item.id} has no media file to listen to")
    if (item.engine or "") in ("captions", "imported") and not captioned_ok:
        raise NoAudio(f"item {item.id} is captioned: fetching its audio for speaker turns is not allowed "
                      "(Admin → Settings → Speakers)")
    return source_for(item.source).fetch_audio(item.external_id, workdir)


def _embed(item_id: int, wav: np.ndarray, deadline: float | None) -> voice.Windows:
    """Voice windows of the recording, continuing a saved partial run of the same encoder."""
    path = _checkpoint(item_id)
    done = None
    if path.exists():
        saved = np.load(path)
        if str(saved["encoder"]) == voice.ENCODER and float(saved["hop"]) == voice.HOP_S:
            done = saved["vectors"]
    try:
        windows = voice.embed_windows(wav, deadline=deadline, done=done)
    except voice.OutOfTime as exc:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, vectors=exc.vectors, encoder=voice.ENCODER, hop=voice.HOP_S)
        raise
    path.unlink(missing_ok=True)
    return windows


def diarize_item(item_id: int, *, deadline: float | None = None, captioned_ok: bool | None = None) -> ItemPass:
    """One item's pass: listen, find the turns, name them, write the segments' speakers.

    Raises ExtraMissing without the extra, NoAudio, a SourceError when the audio fetch fails,
    LookupError for an unknown item, voice.OutOfTime past `deadline` (progress kept).
    """
    if not available():
        raise ExtraMissing()
    t0 = time.monotonic()
    with session_scope() as s:
        item = s.get(MediaItem, int(item_id))
        if item is None:
            raise LookupError(f"no media item {item_id}")
        allowed = store.captioned_audio_allowed(s) if captioned_ok is None else captioned_ok
        profiles = store.profiles(s)
        s.expunge(item.source)
        s.expunge(item)
    workdir = Path(tempfile.mkdtemp(prefix=f"speakers-{item_id}-"))
    try:
        audio = _audio_for(item, workdir, captioned_ok=allowed)
        wav = voice.load_audio(audio)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # a fetched YouTube file is only a means
    windows = _embed(item.id, wav, deadline)  # past this point the audio is no longer needed
    if (kept := _kept(item.id)) is not None:
        kept.unlink(missing_ok=True)
    diarization = turns.diarize(windows)
    named = [n.name for n in naming.name_speakers(diarization, profiles)]
    with session_scope() as s:
        row = s.get_one(MediaItem, item.id)
        renamed = store.renames(row)
        names = [renamed.get(n, n) for n in named]
        spans = naming.split_at_turns(store.segment_spans(s, row.id, lock=True), diarization.turns)
        labels = naming.segment_speakers(spans, diarization.turns, names)
        segments_named = store.replace_segments(s, row.id, spans, labels)
        rechunk(s, row.id)  # no chunk joins two speakers (core/speakers/rechunk.py)
        said = list(dict.fromkeys(names[t.speaker] for t in diarization.turns))
        elapsed = time.monotonic() - t0
        store.record_pass(s, row, speakers=said, audio_s=round(windows.duration_s, 1), seconds=round(elapsed, 1),
                          segments=segments_named)
    cache.invalidate()
    return ItemPass(item.id, said, segments_named, windows.duration_s, elapsed)


def diarize_pending(
    *,
    item_ids: Sequence[int] | None = None,
    budget_s: float | None = None,
    max_items: int | None = None,
    progress: Callable[[ItemPass], None] | None = None,
) -> PassReport:
    """Passes over the given items (or every pending one) until the time budget is spent."""
    if not available():
        raise ExtraMissing()
    deadline = time.monotonic() + budget_s if budget_s else None
    with session_scope() as s:
        queue = list(item_ids) if item_ids else store.pending_ids(s, limit=max_items or 10_000)
    done: list[ItemPass] = []
    failed: list[tuple[int, str]] = []
    out_of_time = False
    for item_id in queue:
        if max_items is not None and len(done) >= max_items:
            break
        if deadline is not None and time.monotonic() >= deadline:
            out_of_time = True
            break
        try:
            result = diarize_item(item_id, deadline=deadline)
        except voice.OutOfTime as exc:
            log.info("speaker turns: item %s paused: %s", item_id, exc)
            out_of_time = True
            break
        except Exception as exc:  # one bad item must not stop the others; it says why
            log.warning("speaker turns: item %s failed: %s", item_id, exc)
            failed.append((item_id, str(exc)))
            if not getattr(exc, "retryable", False):  # a rate limit or a network error: try again next pass
                _record_failure(item_id, str(exc))
            continue
        done.append(result)
        if progress:
            progress(result)
    with session_scope() as s:
        left = len(store.pending_ids(s, limit=10_000)) if not item_ids else len(queue) - len(done) - len(failed)
    return PassReport(done, left, failed, out_of_time)


def _record_failure(item_id: int, why: str) -> None:
    """A failed item is recorded as passed with its reason (shown in the library), so the
    scheduler does not retry it every few minutes; `diarize ITEM` or a new index retries it."""
    with session_scope() as s:
        row = s.get(MediaItem, int(item_id))
        if row is not None:
            store.record_pass(s, row, error=why[:500])
