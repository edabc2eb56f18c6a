"""Synthesized speech with known timings: the ground truth for end-to-end tests.

espeak-ng speaks each paragraph to its own WAV; ffmpeg joins them with silence between,
so we know the second at which every paragraph starts.
"""
from __future__ import annotations

import subprocess
import wave
from pathlib import Path
from typing import NamedTuple

from tests.conftest import require_binary

PARAGRAPHS = (
    "Welcome to the program. Today we talk about sleep, sunlight and the daily rhythm of the body. "
    "Morning light helps people fall asleep earlier in the evening.",
    "Many listeners ask about running and endurance training. Long slow runs build the heart and lungs, "
    "and rest days let the muscles repair themselves.",
    "The next question is about vitamin tablets. Most people who eat fresh meat and eggs get enough "
    "vitamins from their food alone.",
    "Someone wrote in about coffee in the afternoon. Caffeine stays in the blood for many hours, "
    "so a cup at four o'clock can still keep you awake at midnight.",
    "Another caller asked about drinking water with meals. Thirst is a good guide for most healthy "
    "adults, and there is no need to force down extra glasses.",
    "Now a story about the lighthouse keeper of the northern island, who counted seventeen ships "
    "every night during the great winter storm.",
    "Finally, thank you for listening. Send your questions by email and we will answer them next week.",
)


class SpokenPart(NamedTuple):
    text: str
    start: float
    end: float


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def synthesize(dest: Path, paragraphs=PARAGRAPHS, *, gap_s: float = 1.5, speed_wpm: int = 165) -> list[SpokenPart]:
    """Write `dest` (any ffmpeg format by extension) and return each paragraph's time span."""
    require_binary("espeak-ng")
    require_binary("ffmpeg")
    work = dest.parent / f".{dest.stem}-parts"
    work.mkdir(parents=True, exist_ok=True)
    parts: list[SpokenPart] = []
    files: list[Path] = []
    t = 0.0
    silence = work / "gap.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", str(gap_s), silence],
        check=True,
    )
    for i, text in enumerate(paragraphs):
        wav = work / f"p{i}.wav"
        subprocess.run(["espeak-ng", "-s", str(speed_wpm), "-w", str(wav), text], check=True)
        length = _wav_seconds(wav)
        parts.append(SpokenPart(text, t, t + length))
        files += [wav, silence]
        t += length + gap_s
    listing = work / "list.txt"
    listing.write_text("".join(f"file '{f.name}'\n" for f in files))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-ar", "16000", "-ac", "1", str(dest)],
        check=True,
    )
    return parts
