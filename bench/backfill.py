"""Backfill of the real channel: projected cost and finish date per routing policy, and measured
throughput of this machine, against the seed's estimate ($144 for 1,200 × 20 min).

    .venv/bin/python bench/backfill.py                    # projections + measurements (≈ 1–2 min)
    .venv/bin/python bench/backfill.py --no-measure       # the arithmetic only
    .venv/bin/python bench/backfill.py --captions-share 0.8 --gpu-rtf 60

Listing: ../shared/data/youtube/anthonychaffeemd_flat_playlist.jsonl (yt-dlp --flat-playlist:
durations and views, no dates, nothing about captions).

Measured here, in a throw-away embedded database:
  * the captions route end to end through the real worker (claim → route → reserve → pipeline
    → quality gates → chunk → embed with the configured local embedder → index → settle), on
    20-minute pieces of the two real talks in ../shared/data/transcripts;
  * local whisper (the app's LocalWhisperEngine, configured model, CPU) on the real speech clips
    in ../shared/data/audio: its real-time factor.
Assumed (flags): the share of videos with usable captions (a flat listing cannot say), the GPU
worker's real-time factor, and the paid API's speed. Money follows core.backfill.budget: its price table,
the default caps ($10/day, $200/month), calendar days and months.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CHAFFEE_SHARED_DATA", ROOT.parent / "shared" / "data"))
LISTING = SHARED / "youtube" / "anthonychaffeemd_flat_playlist.jsonl"
SEED_VIDEOS, SEED_MINUTES, SEED_USD = 1200, 20.0, 144.0

# Measurements run against a private embedded database: never the user's.
_TMP = Path(tempfile.mkdtemp(prefix="chaffee-bench-"))
os.environ["DATA_DIR"] = str(_TMP / "data")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("CHAFFEE_SECRETS_FILE", str(_TMP / "no-secrets.toml"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))

from core.backfill import budget  # noqa: E402
from core.config import get_settings  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The listing
# ---------------------------------------------------------------------------------------------


def load_minutes(path: Path) -> tuple[list[float], int]:
    """Minutes per video (unknown durations get the median), and how many were unknown."""
    from core.sources.youtube import parse_flat_entry

    items = [parse_flat_entry(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    items = [i for i in items if i is not None]
    known = [i.duration_s / 60 for i in items if i.duration_s]
    median = statistics.median(known)
    return [i.duration_s / 60 if i.duration_s else median for i in items], len(items) - len(known)


# ---------------------------------------------------------------------------------------------
# Money over calendar days
# ---------------------------------------------------------------------------------------------


def days_to_spend(total_usd: float, start: date, daily_cap: float, monthly_cap: float) -> int:
    """Calendar days until `total_usd` is spent at the caps (the backfill pauses at each)."""
    day, left, month_spent, month = start, total_usd, 0.0, (start.year, start.month)
    days = 0
    while left > 1e-9:
        if (day.year, day.month) != month:
            month, month_spent = (day.year, day.month), 0.0
        spend = min(daily_cap, monthly_cap - month_spent, left)
        left -= spend
        month_spent += spend
        days += 1
        day += timedelta(days=1)
        if days > 20_000:
            raise ValueError("the caps never let this finish")
    return days


class Policy(NamedTuple):
    name: str
    paid_minutes: float
    gpu_hours: float  # local transcription time on the GPU worker
    cpu_hours: float  # local transcription time on this machine's CPU
    note: str


def policies(minutes: list[float], *, captions_share: float, gpu_rtf: float, cpu_rtf: float | None) -> list[Policy]:
    total = sum(minutes)
    rest = total * (1 - captions_share)
    out = [
        Policy("API only", total, 0.0, 0.0, "every video through the paid API"),
        Policy("captions first", rest, 0.0, 0.0, f"captions for {captions_share:.0%}, the paid API for the rest"),
        Policy("captions + local GPU", 0.0, rest / 60 / gpu_rtf, 0.0,
               f"captions, then whisper on a GPU worker at {gpu_rtf:.0f}× real time"),
    ]
    if cpu_rtf:
        out.append(Policy("captions + local CPU", 0.0, 0.0, rest / 60 / cpu_rtf,
                          f"captions, then whisper on this machine at {cpu_rtf:.1f}× real time (measured)"))
    return out


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def _srt_pieces(piece_min: float) -> list[list]:
    from core.records import Segment
    from core.transcribe.captions import parse_caption_file

    pieces = []
    for path in sorted((SHARED / "transcripts").glob("*.srt")):
        segments = parse_caption_file(path)
        start = 0.0
        while start < segments[-1].end - 60:
            part = [Segment(s.start - start, s.end - start, s.text) for s in segments if start <= s.start < start + piece_min * 60]
            if part:
                pieces.append(part)
            start += piece_min * 60
    return pieces


def _vtt(segments) -> str:
    def stamp(t: float) -> str:
        return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"

    return "WEBVTT\n\n" + "\n\n".join(f"{stamp(s.start)} --> {stamp(s.end)}\n{s.text}" for s in segments) + "\n"


class Throughput(NamedTuple):
    items: int
    audio_hours: float
    wall_s: float
    model_load_s: float

    @property
    def items_per_hour(self) -> float:
        return self.items / self.wall_s * 3600

    @property
    def audio_hours_per_hour(self) -> float:
        return self.audio_hours / self.wall_s * 3600


def measure_captions_route(piece_min: float = 20.0) -> Throughput:
    """The real worker over real caption transcripts (Zoom-style uploaded VTT: no network)."""
    from core.backfill import queue
    from core.backfill.worker import Worker
    from core.catalog import get_or_create_source, register_item
    from core.db import get_engine, session_scope
    from core.embeddings import get_embedder
    from core.records import ItemInfo

    get_engine()
    started = time.perf_counter()
    get_embedder().embed_documents(["warm up"])  # model load is a one-off per worker: timed apart
    load_s = time.perf_counter() - started
    pieces = _srt_pieces(piece_min)
    dummy = _TMP / "recording.m4a"
    dummy.write_bytes(b"\0")  # the meeting's recording: never read when its transcript exists
    with session_scope() as s:
        src = get_or_create_source(s, "zoom", "Zoom", None)
        ids = []
        for i, segs in enumerate(pieces):
            vtt = _TMP / f"piece-{i}.vtt"
            vtt.write_text(_vtt(segs))
            item = register_item(s, src, ItemInfo(f"piece-{i}", f"Piece {i}", f"zoom://{i}", duration_s=segs[-1].end),
                                 media_path=dummy)
            item.extra = {"zoom": {"transcript_path": str(vtt)}}
            ids.append(item.id)
        s.flush()
        queue.enqueue_items(s, ids)
    worker = Worker(engines=[])  # captions need no transcription engine
    worker.start()
    t0 = time.perf_counter()
    done = 0
    try:
        while worker.run_one():
            done += 1
    finally:
        worker.close()
    wall = time.perf_counter() - t0
    with session_scope() as s:
        from sqlalchemy import func, select

        from core.models import MediaItem

        indexed = s.scalar(select(func.count()).select_from(MediaItem).where(MediaItem.status == "indexed"))
        if indexed != len(ids):
            print(f"  warning: {indexed} of {len(ids)} pieces indexed", file=sys.stderr)
    return Throughput(done, sum(p[-1].end for p in pieces) / 3600, wall, load_s)


def measure_local_whisper() -> tuple[float, str] | None:
    """Real-time factor of the configured local whisper on this machine's CPU (real speech clips)."""
    from core.transcribe.audio import probe_duration
    from core.transcribe.local import LocalWhisperEngine

    clips = sorted((SHARED / "audio" / "fleurs_en").glob("*.ogg")) + [SHARED / "audio" / "jfk.flac"]
    clips = [c for c in clips if c.exists()]
    if not clips:
        return None
    engine = LocalWhisperEngine.from_settings(get_settings())
    engine.transcribe(clips[0])  # loads the model
    audio = sum(probe_duration(c) for c in clips)
    t0 = time.perf_counter()
    for clip in clips:
        engine.transcribe(clip)
    return audio / (time.perf_counter() - t0), engine.model_name


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listing", type=Path, default=LISTING)
    parser.add_argument("--captions-share", type=float, default=0.9,
                        help="share of videos with usable captions (assumed; default 0.9)")
    parser.add_argument("--gpu-rtf", type=float, default=30.0, help="GPU whisper speed, × real time (assumed)")
    parser.add_argument("--api-rtf", type=float, default=30.0, help="paid API speed per request, × real time (assumed)")
    parser.add_argument("--concurrency", type=int, default=None, help="parallel paid requests (default MAX_CONCURRENCY)")
    parser.add_argument("--youtube-s", type=float, default=6.0,
                        help="seconds of YouTube requests per video: info + captions or audio, with the polite pauses (assumed)")
    parser.add_argument("--start", type=date.fromisoformat, default=date.today(), help="first day of the backfill")
    parser.add_argument("--no-measure", action="store_true", help="skip the measured runs")
    args = parser.parse_args()
    if not args.listing.exists():
        print(f"needs {args.listing} (../shared/data is not present)", file=sys.stderr)
        return 2

    settings = get_settings()
    limits = budget.BudgetLimits(settings.daily_budget_usd, settings.monthly_budget_usd,
                                 settings.daily_safety_limit_usd, settings.monthly_safety_limit_usd)
    price = budget.DEFAULT_PRICES["openai-transcribe"]["per_audio_minute"]
    gpu_price = budget.DEFAULT_PRICES["gpu"].get("per_hour", 0.0)
    concurrency = args.concurrency or settings.max_concurrency
    minutes, unknown = load_minutes(args.listing)
    total_min = sum(minutes)

    print(f"Listing: {len(minutes)} videos, {total_min / 60:,.0f} h of audio; median {statistics.median(minutes):.0f} min, "
          f"mean {total_min / len(minutes):.1f} min; {unknown} without a duration (counted at the median)")
    print(f"Prices: ${price}/audio minute (paid API), captions and local whisper $0"
          + (f", GPU ${gpu_price}/h" if gpu_price else ", GPU time not priced")
          + f". Caps: ${limits.daily_cap:.0f}/day, ${limits.monthly_cap:.0f}/month. Start {args.start}.")
    print(f"Seed estimate: ${SEED_USD:.0f} for {SEED_VIDEOS:,} × {SEED_MINUTES:.0f} min "
          f"(= ${SEED_VIDEOS * SEED_MINUTES * price:.0f} at ${price}/min). "
          f"At this listing's real mean length, {SEED_VIDEOS:,} videos through the API would cost "
          f"${SEED_VIDEOS * total_min / len(minutes) * price:,.0f}.")

    measured: Throughput | None = None
    cpu: tuple[float, str] | None = None
    if not args.no_measure:
        print("\nMeasuring on this machine …", flush=True)
        cpu = measure_local_whisper()
        if cpu:
            print(f"  local whisper ({cpu[1]}, CPU, {os.cpu_count()} cores): {cpu[0]:.1f}× real time "
                  f"→ {cpu[0] * 60 / statistics.median(minutes):.1f} median videos/hour")
        measured = measure_captions_route()
        print(f"  captions route, real worker + pipeline (index with {settings.embedding_model}): "
              f"{measured.items} items of ≈ 20 min in {measured.wall_s:.1f} s → {measured.items_per_hour:,.0f} items/hour, "
              f"{measured.audio_hours_per_hour:,.1f} audio-hours/hour → "
              f"{measured.audio_hours_per_hour * 60 / statistics.median(minutes):,.0f} median ({statistics.median(minutes):.0f}-min) "
              f"videos/hour (embedding model load {measured.model_load_s:.1f} s, once per worker)")

    print(f"\nProjection for the {len(minutes)}-video listing "
          f"(captions share {args.captions_share:.0%} assumed; paid API {args.api_rtf:.0f}× real time × {concurrency} at once):")
    header = f"{'policy':<22} {'paid audio h':>12} {'cost':>9} {'vs seed':>8} {'money days':>10} {'work h':>7}  {'finish':<10}  how"
    print(header)
    print("-" * len(header))
    index_rate = measured.audio_hours_per_hour if measured else None
    for pol in policies(minutes, captions_share=args.captions_share, gpu_rtf=args.gpu_rtf, cpu_rtf=cpu[0] if cpu else None):
        usd = pol.paid_minutes * price + pol.gpu_hours * gpu_price
        money_days = days_to_spend(usd, args.start, limits.daily_cap, limits.monthly_cap) if usd else 0
        # Work that is not money-bound: transcription on each machine, and indexing (embedding)
        # every transcript on this machine, at the measured rate.
        index_h = (total_min / 60 / index_rate) if index_rate else 0.0
        youtube_h = len(minutes) * args.youtube_s / 3600  # one polite worker asking YouTube
        work_h = max(
            pol.paid_minutes / 60 / args.api_rtf / concurrency,
            pol.gpu_hours,
            pol.cpu_hours + index_h,  # whisper on this CPU and indexing here share its cores
            youtube_h,
        )
        finish = args.start + timedelta(days=max(money_days, math_ceil(work_h / 24)))
        print(f"{pol.name:<22} {pol.paid_minutes / 60:>12,.0f} {'$' + format(usd, ',.2f'):>9} "
              f"{usd / SEED_USD:>7.0%} {money_days:>10} {work_h:>7.1f}  {finish.isoformat():<10}  {pol.note}")
    print("\nmoney days: calendar days the caps stretch the paid work over (paid work pauses at each cap and resumes "
          "the next day or month); work h: hours of the slowest resource — paid API, GPU worker, this machine's CPU "
          f"(local whisper + indexing{', measured' if index_rate else ', indexing not measured'}), or YouTube at "
          f"{args.youtube_s:.0f} s a video. finish = start + the larger of the two.")
    return 0


def math_ceil(x: float) -> int:
    return int(-(-x // 1))


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        import shutil

        from core import db

        db.reset_engine()
        if db._embedded_server is not None:  # the throw-away database: stop it, then remove it
            db._embedded_server.cleanup()
        shutil.rmtree(_TMP, ignore_errors=True)
