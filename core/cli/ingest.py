"""`ingest URL|FILE` and `sync-channel`: put content into the archive from the command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

from core.config import get_settings
from core.db import session_scope
from core.models import MediaItem
from core.sources.base import SourceError
from core.transcribe.base import TranscriptionError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="make one YouTube video or local audio/video file searchable")
    p.add_argument("target", help="a YouTube video URL, or the path of an audio/video file")
    p.add_argument("--title", help="title for a local file (default: the file name)")
    p.add_argument("--engine", choices=["captions", "local", "openai"], help="force one transcription engine")
    p.set_defaults(func=cmd_ingest)

    s = sub.add_parser("sync-channel", help="list the configured channel and queue its new videos")
    s.add_argument("--url", help="channel or playlist URL (default: the configured channel)")
    s.add_argument("--limit", type=int, help="only the first N videos of the listing")
    s.set_defaults(func=cmd_sync_channel)


def _looks_like_url(target: str) -> bool:
    parsed = urlparse(target)
    return parsed.scheme in ("http", "https") or target.startswith(("www.", "youtube.com", "youtu.be"))


class _Bar:
    """A tqdm bar fed by an engine's progress callback (seconds of audio done / total)."""

    def __init__(self, desc: str):
        self.bar = tqdm(total=None, unit="s", desc=desc, bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s audio [{elapsed}<{remaining}]")

    def __call__(self, done: float, total: float | None) -> None:
        if total and self.bar.total != round(total):
            self.bar.total = round(total)
        self.bar.n = min(done, self.bar.total or done)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _register_target(target: str, title: str | None) -> tuple[int, list[str] | None]:
    """Register the item (nothing is written for bad input) and say which engines may run."""
    from core.pipeline import get_or_create_source, register_item

    settings = get_settings()
    if _looks_like_url(target):
        from core.sources.youtube import YouTubeSource, parse_video_url

        video_id = parse_video_url(target)
        source = YouTubeSource(settings)
        info = source.fetch_metadata(video_id)
        with session_scope() as session:
            src = get_or_create_source(session, "youtube", "YouTube", settings.channel_url)
            return register_item(session, src, info).id, None

    from core.sources.files import check_media_file, describe_file, file_sha256, store_copy
    from core.transcribe.audio import probe_duration

    path = check_media_file(Path(target))
    duration = probe_duration(path)  # a corrupt file stops here, before anything is stored
    sha = file_sha256(path)
    stored = store_copy(path, settings.media_dir, sha)
    with session_scope() as session:
        src = get_or_create_source(session, "upload", "Uploads", None)
        item = register_item(session, src, describe_file(path, sha, title=title, duration_s=duration), media_path=stored)
        # A bare file has no captions: only audio engines apply.
        return item.id, [e for e in settings.transcription_engines if e != "captions"] or ["local"]


def cmd_ingest(args: argparse.Namespace) -> int:
    """Register the item, then run it now through a worker: the same queue, router, budget
    and ledger as the backfill, so a paid engine used from here is reserved and booked too."""
    from functools import partial

    from core.pipeline import process_item
    from core.worker import Worker

    try:
        item_id, engines = _register_target(args.target, args.title)
    except (SourceError, TranscriptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.engine:
        engines = [args.engine]
    bar = _Bar("transcribing")
    try:
        worker = Worker(engines=engines, slots=1, processor=partial(process_item, progress=bar))
        worker.start()
        try:
            _job_id, outcome = worker.run_item(item_id, engine=args.engine)
        finally:
            worker.close()
    finally:
        bar.close()
    with session_scope() as session:
        item = session.get(MediaItem, item_id)
        status, detail, chunks, reason = item.status, item.status_detail, item.chunk_count, item.route_reason
    if status == "indexed":
        print(f"item {item_id}: indexed — {chunks} chunks, transcript by {reason}")
        return 0
    if status == "review":
        print(f"item {item_id}: indexed but held for review — {detail}")
        return 0
    print(f"error: item {item_id} not indexed ({outcome}): {detail or 'see the admin Backfill page'}", file=sys.stderr)
    return 1


def cmd_sync_channel(args: argparse.Namespace) -> int:
    from core.progress import start_run
    from core.sync import sync_channel

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
