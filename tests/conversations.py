"""Conversations built from real, different speakers, with a known "who speaks when".

The clips are jfk and the 7 FLEURS clips in ../shared/data/audio (tests/longform.py lists
them). FLEURS ships no speaker ids with these clips, and some of them are one person: the
voice encoder puts fleurs-en-001 and -005 at cosine 0.90 (pitch ≈ 113 and 129 Hz), and
fleurs-en-002, -003, -004 at 0.84–0.92 (pitch ≈ 208–224 Hz), where every other pair is at
0.51–0.77. So each of those groups is treated as ONE speaker: a fixture never counts them as
different people (which would reward a diarizer for splitting one voice), and the groups
give real "another recording of the same speaker" material for host identification.
That leaves five distinct voices (A–E): fixtures have 2–5 speakers, not 6.

Each clip is cut to its speech (leading and trailing silence removed, 50 ms kept) and set to
its own level (a ±6 dB spread, as on a call). "With pauses" puts 0.8–2.5 s of silence
between turns; "without" joins them back to back, so a change can only be heard in the voice.
Built at test/bench time into a temporary folder (16 kHz mono WAV), nothing committed.
"""
from __future__ import annotations

import wave
from pathlib import Path
from typing import NamedTuple

import numpy as np

SAMPLE_RATE = 16_000
# Voice → its clips (stems under audio/ and audio/fleurs_en/).
VOICES: dict[str, tuple[str, ...]] = {
    "A": ("jfk",),
    "B": ("fleurs-en-000",),
    "C": ("fleurs-en-001", "fleurs-en-005"),
    "D": ("fleurs-en-002", "fleurs-en-003", "fleurs-en-004"),
    "E": ("fleurs-en-006",),
}
GAINS_DB = {"A": 0.0, "B": -4.0, "C": 3.0, "D": -2.0, "E": 5.0}
PAUSES_S = (1.2, 0.8, 2.5, 1.6, 1.0, 2.0, 0.9, 1.4)


class Spoken(NamedTuple):
    voice: str
    clip: str
    start: float
    end: float


class Conversation(NamedTuple):
    name: str
    path: Path
    turns: list[Spoken]
    duration_s: float

    @property
    def voices(self) -> list[str]:
        return list(dict.fromkeys(t.voice for t in self.turns))

    @property
    def changes(self) -> list[float]:
        """Seconds where a different voice starts (the reference change points)."""
        return [b.start for a, b in zip(self.turns, self.turns[1:]) if a.voice != b.voice]


# The turn sequences (clip stems, in speaking order). Each voice comes back where it has a
# second clip, so turn-taking is real: A B A … with one person's voice on both sides.
SEQUENCES: dict[str, tuple[str, ...]] = {
    "2 speakers": ("fleurs-en-001", "fleurs-en-002", "fleurs-en-005", "fleurs-en-003"),
    "3 speakers": ("jfk", "fleurs-en-001", "fleurs-en-002", "fleurs-en-005", "fleurs-en-003"),
    "4 speakers": ("fleurs-en-000", "fleurs-en-002", "jfk", "fleurs-en-001", "fleurs-en-003", "fleurs-en-005"),
    "5 speakers": ("jfk", "fleurs-en-000", "fleurs-en-001", "fleurs-en-002", "fleurs-en-006", "fleurs-en-005",
                   "fleurs-en-004"),
}


def voice_of(clip: str) -> str:
    return next(v for v, clips in VOICES.items() if clip in clips)


def clip_path(audio_dir: Path, clip: str) -> Path:
    return audio_dir / "jfk.flac" if clip == "jfk" else audio_dir / "fleurs_en" / f"{clip}.ogg"


def speech_only(audio: np.ndarray) -> np.ndarray:
    """The clip without its leading and trailing silence (50 ms margin), by frame energy."""
    step = SAMPLE_RATE // 100
    n = len(audio) // step
    rms = np.sqrt(np.mean(audio[: n * step].reshape(n, step) ** 2, axis=1))
    loud = np.flatnonzero(rms >= 0.1 * np.percentile(rms, 95))
    if len(loud) == 0:
        return audio
    a, b = max(0, loud[0] - 5), min(n, loud[-1] + 6)
    return audio[a * step: b * step]


def load_clip(audio_dir: Path, clip: str, *, gain_db: float = 0.0) -> np.ndarray:
    from faster_whisper import decode_audio

    audio = speech_only(np.asarray(decode_audio(str(clip_path(audio_dir, clip)), sampling_rate=SAMPLE_RATE)))
    level = 0.05 * 10 ** (gain_db / 20)
    return (audio * (level / max(float(np.sqrt(np.mean(audio ** 2))), 1e-6))).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def build(audio_dir: Path, dest_dir: Path, name: str, clips: tuple[str, ...], *, pauses: bool) -> Conversation:
    """Join the clips into one recording; say where each turn lies."""
    missing = [c for c in clips if not clip_path(audio_dir, c).exists()]
    if missing:
        raise FileNotFoundError(f"needs {', '.join(missing)} under {audio_dir}")
    pieces = [(voice_of(c), c, load_clip(audio_dir, c, gain_db=GAINS_DB[voice_of(c)])) for c in clips]
    return join(dest_dir, f"{name}, {'pauses' if pauses else 'no pauses'}", pieces, pauses=pauses)


def join(dest_dir: Path, label: str, pieces: list[tuple[str, str, np.ndarray]], *, pauses: bool) -> Conversation:
    """(voice, clip name, audio) pieces back to back (or with PAUSES_S between) in one WAV."""
    lead = np.zeros(SAMPLE_RATE // 2, np.float32)
    out, turns, t = [lead], [], len(lead) / SAMPLE_RATE
    for i, (voice, clip, audio) in enumerate(pieces):
        if i and pauses:
            gap = np.zeros(int(PAUSES_S[i % len(PAUSES_S)] * SAMPLE_RATE), np.float32)
            out.append(gap)
            t += len(gap) / SAMPLE_RATE
        out.append(audio)
        turns.append(Spoken(voice, clip, t, t + len(audio) / SAMPLE_RATE))
        t += len(audio) / SAMPLE_RATE
    out.append(lead)
    audio = np.concatenate(out)
    path = dest_dir / (label.replace(" ", "_").replace(",", "").replace("/", "-") + ".wav")
    write_wav(path, audio)
    return Conversation(label, path, turns, len(audio) / SAMPLE_RATE)


def build_all(audio_dir: Path, dest_dir: Path) -> list[Conversation]:
    return [build(audio_dir, dest_dir, name, clips, pauses=p) for name, clips in SEQUENCES.items() for p in (True, False)]
