"""Local transcription: speed (real-time factor) and accuracy (word error rate), side by side.

    .venv/bin/python bench/transcribe.py                 # bundled tiny.en, 2 CPU threads
    .venv/bin/python bench/transcribe.py --model small.en --threads 2 --repeat 3

Runs the app's own LocalWhisperEngine in each decoding mode (plain beam search, the batched
pipeline, and the VAD settings tried) over
  * real speech: ../shared/data/audio/jfk.flac and fleurs_en/*.ogg with their reference texts;
  * ~1 minute of espeak-ng speech synthesized from a known paragraph (when espeak-ng exists);
  * "long-form": the 8 real clips joined into one ~2-minute call with 2–4 s pauses and a 30 s
    break (tests/longform.py), each speaker at their own level (±9 dB), the shape in which
    lost speech shows; and the same with the clips' raw levels (down to -68 dBFS).
Word recall = share of the reference words present in the transcript, in order (difflib
matching blocks over normalised words): a dropped passage costs it in full. "lost" = words
that left no trace at all (a misheard word is not lost). "kept" = passages
with at least half their words heard inside their own time span. WER = word edit distance /
reference words, after lower-casing and stripping punctuation. RTF = audio seconds / wall
seconds (model loaded, best of --repeat runs; CPU-time RTF too, for a shared machine).
The GPU row (large-v3, batched) runs only where CUDA and those weights are present.
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
from core.transcribe.local import DEFAULT_DECODING, LocalWhisperEngine  # noqa: E402
from tests import longform  # noqa: E402

SHARED_AUDIO = Path(os.environ.get("CHAFFEE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "audio"
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
    return longform.clips(SHARED_AUDIO)  # the same clips the long-form fixture is built from


def synthetic_speech(folder: Path) -> list[tuple[Path, str]]:
    if not shutil.which("espeak-ng"):
        return []
    wav = folder / "paragraph.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), PARAGRAPH], check=True)
    return [(wav, PARAGRAPH)]


class Result(NamedTuple):
    audio_s: float
    wall_s: float
    cpu_s: float
    errors: int
    words: int
    segments: int
    matched: int = 0  # reference words found in order (word recall = matched / words)
    lost: int = 0  # reference words that left no trace (deleted, not misheard)
    kept: int = 0  # long-form passages heard (at least half their words, in their time span)
    passages: int = 0


def run_set(engine: LocalWhisperEngine, files: list[tuple[Path, str]], fixture: longform.LongForm | None = None) -> Result:
    """One pass over `files`: time, CPU time, word errors and word recall (and passages kept)."""
    audio = wall = cpu = 0.0
    errors = words = segments = matched = kept = lost = 0
    for path, reference in files:
        w0, c0 = time.perf_counter(), time.process_time()
        transcript = engine.transcribe(path)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        audio += transcript.audio_seconds or 0.0
        hyp = " ".join(s.text for s in transcript.segments)
        errors += edit_distance(normalize(reference), normalize(hyp))
        words += len(normalize(reference))
        matched += round(longform.word_recall(reference, hyp) * len(normalize(reference)))
        lost += round(longform.words_lost(reference, hyp) * len(normalize(reference)))
        segments += len(transcript.segments)
        if fixture is not None:
            kept += sum(r >= 0.5 for r in longform.passage_recalls(fixture, transcript.segments).values())
    return Result(audio, wall, cpu, errors, words, segments, matched, lost, kept,
                  len(fixture.passages) if fixture else 0)


class Mode(NamedTuple):
    label: str
    options: dict  # LocalWhisperEngine keyword arguments


MODES = (
    Mode("plain (beam 5, VAD)", dict(batched=False)),
    Mode("plain, VAD silence 0.5 s", dict(batched=False, vad_parameters={"min_silence_duration_ms": 500})),
    Mode("plain, VAD threshold 0.3", dict(batched=False, vad_parameters={"threshold": 0.3})),
    Mode("plain, no VAD", dict(batched=False, vad_filter=False)),
    Mode("batched (batch 8, 30 s, VAD)", dict(batched=True, chunk_length=None)),
    Mode("batched, 20 s windows", dict(batched=True, chunk_length=20)),
    Mode("batched, 15 s windows", dict(batched=True, chunk_length=15)),
    Mode("batched, 10 s windows", dict(batched=True, chunk_length=10)),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="faster-whisper model name or folder (default: bundled tiny.en)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per mode; the fastest counts")
    parser.add_argument("--modes", nargs="*", help="only modes whose label contains one of these words (e.g. plain)")
    args = parser.parse_args()

    real = real_speech()
    if not real:
        print(f"no reference audio under {SHARED_AUDIO} (needs ../shared/data/audio)")
        return 1
    rows: list[tuple[str, str, float, dict[str, Result]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_speech(Path(tmp))
        call = longform.build(SHARED_AUDIO, Path(tmp) / "call.wav")
        raw_call = longform.build(SHARED_AUDIO, Path(tmp) / "call-raw.wav", even_loudness=False)
        sets = {"real": real, "espeak": synthetic, "long": [(call.path, call.reference)],
                "raw": [(raw_call.path, raw_call.reference)]}
        fixtures = {"long": call, "raw": raw_call}
        seconds = {k: sum(_duration(p) for p, _ in v) for k, v in sets.items()}
        print(f"model {args.model or 'tiny.en (bundled)'} · device {args.device} · {args.threads} threads · "
              f"{os.cpu_count()} cores · load average {os.getloadavg()[0]:.1f} before the run")
        print(f"audio: real {len(real)} clips {seconds['real']:.0f} s (jfk + FLEURS) · espeak paragraph "
              f"{seconds['espeak']:.0f} s" + ("" if synthetic else " (espeak-ng missing)")
              + f" · long-form call {seconds['long']:.0f} s ({len(call.passages)} passages, 2-4 s pauses, "
              f"a {longform.SILENCE_S:.0f} s break; levels ±9 dB, and raw)")
        modes = [m for m in MODES if not args.modes or any(k in m.label for k in args.modes)]
        for mode in modes:
            engine = LocalWhisperEngine(args.model, device=args.device, cpu_threads=args.threads, **mode.options)
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
                    result[name] = min((run_set(engine, files, fixtures.get(name)) for _ in range(max(1, args.repeat))),
                                       key=lambda r: r.wall_s)
            default = mode.options == DEFAULT_DECODING
            rows.append((mode.label + (" *" if default else ""), engine.device or "?", load_s, result))
            print(f"  measured: {mode.label}", flush=True)

    print()
    header = (f"{'mode':<29}{'device':<7}{'recall long':>12}{'lost':>6}{'kept':>6}{'WER long':>9}{'RTF long':>9}"
              f"{'(CPU)':>7}{'recall raw':>11}{'kept':>6}{'WER real':>9}{'WER espeak':>11}{'segs':>5}")
    print(header)
    print("-" * len(header))
    for label, device, _load_s, r in rows:
        lr, raw = r["long"], r["raw"]
        print(f"{label:<29}{device:<7}{_recall(lr):>12}{_lost(lr):>6}{lr.kept:>4}/{lr.passages}{_wer(lr):>9}{_rtf(lr):>9}"
              f"{lr.audio_s / (lr.cpu_s / args.threads):>6.1f}x{_recall(raw):>11}{raw.kept:>4}/{raw.passages}"
              f"{_wer(r['real']):>9}{_wer(r.get('espeak')):>11}{lr.segments:>5}")
    print(f"{'GPU: large-v3, batched':<29}{'cuda':<7}  " + _gpu_note(args))
    print("\n* = the default (core/transcribe/local.py DEFAULT_DECODING).")
    print(f"recall = reference words present in order; lost = reference words with no trace in the transcript "
          "(misheard words are not lost);\nkept = passages heard in their own time span; RTF = audio "
          f"seconds per wall second, best of {args.repeat}; (CPU) = the same by CPU time / {args.threads} threads.")
    return 0


def _gpu_note(args: argparse.Namespace) -> str:
    """The GPU row: measured by running this script with --device cuda --model large-v3 where both exist."""
    try:
        import ctranslate2

        gpus = ctranslate2.get_cuda_device_count()
    except Exception:  # noqa: BLE001 - no CUDA runtime at all
        gpus = 0
    if gpus == 0:
        return "not measured: no GPU"
    if args.device != "cuda":
        return "run: bench/transcribe.py --device cuda --model large-v3 --modes batched"
    return "see the rows above"


def _lost(r: Result | None) -> str:
    return "-" if r is None or not r.words else f"{100 * r.lost / r.words:.1f}%"


def _recall(r: Result | None) -> str:
    return "-" if r is None or not r.words else f"{100 * r.matched / r.words:.1f}%"


def _rtf(r: Result | None) -> str:
    return "-" if r is None else f"{r.audio_s / r.wall_s:.1f}x"


def _wer(r: Result | None) -> str:
    return "-" if r is None else f"{100 * r.errors / r.words:.1f}%"


def _duration(path: Path) -> float:
    from core.transcribe.audio import probe_duration

    return probe_duration(path)


if __name__ == "__main__":
    raise SystemExit(main())
