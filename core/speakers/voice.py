"""Audio → voiced windows → one voice vector per window, with Resemblyzer's voice encoder.

The encoder (a 3-layer LSTM, 256-d unit vectors, trained on 1.6 s "partial utterances") ships
inside the `resemblyzer` wheel, so this runs offline. We do not use its `preprocess_wav`:
it cuts silences out of the waveform, which would move every later second; instead silence
is masked (webrtcvad, as Resemblyzer itself does) and windows that are mostly silence are
left out, so a window's time is its time in the recording.

Loudness: the encoder reads a mel *power* spectrogram, so its vectors move with level. Each
stretch of speech between pauses is brought to the encoder's training level (-30 dBFS), as
Resemblyzer's own preprocessing does for a whole utterance: a quiet caller and a loud host
are compared by voice, not by volume.
"""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

SAMPLE_RATE = 16_000
FRAME_S = 0.010  # one mel frame (Resemblyzer's hop)
WINDOW_FRAMES = 160  # 1.6 s: the encoder's partial utterance
WINDOW_S = WINDOW_FRAMES * FRAME_S
HOP_S = 0.6  # between window starts: a turn change is placed within ≈ half of this (bench/speakers.py)
MIN_VOICED = 0.7  # a window needs this share of voiced frames to count (half-silent windows drift)
VAD_FRAME_S = 0.030
VAD_MODE = 3  # webrtcvad's strictest: music and breath are not speech
TARGET_DBFS = -30.0
ENCODER = "resemblyzer-0.1.4"  # stored with each profile: vectors of two encoders never mix
BATCH = 128


class Windows(NamedTuple):
    """Voice vectors of the voiced windows of one recording, in time order."""

    starts: np.ndarray  # seconds
    vectors: np.ndarray  # (n, 256) float32, unit length
    duration_s: float
    speech: list[tuple[float, float]]  # voiced stretches (start, end), seconds

    @property
    def centers(self) -> np.ndarray:
        return self.starts + WINDOW_S / 2


class OutOfTime(Exception):
    """The time budget ran out before the recording was embedded; `vectors` holds the windows
    done so far (in order), for embed_windows(done=…) to continue from."""

    def __init__(self, message: str, vectors: np.ndarray):
        super().__init__(message)
        self.vectors = vectors


def load_audio(path: Path | str) -> np.ndarray:
    """The recording as 16 kHz mono float32 (PyAV, through faster-whisper's decoder: no ffmpeg)."""
    from faster_whisper import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)


@lru_cache(maxsize=1)
def encoder():
    """The packaged voice encoder, loaded once per process (≈ 17 MB of weights)."""
    import torch
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device="cuda" if torch.cuda.is_available() else "cpu", verbose=False)


def voiced_frames(wav: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: is it speech? webrtcvad on 30 ms frames, smoothed and widened a little
    (Resemblyzer's own settings: a moving average of 8, then 6 frames of dilation)."""
    import webrtcvad
    from scipy.ndimage import binary_dilation

    step = int(VAD_FRAME_S * SAMPLE_RATE)
    n = len(wav) // step
    wav = _gain_for_vad(wav, step)
    pcm = (np.clip(wav[: n * step], -1, 1) * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(VAD_MODE)
    flags = np.array([vad.is_speech(pcm[i * step * 2:(i + 1) * step * 2], SAMPLE_RATE) for i in range(n)], dtype=float)
    if n == 0:
        return np.zeros(len(wav) // int(FRAME_S * SAMPLE_RATE), dtype=bool)
    smooth = np.convolve(flags, np.ones(8) / 8, mode="same") >= 0.5
    smooth = binary_dilation(smooth, np.ones(7))
    per_frame = np.repeat(smooth, int(round(VAD_FRAME_S / FRAME_S)))
    total = len(wav) // int(FRAME_S * SAMPLE_RATE)
    return np.pad(per_frame, (0, max(0, total - len(per_frame))))[:total]


def _gain_for_vad(wav: np.ndarray, step: int) -> np.ndarray:
    """The recording scaled so its loud frames sit near -20 dBFS: webrtcvad's thresholds are
    absolute, and a quietly recorded file (FLEURS clips as shipped lie 30–40 dB below jfk)
    would otherwise read as silence from end to end."""
    n = len(wav) // step
    if n == 0:
        return wav
    rms = np.sqrt(np.mean(wav[: n * step].reshape(n, step) ** 2, axis=1))
    loud = float(np.percentile(rms, 95))
    return wav * (10 ** (-20 / 20) / loud) if loud > 1e-6 else wav


def stretches(mask: np.ndarray, frame_s: float = FRAME_S) -> list[tuple[float, float]]:
    """Runs of True in a per-frame mask as (start, end) seconds."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(float(a * frame_s), float(b * frame_s)) for a, b in zip(starts, ends)]


def _level(wav: np.ndarray, speech: list[tuple[float, float]]) -> np.ndarray:
    """Each voiced stretch at TARGET_DBFS (silence left as it is)."""
    out = wav.copy()
    for a, b in speech:
        i, j = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
        rms = float(np.sqrt(np.mean(out[i:j] ** 2))) if j > i else 0.0
        if rms > 1e-5:
            out[i:j] *= 10 ** (TARGET_DBFS / 20) / rms
    return out


N_FFT = 400  # 25 ms at 16 kHz (Resemblyzer's mel_window_length)
N_MELS = 40


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """Slaney-style mel filterbank (N_MELS × N_FFT/2+1), the one librosa.filters.mel builds
    by default. Written out because librosa's first call compiles numba code for ≈ 15–20 s
    on this machine, in every new process; the result matched librosa's to 1e-7."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=float)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), lin)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=float)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), (200.0 / 3) * m)

    fft_freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram, 25 ms Hann windows every 10 ms, centred: what
    resemblyzer.audio.wav_to_mel_spectrogram computes (not a log-mel)."""
    hop = int(FRAME_S * SAMPLE_RATE)
    y = np.pad(wav.astype(np.float32), N_FFT // 2)
    n = 1 + (len(y) - N_FFT) // hop
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::hop][:n]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as scipy's get_window
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return (power @ _mel_filters().T).astype(np.float32)


def embed_windows(
    wav: np.ndarray, *, hop_s: float = HOP_S, deadline: float | None = None, done: np.ndarray | None = None
) -> Windows:
    """One voice vector per voiced 1.6 s window, windows `hop_s` apart.

    `deadline` (time.monotonic()) stops the work with OutOfTime: the stage's time budget.
    `done`: the vectors of the first windows from an earlier, interrupted run (same audio,
    same hop): the windows are the same, so only the rest is computed.
    """
    import torch

    duration = len(wav) / SAMPLE_RATE
    mask = voiced_frames(wav)
    speech = stretches(mask)
    mel = mel_spectrogram(_level(wav, speech))  # (frames, 40)
    n = min(len(mel), len(mask))
    hop = max(1, int(round(hop_s / FRAME_S)))
    # Windows that cover the recording's end partly are kept when they are voiced enough.
    firsts = [s for s in range(0, max(1, n - WINDOW_FRAMES + 1), hop)
              if mask[s:s + WINDOW_FRAMES].mean() >= MIN_VOICED]
    if not firsts:
        return Windows(np.zeros(0), np.zeros((0, 256), np.float32), duration, speech)
    enc = encoder()
    vectors = [done] if done is not None and 0 < len(done) <= len(firsts) else []
    with torch.no_grad():
        for b in range(len(vectors[0]) if vectors else 0, len(firsts), BATCH):
            if deadline is not None and time.monotonic() > deadline:
                raise OutOfTime(f"embedded {b} of {len(firsts)} voice windows before the time budget ran out",
                                np.concatenate(vectors) if vectors else np.zeros((0, 256), np.float32))
            batch = np.stack([_window(mel, s) for s in firsts[b:b + BATCH]])
            vectors.append(enc(torch.from_numpy(batch).to(enc.device)).cpu().numpy())
    return Windows(np.array(firsts) * FRAME_S, np.concatenate(vectors).astype(np.float32), duration, speech)


def _window(mel: np.ndarray, first: int) -> np.ndarray:
    piece = mel[first:first + WINDOW_FRAMES]
    if len(piece) < WINDOW_FRAMES:
        piece = np.pad(piece, ((0, WINDOW_FRAMES - len(piece)), (0, 0)))
    return piece


class Profile(NamedTuple):
    """A voice sample's vector: the mean of its windows' vectors, unit length."""

    vector: np.ndarray
    seconds: float  # voiced audio it was made from


class TooLittleSpeech(ValueError):
    """The sample has too little speech to make a voice profile; the message says how much."""


MIN_PROFILE_S = 3.0


def profile(wav: np.ndarray, start_s: float = 0.0, end_s: float | None = None) -> Profile:
    """The voice profile of one speaker's sample (a span of a recording, or a whole clip)."""
    piece = wav[int(start_s * SAMPLE_RATE): None if end_s is None else int(end_s * SAMPLE_RATE)]
    windows = embed_windows(piece, hop_s=0.2)
    voiced = sum(b - a for a, b in windows.speech)
    if len(windows.vectors) == 0 or voiced < MIN_PROFILE_S:
        raise TooLittleSpeech(
            f"the sample has {voiced:.1f} s of speech; a voice profile needs at least {MIN_PROFILE_S:.0f} s "
            "of one person speaking"
        )
    mean = windows.vectors.mean(axis=0)
    return Profile((mean / np.linalg.norm(mean)).astype(np.float32), round(voiced, 1))
