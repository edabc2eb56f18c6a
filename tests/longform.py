"""A long-form recording built from real speech, and how much of it a transcript kept.

The shape that hides lost speech: several real speakers' clips (jfk + the 7 FLEURS clips in
../shared/data/audio) joined into one file with 2–4 s pauses between them and a long
stretch of silence in the middle, the way a call or a live stream has pauses and breaks.
On short single clips every decoding mode looks fine; on this file a mode that drops a
whole passage shows it (STACK-NOTES: batched decoding lost 2 of 4 passages).

Built at test/bench time into a temporary folder with PyAV (faster-whisper's own decoder)
and the standard `wave` module, so it needs neither ffmpeg nor any audio we commit.
Word recall is the share of reference words present in the transcript, in order
(difflib's matching blocks over normalised words): a dropped passage costs recall in full,
whereas WER mixes it with small mishearings.
"""
from __future__ import annotations

import difflib
import re
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

SAMPLE_RATE = 16_000
JFK_REFERENCE = ("And so my fellow Americans, ask not what your country can do for you, "
                 "ask what you can do for your country.")
PAUSES_S = (2.0, 3.0, 4.0, 2.5, 3.5, 3.0, 2.0)  # between consecutive clips
SILENCE_S = 30.0  # one long break (a host away from the microphone), after the 4th clip
LEAD_S = 1.0
TARGET_RMS = 0.05  # ≈ -26 dBFS speech; FLEURS clips as shipped are up to 40 dB quieter than jfk
# Each speaker at their own level, as on a call (a ±9 dB spread, not the 40 dB of the raw clips,
# which no single recording has: the quietest raw clip is barely above digital silence).
GAINS_DB = (0.0, -6.0, 3.0, -3.0, -9.0, 2.0, -4.0, 0.0)


class Passage(NamedTuple):
    name: str
    text: str  # reference words
    start: float  # seconds in the joined file
    end: float


class LongForm(NamedTuple):
    path: Path
    passages: list[Passage]
    duration_s: float

    @property
    def reference(self) -> str:
        return " ".join(p.text for p in self.passages)


def clips(audio_dir: Path) -> list[tuple[Path, str]]:
    """(clip, reference text) for jfk and every FLEURS clip that has its .txt."""
    out: list[tuple[Path, str]] = []
    if (audio_dir / "jfk.flac").exists():
        out.append((audio_dir / "jfk.flac", JFK_REFERENCE))
    for ogg in sorted((audio_dir / "fleurs_en").glob("*.ogg")):
        ref = ogg.with_suffix(".txt")
        if ref.exists():
            out.append((ogg, ref.read_text().strip()))
    return out


def build(audio_dir: Path, dest: Path, *, even_loudness: bool = True) -> LongForm:
    # even_loudness=False keeps the clips' raw levels (a diagnostic: VAD misses the quietest).
    """Write the joined recording to `dest` (16 kHz mono WAV) and return where each passage lies."""
    import numpy as np
    from faster_whisper import decode_audio

    sources = clips(audio_dir)
    if len(sources) < 2:
        raise FileNotFoundError(f"needs jfk.flac and fleurs_en/*.ogg under {audio_dir}")
    pieces = [np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)]
    passages: list[Passage] = []
    t = LEAD_S
    for i, (path, text) in enumerate(sources):
        audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
        if even_loudness:
            level = TARGET_RMS * 10 ** (GAINS_DB[i % len(GAINS_DB)] / 20)
            audio = audio * (level / max(float(np.sqrt(np.mean(audio**2))), 1e-6))
        pieces.append(audio.astype(np.float32))
        length = len(audio) / SAMPLE_RATE
        passages.append(Passage(path.stem, text, t, t + length))
        t += length
        if i + 1 < len(sources):
            gap = PAUSES_S[i % len(PAUSES_S)] + (SILENCE_S if i == 3 else 0.0)
            pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
            t += gap
    pieces.append(np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32))
    pcm = (np.clip(np.concatenate(pieces), -1, 1) * 32767).astype("<i2")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return LongForm(dest, passages, len(pcm) / SAMPLE_RATE)


def normalize(text: str) -> list[str]:
    """Lower-case, drop punctuation (hyphens split words), split on spaces."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_recall(reference: str, hypothesis: str) -> float:
    """Share of the reference's words found in the hypothesis in the same order (0..1)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 1.0
    matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(ref)


def words_lost(reference: str, hypothesis: str) -> float:
    """Share of reference words with no counterpart at all in the hypothesis (0..1).

    Unlike 1 − recall this does not count a misheard word ("splendours" → "splinters") as lost:
    only words the alignment deletes, i.e. speech that left no trace in the transcript.
    """
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0
    lost = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_opcodes():
        if op == "delete":
            lost += i2 - i1
        elif op == "replace":
            lost += max(0, (i2 - i1) - (j2 - j1))
    return lost / len(ref)


def passage_recalls(fixture: LongForm, segments: Sequence) -> dict[str, float]:
    """Per passage: the word recall of the transcript's segments that overlap its time span.

    Timing counts: a passage's words heard but stamped elsewhere would deep-link wrongly.
    One second of slack on each side absorbs VAD padding and word-timing jitter.
    """
    out: dict[str, float] = {}
    for p in fixture.passages:
        heard = " ".join(s.text for s in segments if s.end >= p.start - 1.0 and s.start <= p.end + 1.0)
        out[p.name] = word_recall(p.text, heard)
    return out
