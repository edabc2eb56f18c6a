"""Local transcription: speed (real-time factor) and accuracy (word error rate), side by side.

    .venv/bin/python bench/transcribe.py                 # bundled tiny.en, 2 CPU threads
    .venv/bin/python bench/transcribe.py --model small.en --threads 2 --repeat 3

Runs the app's own LocalWhisperEngine (plain beam search and the batched pipeline) over
  * real speech: ../shared/data/audio/jfk.flac and fleurs_en/*.ogg with their reference texts;
  * ~1 minute of espeak-ng speech synthesized from a known paragraph (when espeak-ng exists);
  * "long": all of the above as one file, the shape of a real archive item.
RTF = audio seconds / wall seconds of transcription (model already loaded, best of --repeat
runs: the machine may be shared; CPU-time RTF is printed too). WER = word edit distance /
reference words over the whole set, after lower-casing and stripping punctuation.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.transcribe.base import EngineUnavailable  # noqa: E402
from core.transcribe.local import LocalWhisperEngine  # noqa: E402

SHARED_AUDIO = Path(os.environ.get("CHAFFEE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "audio"
JFK_REFERENCE = ("And so my fellow Americans, ask not what your country can do for you, "
                 "ask what you can do for your country.")
PARAGRAPH = (
    "Doctor Chaffee has recorded hundreds of long conversations about nutrition and health. "
    "Each talk is transcribed, cut into short windows, and indexed so that a question finds "
    "the exact minute where it was answered. Search works on meaning as well as on words, which "
    "helps when a speaker uses a different phrase than the one you typed. Every result links back "
    "to the video at the moment the topic begins, so you can listen to the whole answer in context. "
    "The collection grows every week as new interviews appear, and older recordings are processed "
    "in the background when the machine is idle. Accuracy matters more than speed, but a fast "
    "first pass lets people start searching within a day of a new upload."
)


def normalize(text: str) -> list[str]:
    """Lower-case, drop punctuation (hyphens split words), split on spaces."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diag, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)]


def real_speech() -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    if (SHARED_AUDIO / "jfk.flac").exists():
        files.append((SHARED_AUDIO / "jfk.flac", JFK_REFERENCE))
    for ogg in sorted((SHARED_AUDIO / "fleurs_en").glob("*.ogg")):
        ref = ogg.with_suffix(".txt")
        if ref.exists():
            files.append((ogg, ref.read_text().strip()))
    return files


def synthetic_speech(folder: Path) -> list[tuple[Path, str]]:
    if not shutil.which("espeak-ng"):
        return []
    wav = folder / "paragraph.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), PARAGRAPH], check=True)
    return [(wav, PARAGRAPH)]


def long_talk(files: list[tuple[Path, str]], dest: Path) -> tuple[Path, str]:
    """All clips as one file (1 s gaps), each scaled to the same loudness, like one long talk.

    Archive items run ~52 minutes, so per-file start-up costs vanish there; clips alone would
    understate the speed. Loudness is evened out because FLEURS clips are ~40 dB quieter than
    the others, a mismatch no real recording has that makes tiny.en skip the quiet parts.
    """
    import numpy as np

    parts = []
    for path, _ in files:
        pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
                             capture_output=True, check=True).stdout
        audio = np.frombuffer(pcm, np.float32)
        parts += [audio * (0.05 / max(float(np.sqrt(np.mean(audio**2))), 1e-6)), np.zeros(16000, np.float32)]
    joined = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2").tobytes()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "-", str(dest)],
                   input=joined, check=True)
    return dest, " ".join(ref for _, ref in files)


class Result(NamedTuple):
    audio_s: float
    wall_s: float
    cpu_s: float
    errors: int
    words: int
    segments: int


def run_set(engine: LocalWhisperEngine, files: list[tuple[Path, str]]) -> Result:
    """One pass over `files`: time, CPU time and word errors."""
    audio = wall = cpu = 0.0
    errors = words = segments = 0
    for path, reference in files:
        w0, c0 = time.perf_counter(), time.process_time()
        transcript = engine.transcribe(path)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        audio += transcript.audio_seconds or 0.0
        hyp = " ".join(s.text for s in transcript.segments)
        errors += edit_distance(normalize(reference), normalize(hyp))
        words += len(normalize(reference))
        segments += len(transcript.segments)
    return Result(audio, wall, cpu, errors, words, segments)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="faster-whisper model name or folder (default: bundled tiny.en)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--repeat", type=int, default=2, help="timed passes per mode; the fastest counts")
    args = parser.parse_args()

    real = real_speech()
    if not real:
        print(f"no reference audio under {SHARED_AUDIO} (needs ../shared/data/audio)")
        return 1
    rows: list[tuple[str, str, float, dict[str, Result]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_speech(Path(tmp))
        sets = {"real": real, "espeak": synthetic, "long": [long_talk(real + synthetic, Path(tmp) / "long.wav")]}
        seconds = {k: sum(_duration(p) for p, _ in v) for k, v in sets.items()}
        print(f"model {args.model or 'tiny.en (bundled)'} · device {args.device} · {args.threads} threads · "
              f"{os.cpu_count()} cores · load average {os.getloadavg()[0]:.1f} before the run")
        print(f"audio: real {len(real)} clips {seconds['real']:.0f} s (jfk + FLEURS) · espeak paragraph "
              f"{seconds['espeak']:.0f} s" + ("" if synthetic else " (espeak-ng missing)")
              + f" · long = all of them as one {seconds['long']:.0f} s file")
        for label, batched in (("plain (beam 5)", False), ("batched (beam 5, batch 8)", True)):
            engine = LocalWhisperEngine(args.model, device=args.device, cpu_threads=args.threads, batched=batched)
            t0 = time.perf_counter()
            try:
                engine.load()
            except EngineUnavailable as exc:
                print(f"\nNOTE: cannot use model {args.model!r}: {exc}")
                print("      Its weights are not on this machine and cannot be fetched offline; "
                      "run without --model for the bundled tiny.en, or give a local model folder.")
                return 2
            load_s = time.perf_counter() - t0
            engine.transcribe(real[0][0])  # warm-up: the first call also loads the VAD model
            result: dict[str, Result] = {}
            for name, files in sets.items():
                if files:
                    result[name] = min((run_set(engine, files) for _ in range(max(1, args.repeat))),
                                       key=lambda r: r.wall_s)
            rows.append((label, engine.device or "?", load_s, result))

    print()
    header = (f"{'mode':<27}{'device':<7}{'load':>6}{'RTF long':>10}{'(CPU time)':>11}{'RTF clips':>10}"
              f"{'WER real':>10}{'WER espeak':>11}{'WER long':>10}{'segs long':>10}")
    print(header)
    print("-" * len(header))
    for label, device, load_s, r in rows:
        long_r = r["long"]
        print(f"{label:<27}{device:<7}{load_s:>5.1f}s{_rtf(long_r):>10}"
              f"{long_r.audio_s / (long_r.cpu_s / args.threads):>10.1f}x{_rtf(r['real']):>10}"
              f"{_wer(r['real']):>10}{_wer(r.get('espeak')):>11}{_wer(long_r):>10}{long_r.segments:>10}")
    print(f"\nRTF = audio seconds per wall second, best of {args.repeat} (higher is faster; target >= 20x on CPU).")
    print(f"(CPU time) = audio seconds / (process CPU seconds / {args.threads} threads): the speed with the cores "
          "to ourselves, for a shared machine. WER = word edits / reference words over the set.")
    return 0


def _rtf(r: Result | None) -> str:
    return "-" if r is None else f"{r.audio_s / r.wall_s:.1f}x"


def _wer(r: Result | None) -> str:
    return "-" if r is None else f"{100 * r.errors / r.words:.1f}%"


def _duration(path: Path) -> float:
    from core.transcribe.audio import probe_duration

    return probe_duration(path)


if __name__ == "__main__":
    raise SystemExit(main())
