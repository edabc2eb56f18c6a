"""ffmpeg/ffprobe helpers: how long a file is, where it is silent, and how to cut it small.

Everything here shells out to the `ffprobe`/`ffmpeg` programs (Debian `ffmpeg`), the same
decoders yt-dlp and faster-whisper rely on, so a file we accept here is one they can read.
A file ffprobe cannot read raises `CorruptMedia`; a missing program raises
`EngineUnavailable` (the machine, not the file, is at fault).
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from core.transcribe.base import CorruptMedia, EngineUnavailable

# Compact speech encoding for uploads: mono 16 kHz is what Whisper models hear anyway, and
# 32 kbit/s MP3 keeps speech intelligible while fitting ~100 minutes into 25 MB.
# MP3 because every transcription API accepts it (some reject Opus-in-Ogg).
UPLOAD_SAMPLE_RATE = 16_000
UPLOAD_BITRATE_KBPS = 32
UPLOAD_CODEC = ("libmp3lame", ".mp3")

# silencedetect thresholds tried in turn, quietest first (dBFS).
SILENCE_LEVELS_DB = (-40.0, -30.0, -22.0)

_SILENCE_START = re.compile(r"silence_start:\s*(-?[\d.]+)")
_SILENCE_END = re.compile(r"silence_end:\s*(-?[\d.]+)")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise EngineUnavailable(f"the `{name}` program is not installed (apt-get install ffmpeg)")
    return found


def _run(args: list[str], *, what: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run an ffmpeg-family command; a non-zero exit means the input could not be decoded."""
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        # ffmpeg's last stderr lines name the real problem ("Invalid data found …"); drop the
        # "[mp3 @ 0x…]" and "<path>: " prefixes so the message reads as one sentence.
        lines = [re.sub(r"^\[[^\]]*\]\s*", "", ln).removeprefix(f"{path}: ").strip()
                 for ln in proc.stderr.strip().splitlines()[-2:]]
        reason = "; ".join(ln for ln in lines if ln) or f"exit status {proc.returncode}"
        raise CorruptMedia(f"cannot {what} {path.name}: {reason}")
    return proc


def probe_duration(path: str | Path) -> float:
    """Seconds of audio in `path`; raises CorruptMedia when it is not decodable audio."""
    path = Path(path)
    if not path.is_file():
        raise CorruptMedia(f"no such media file: {path}")
    if not shutil.which("ffprobe"):
        # Local whisper decodes with PyAV (faster-whisper's dependency), not the ffmpeg program:
        # a machine without ffmpeg can still index a local file. Only the paid API's cutting needs it.
        return _pyav_duration(path)
    proc = _run(
        [_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format",
         "-show_streams", "-select_streams", "a", str(path)],
        what="read audio from", path=path,
    )
    try:
        info = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        raise CorruptMedia(f"cannot read audio from {path.name}: ffprobe gave no usable answer") from None
    streams = info.get("streams") or []
    if not streams:
        raise CorruptMedia(f"{path.name} has no audio stream")
    # The container's duration first; some streams (raw ADTS, live WebM) only know their own.
    for raw in (info.get("format", {}).get("duration"), streams[0].get("duration")):
        try:
            seconds = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    return _decoded_duration(path)


def _pyav_duration(path: Path) -> float:
    """Duration read with PyAV: the container's, else the audio stream's, else by decoding it."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise CorruptMedia(f"{path.name} has no audio stream")
            stream = streams[0]
            if container.duration and container.duration > 0:
                return container.duration / av.time_base
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            last = 0.0
            for frame in container.decode(stream):
                if frame.time is not None:
                    last = float(frame.time) + frame.samples / float(frame.sample_rate or 1)
    except av.error.FFmpegError as exc:
        raise CorruptMedia(f"cannot read audio from {path.name}: {exc}") from exc
    if last <= 0:
        raise CorruptMedia(f"cannot decode audio from {path.name}: no audio frames")
    return last


def _decoded_duration(path: Path) -> float:
    """Duration by decoding the whole stream: slow, only for files whose headers do not say."""
    proc = _run([_tool("ffmpeg"), "-nostdin", "-v", "info", "-i", str(path), "-vn", "-f", "null", "-"],
                what="decode", path=path)
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", proc.stderr)
    if not times:
        raise CorruptMedia(f"cannot decode audio from {path.name}: no audio frames")
    h, m, s = times[-1]
    seconds = int(h) * 3600 + int(m) * 60 + float(s)
    if seconds <= 0:
        raise CorruptMedia(f"cannot decode audio from {path.name}: no audio frames")
    return seconds


def to_wav16k(path: str | Path, dest: str | Path) -> Path:
    """Decode any media file to mono 16 kHz 16-bit WAV (what Whisper models consume)."""
    path, dest = Path(path), Path(dest)
    _run([_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-i", str(path), "-vn", "-ac", "1",
          "-ar", str(UPLOAD_SAMPLE_RATE), "-c:a", "pcm_s16le", str(dest)], what="decode", path=path)
    return dest


def find_silences(
    path: str | Path, *, noise_db: float = -35.0, min_silence_s: float = 0.4
) -> list[tuple[float, float]]:
    """(start, end) seconds of every stretch quieter than `noise_db` for at least `min_silence_s`.

    Uses ffmpeg's `silencedetect`. A silence that runs to the end of the file ends at the
    file's duration.
    """
    path = Path(path)
    proc = _run(
        [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-v", "info", "-i", str(path), "-vn",
         "-af", f"silencedetect=noise={noise_db}dB:duration={min_silence_s}", "-f", "null", "-"],
        what="decode", path=path,
    )
    silences: list[tuple[float, float]] = []
    start: float | None = None
    for line in proc.stderr.splitlines():
        if m := _SILENCE_START.search(line):
            start = max(0.0, float(m.group(1)))
        elif (m := _SILENCE_END.search(line)) and start is not None:
            silences.append((start, float(m.group(1))))
            start = None
    if start is not None:  # silent until the end: ffmpeg 5 prints no silence_end then
        silences.append((start, probe_duration(path)))
    return silences


def is_all_silence(path: str | Path, *, noise_db: float = -50.0) -> bool:
    """True when nothing in the file rises above `noise_db` (digital or near-digital silence)."""
    path = Path(path)
    duration = probe_duration(path)
    silences = find_silences(path, noise_db=noise_db, min_silence_s=0.1)
    # Tolerate a few milliseconds of codec edge at either end.
    return bool(silences) and silences[0][0] <= 0.05 and silences[-1][1] >= duration - 0.05 and len(silences) == 1


def plan_cuts(
    duration: float, silence_levels: Sequence[Sequence[tuple[float, float]]], max_piece_s: float
) -> list[tuple[float, float, bool]]:
    """(start, end, at_silence) pieces no longer than `max_piece_s`, cut in the middle of silences.

    `silence_levels` are silence lists from the quietest threshold to the loudest: each window
    takes a cut from the quietest level that has one (a true pause beats a merely soft word),
    the latest such cut so pieces are as long as allowed. Where no level has a silence in the
    second half of a window (non-stop talk or music) it cuts hard at the limit (at_silence=False).
    """
    if max_piece_s <= 0:
        raise ValueError("max_piece_s must be positive")
    mids = [sorted((a + b) / 2 for a, b in level) for level in silence_levels]
    pieces: list[tuple[float, float, bool]] = []
    start = 0.0
    while duration - start > max_piece_s:
        limit = start + max_piece_s
        cut, at_silence = limit, False
        for level in mids:
            # Only cuts in the second half: a cut just after `start` would make tiny pieces.
            candidates = [m for m in level if start + max_piece_s / 2 <= m <= limit]
            if candidates:
                cut, at_silence = candidates[-1], True
                break
        pieces.append((start, cut, at_silence))
        start = cut
    pieces.append((start, duration, True))
    return pieces


def encode_piece(path: Path, start: float, length: float, dest: Path, *, bitrate_kbps: int) -> Path:
    """Re-encode [start, start+length) of `path` as compact mono speech audio."""
    codec, _ = UPLOAD_CODEC
    # -ss before -i seeks fast; with re-encoding ffmpeg still trims to the exact sample.
    _run([_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-ss", f"{start:.3f}", "-t", f"{length:.3f}",
          "-i", str(path), "-vn", "-ac", "1", "-ar", str(UPLOAD_SAMPLE_RATE), "-c:a", codec,
          "-b:a", f"{bitrate_kbps}k", str(dest)], what="encode", path=path)
    return dest


def split_at_silences(
    path: str | Path,
    max_bytes: int,
    dest_dir: str | Path,
    *,
    max_seconds: float | None = None,
    bitrate_kbps: int = UPLOAD_BITRATE_KBPS,
) -> list[tuple[Path, float]]:
    """Cut `path` into compact MP3 pieces under `max_bytes` (and `max_seconds`), cut at silences.

    Returns (piece path, offset in seconds of the piece in the original) in order; add the
    offset to any timestamp found inside a piece. A file that fits comes back as one piece
    (still re-encoded, so the caller always uploads the same compact format).
    """
    path, dest_dir = Path(path), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    duration = probe_duration(path)
    # Constant-bitrate MP3 size is predictable; keep 8 % for frame headers and the ID3 tag.
    bytes_per_s = bitrate_kbps * 1000 / 8
    max_piece_s = max_bytes * 0.92 / bytes_per_s
    if max_seconds is not None:
        max_piece_s = min(max_piece_s, max_seconds)
    if max_piece_s < 1.0:
        raise ValueError(f"max_bytes={max_bytes} is too small for {bitrate_kbps} kbit/s pieces")
    # Quietest threshold first; louder ones are only measured (one ffmpeg pass each) when some
    # window has no pause at the quieter level, e.g. speech over crowd noise or room hum.
    levels: list[list[tuple[float, float]]] = []
    plan = plan_cuts(duration, levels, max_piece_s)
    for noise_db in SILENCE_LEVELS_DB:
        if all(at_silence for _, _, at_silence in plan):
            break
        levels.append(find_silences(path, noise_db=noise_db))
        plan = plan_cuts(duration, levels, max_piece_s)
    pieces: list[tuple[Path, float]] = []
    for i, (start, end, _) in enumerate(plan):
        dest = encode_piece(path, start, end - start, dest_dir / f"{path.stem}.part{i:03d}{UPLOAD_CODEC[1]}",
                            bitrate_kbps=bitrate_kbps)
        if dest.stat().st_size > max_bytes:  # should not happen with CBR; fail loudly, never upload it
            raise ValueError(f"piece {dest.name} is {dest.stat().st_size} bytes, over the {max_bytes} limit")
        pieces.append((dest, start))
    return pieces
