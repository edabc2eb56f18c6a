"""Local transcription: speed (real-time factor) and accuracy (word error rate), side by side.

    .venv/bin/python bench/transcribe.py                 # bundled tiny.en, 2 CPU threads
    .venv/bin/python bench/transcribe.py --model small.en --threads 2 --repeat 3

Runs the app's own LocalWhisperEngine (plain beam search and the batched pipeline) over
  * real speech: ../shared/data/audio/jfk.flac and fleurs_en/*.ogg with their reference texts;
  * ~1 minute of espeak-ng speech synthesized from a known paragraph (when espeak-ng exists).
RTF = audio seconds / wall seconds of transcription (model already loaded, best of --repeat
runs: the machine may be shared). WER = word edit distance / reference words over the whole
set, after lower-casing and stripping punctuation.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never hang on a model hub: this machine is offline

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


def run_set(engine: LocalWhisperEngine, files: list[tuple[Path, str]]) -> tuple[float, float, int, int, int]:
    """(audio s, wall s, word errors, reference words, segments) for one pass over `files`."""
    audio = wall = 0.0
    errors = words = segments = 0
    for path, reference in files:
        start = time.perf_counter()
        transcript = engine.transcribe(path)
        wall += time.perf_counter() - start
        audio += transcript.audio_seconds or 0.0
        hyp = " ".join(s.text for s in transcript.segments)
        errors += edit_distance(normalize(reference), normalize(hyp))
        words += len(normalize(reference))
        segments += len(transcript.segments)
    return audio, wall, errors, words, segments


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
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_speech(Path(tmp))
        sets = {"real": real, "espeak": synthetic}
        seconds = {k: sum(_duration(p) for p, _ in v) for k, v in sets.items()}
        load = os.getloadavg()[0]
        print(f"model {args.model or 'tiny.en (bundled)'} · device {args.device} · {args.threads} threads · "
              f"{os.cpu_count()} cores · load average {load:.1f} before the run")
        print(f"audio: real speech {len(real)} files {seconds['real']:.0f} s (jfk + FLEURS); "
              f"espeak {seconds['espeak']:.0f} s" + ("" if synthetic else " (espeak-ng missing)"))
        rows = []
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
            engine.transcribe(real[0][0])  # warm-up: first call loads the VAD model
            result = {}
            for name, files in sets.items():
                if not files:
                    continue
                passes = [run_set(engine, files) for _ in range(max(1, args.repeat))]
                best = min(passes, key=lambda p: p[1])
                result[name] = best
            rows.append((label, engine.device or "?", load_s, result))

    print()
    header = (f"{'mode':<27}{'device':<7}{'load s':>7}{'RTF real':>10}{'RTF espeak':>12}{'RTF all':>9}"
              f"{'WER real':>10}{'WER espeak':>12}{'segments':>10}")
    print(header)
    print("-" * len(header))
    for label, device, load_s, result in rows:
        real_r, syn_r = result.get("real"), result.get("espeak")
        audio = sum(r[0] for r in result.values())
        wall = sum(r[1] for r in result.values())
        segs = sum(r[4] for r in result.values())
        print(f"{label:<27}{device:<7}{load_s:>7.2f}{_rtf(real_r):>10}{_rtf(syn_r):>12}{audio / wall:>8.1f}x"
              f"{_wer(real_r):>10}{_wer(syn_r):>12}{segs:>10}")
    print("\nRTF = audio seconds per wall second (higher is faster; target ≥ 20x on CPU). "
          "WER over all reference words of a set.")
    return 0


def _rtf(r: tuple[float, float, int, int, int] | None) -> str:
    return "-" if r is None else f"{r[0] / r[1]:.1f}x"


def _wer(r: tuple[float, float, int, int, int] | None) -> str:
    return "-" if r is None else f"{100 * r[2] / r[3]:.1f}%"


def _duration(path: Path) -> float:
    from core.transcribe.audio import probe_duration

    return probe_duration(path)


if __name__ == "__main__":
    raise SystemExit(main())
