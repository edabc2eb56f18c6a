"""`ingest URL|FILE` and `sync-channel`: put content into the archive from the command line."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from tqdm import tqdm

from core import interrupts
from core.config import get_settings
from core.db import session_scope
from core.models import MediaItem
from core.sources.base import SourceError
from core.states import ItemStatus, Stage
from core.transcribe.base import TranscriptionError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="make a YouTube video, a local audio/video file or a transcript file searchable")
    p.add_argument("target", help="a YouTube video URL, an audio/video file, or a transcript (.srt, .vtt, .json3)")
    p.add_argument("--title", help="title (default: the file name, or the video's own title)")
    p.add_argument("--engine", choices=["captions", "local", "openai"], help="force one transcription engine")
    p.add_argument("--video", help="for a transcript: the YouTube video (URL or id) it belongs to "
                                   "(default: an id in the file name, e.g. RcBwvdVEAr8.srt)")
    p.add_argument("--date", type=_date, help="for a file or transcript: when it was recorded or published (YYYY-MM-DD)")
    p.add_argument("--force", action="store_true", help="transcribe or import again even if it is already indexed")
    p.set_defaults(func=cmd_ingest)

    s = sub.add_parser("sync-channel", help="list the configured channel and queue its new videos")
    s.add_argument("--url", help="channel or playlist URL (default: the configured channel)")
    s.add_argument("--limit", type=int, help="only the first N videos of the listing")
    s.set_defaults(func=cmd_sync_channel)


def _date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (expected YYYY-MM-DD)") from None


def _interrupt_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP stop `ingest` at once: the job is released, no attempt counted.

    Raising from the handler interrupts the main thread (where the transcription runs)
    between two Python steps: within about a second, even inside a long transcription. Where
    that raise is lost (interrupts.received()), the worker and the progress bar raise it again.
    """
    def handler(signum, _frame) -> None:
        interrupts.interrupt(f"signal {signal.Signals(signum).name}")  # now, or once native code has loaded

    # Raised inside a garbage-collector callback (a weakref's, a __del__), the exception is only
    # printed, as "Exception ignored in … Traceback …", and dropped: the worker and the progress
    # bar raise it again at their next step, so the traceback is noise.
    dropped = sys.unraisablehook

    def unraisable(info) -> None:
        if not isinstance(info.exc_value, interrupts.Interrupted):
            dropped(info)

    sys.unraisablehook = unraisable

    # SIGINT too, with the same handler: a library loaded later may install its own Ctrl-C
    # handling, and one rule for the three signals is easier to trust.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _looks_like_url(target: str) -> bool:
    parsed = urlparse(target)
    return parsed.scheme in ("http", "https") or target.startswith(("www.", "youtube.com", "youtu.be"))


class _Bar:
    """A tqdm bar fed by an engine's progress callback (seconds of audio done / total). Once
    the person has stopped the ingest, its next update raises that interrupt (the signal
    handler's own raise can be lost: core/interrupts.py)."""

    def __init__(self, desc: str):
        self.bar = tqdm(total=None, unit="s", desc=desc, bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s audio [{elapsed}<{remaining}]")

    def __call__(self, done: float, total: float | None) -> None:
        if why := interrupts.received():
            raise interrupts.Interrupted(why)
        if total and self.bar.total != round(total):
            self.bar.total = round(total)
        self.bar.n = min(done, self.bar.total or done)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _stage_lines(name: str) -> Callable[[Stage], None]:
    """A heartbeat that says on stderr which stage began, and when: embedding an hour-long
    transcript's passages and sentences takes a minute on two cores, and silence reads as a hang."""
    started = time.monotonic()

    def beat(stage: Stage) -> None:
        print(f"{name}: {stage.value}… ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    return beat


class Target(NamedTuple):
    item_id: int | None  # None: nothing registered (already indexed)
    engines: list[str] | None  # engines that may run (None: the settings' order)
    already: tuple[int, str, str | None] | None = None  # (item id, title, engine) when already indexed


def _register_target(target: str, title: str | None, *, published_at: datetime | None, force: bool) -> Target:
    """Register the item (nothing is written for bad input) and say which engines may run."""
    from core.catalog import get_or_create_source, register_item
    from core.pipeline import indexed_item

    settings = get_settings()
    if _looks_like_url(target):
        from core.sources.youtube import YouTubeSource, parse_video_url

        video_id = parse_video_url(target)
        with session_scope() as session:
            done = indexed_item(session, "youtube", video_id)
            if done is not None and not force:  # no network call, no second bill
                return Target(None, None, (done.id, done.title, done.engine))
        source = YouTubeSource(settings)
        info = source.fetch_metadata(video_id)
        with session_scope() as session:
            src = get_or_create_source(session, "youtube", "YouTube", settings.channel_url)
            return Target(register_item(session, src, info).id, None)

    from core.sources.files import check_media_file, describe_file, file_sha256, store_copy
    from core.transcribe.audio import probe_duration

    path = check_media_file(Path(target))
    sha = file_sha256(path)
    with session_scope() as session:
        done = indexed_item(session, "upload", sha)  # same content, whatever the file is called
        if done is not None and not force:
            return Target(None, None, (done.id, done.title, done.engine))
    duration = probe_duration(path)  # a corrupt file stops here, before anything is stored
    stored = store_copy(path, settings.media_dir, sha)
    info = describe_file(path, sha, title=title, duration_s=duration)
    if published_at is not None:
        info = info._replace(published_at=published_at)
    with session_scope() as session:
        src = get_or_create_source(session, "upload", "Uploads", None)
        item = register_item(session, src, info, media_path=stored)
        # A bare file has no captions: only audio engines apply.
        return Target(item.id, [e for e in settings.transcription_engines if e != "captions"] or ["local"])


def _no_engine_message(engines: list[str]) -> str:
    from core.transcribe.registry import unavailable_reason

    reasons = "; ".join(f"{e}: {unavailable_reason(e)}" for e in engines)
    return f"no transcription engine can run here ({reasons})"


def _print_already(already: tuple[int, str, str | None]) -> int:
    item_id, title, engine = already
    print(f"item {item_id}: already indexed — {title!r} (transcript by {engine or 'unknown'}); "
          "nothing to do. Use --force to do it again.")
    return 0


def _import(args: argparse.Namespace) -> int:
    from core.transcribe.captions import TranscriptFileError
    from core.transcript_import import import_transcript

    if args.engine:
        print("error: --engine does not apply to a transcript file (it is imported as it is)", file=sys.stderr)
        return 2
    try:
        done = import_transcript(Path(args.target).expanduser(), video=args.video, title=args.title,
                                 published_at=args.date, force=args.force,
                                 heartbeat=_stage_lines(Path(args.target).name))
    except (TranscriptFileError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TranscriptionError as exc:
        print(f"error: {Path(args.target).name}: {exc}", file=sys.stderr)
        return 2
    linked = f", linked to YouTube video {done.video_id}" if done.video_id else ""
    if done.already:
        print(f"item {done.item_id}: already indexed — {done.title!r}{linked}; nothing to do. "
              "Use --force to import it again.")
        return 0
    if done.status == ItemStatus.REVIEW:
        print(f"item {done.item_id}: imported but held for review — {done.detail}")
        return 0
    print(f"item {done.item_id}: indexed — {done.chunk_count} chunks, transcript imported{linked}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Register the item, then run it now through a worker: the same queue, router, budget
    and ledger as the backfill, so a paid engine used from here is reserved and booked too."""
    from functools import partial

    from core.backfill.worker import Worker
    from core.pipeline import process_item
    from core.sources.files import is_transcript_file
    from core.transcribe.registry import available_engines, unavailable_reason

    if not _looks_like_url(args.target) and is_transcript_file(Path(args.target)):
        return _import(args)
    if args.video:
        print("error: --video applies to a transcript file (.srt, .vtt, .json3) only", file=sys.stderr)
        return 2
    if args.engine and (why := unavailable_reason(args.engine)):
        print(f"error: the {args.engine} engine is not available here: {why}", file=sys.stderr)
        return 2
    try:
        target = _register_target(args.target, args.title, published_at=args.date, force=args.force)
    except (SourceError, TranscriptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if target.already:
        return _print_already(target.already)
    item_id, engines = target.item_id, target.engines
    if item_id is None:  # _register_target leaves it unset only when the item was already indexed
        raise RuntimeError("nothing was registered to transcribe")
    if args.engine:
        engines = [args.engine]
    elif engines is not None:
        usable = available_engines(engines)
        if not usable:
            print(f"error: {_no_engine_message(engines)}", file=sys.stderr)
            return 2
        engines = usable
    _interrupt_on_signals()
    bar = _Bar("transcribing")
    worker = None
    try:
        worker = Worker(engines=engines, slots=1, processor=partial(process_item, progress=bar))
        worker.start()
        _job_id, outcome = worker.run_item(item_id, engine=args.engine)
    except KeyboardInterrupt as exc:
        bar.close()
        why = str(exc) or "Ctrl-C"
        print(f"interrupted ({why}): item {item_id} released — not counted as an attempt; "
              "run the same command to continue", file=sys.stderr)
        return 130
    finally:
        bar.close()
        if worker is not None:
            worker.close()
    with session_scope() as session:
        item = session.get_one(MediaItem, item_id)  # registered above: a missing row is a real error
        status, detail, chunks, reason = item.status, item.status_detail, item.chunk_count, item.route_reason
    if status == ItemStatus.INDEXED:
        print(f"item {item_id}: indexed — {chunks} chunks, transcript by {reason}")
        return 0
    if status == ItemStatus.REVIEW:
        print(f"item {item_id}: indexed but held for review — {detail}")
        return 0
    print(f"error: item {item_id} not indexed ({outcome}): {detail or 'see the admin Backfill page'}", file=sys.stderr)
    return 1


def cmd_sync_channel(args: argparse.Namespace) -> int:
    from core.backfill.progress import start_run
    from core.backfill.sync import sync_channel

    report = sync_channel(url=args.url, limit=args.limit)
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
        return 1
    with session_scope() as session:
        start_run(session, label=f"channel backfill ({report.listed} videos)")  # progress counts from here
    print(
        f"{report.listed} videos listed, {report.new} new, {report.queued} queued for the backfill; "
        f"{report.dated_by_feed} dated from the channel feed, {report.dates_unknown} dates unknown "
        "(estimated from the listing order). The scheduler processes them within budget."
    )
    return 0
