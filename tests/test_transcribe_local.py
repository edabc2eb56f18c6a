"""The local engine: real faster-whisper (bundled tiny.en) on synthesized and real speech."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from core.config import load_settings
from core.transcribe.audio import probe_duration
from core.transcribe.base import CorruptMedia, EngineUnavailable, NoSpeech
from core.transcribe.local import LocalWhisperEngine, resolve_device
from tests.conftest import require_binary, shared_path

pytestmark = pytest.mark.slow

FIRST = "The weather today is cold and windy."
SECOND = "Please remember to bring fresh eggs and butter from the market."
PAUSE_S = 4.0
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


# --- helpers shared with test_transcribe_openai ----------------------------------------------


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance / reference words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diag, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)] / max(1, len(ref))


def speak(text: str, dest: Path) -> Path:
    require_binary("espeak-ng")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(dest), text], check=True)
    return dest


def two_sentences_with_pause(folder: Path) -> tuple[Path, float]:
    """FIRST, PAUSE_S of silence, SECOND as one WAV; returns it and where SECOND starts."""
    ffmpeg = require_binary("ffmpeg")
    a, b = speak(FIRST, folder / "a.wav"), speak(SECOND, folder / "b.wav")
    out = folder / "two.wav"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(a), "-f", "lavfi", "-t", str(PAUSE_S), "-i",
                    "anullsrc=r=22050:cl=mono", "-i", str(b), "-filter_complex", "[0:a][1:a][2:a]concat=n=3:v=0:a=1",
                    str(out)], check=True)
    return out, probe_duration(a) + PAUSE_S


def silent_file(dest: Path, seconds: float = 8.0) -> Path:
    ffmpeg = require_binary("ffmpeg")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-t", str(seconds), "-i",
                    "anullsrc=r=16000:cl=mono", str(dest)], check=True)
    return dest


def corrupt_file(dest: Path) -> Path:
    dest.write_bytes(os.urandom(64_000))
    return dest


def segment_with(transcript, word: str):
    found = [s for s in transcript.segments if word in words(s.text)]
    assert found, f"{word!r} not heard in {[s.text for s in transcript.segments]}"
    return found[0]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> LocalWhisperEngine:
    # No ffprobe needed: durations are read with PyAV when the program is missing.
    eng = LocalWhisperEngine(device="cpu", cpu_threads=2)
    eng.load()  # once per module
    return eng


@pytest.fixture(scope="module")
def paused_speech(tmp_path_factory) -> tuple[Path, float]:
    return two_sentences_with_pause(tmp_path_factory.mktemp("speech"))


# --- tests --------------------------------------------------------------------------------------


def test_synthesized_speech_words_and_times(engine, paused_speech):
    audio, second_starts = paused_speech
    total = probe_duration(audio)
    seen: list[tuple[float, float | None]] = []
    transcript = engine.transcribe(audio, progress=lambda done, of: seen.append((done, of)))

    assert transcript.engine == "local" and transcript.model == "tiny.en"
    assert transcript.audio_seconds == pytest.approx(total, abs=0.1)
    assert wer(f"{FIRST} {SECOND}", " ".join(s.text for s in transcript.segments)) <= 0.2
    # The first sentence is found before the pause, the second inside its own span after it.
    windy, eggs = segment_with(transcript, "windy"), segment_with(transcript, "eggs")
    assert windy.end <= second_starts - PAUSE_S + 0.6
    assert second_starts - 0.6 <= eggs.start and eggs.end <= total + 0.3
    assert all(0 <= s.start <= s.end <= total + 0.3 for s in transcript.segments)
    assert all(type(s.start) is float and type(s.end) is float for s in transcript.segments)  # JSON-safe
    # Progress moves forward and ends at the full length.
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (pytest.approx(total, abs=0.01), pytest.approx(total, abs=0.01))


def test_batched_decoding_gives_the_same_words(paused_speech):
    """batched=True (a GPU box's choice; plain beam search is the default) must hear the same sentences."""
    audio, second_starts = paused_speech
    transcript = LocalWhisperEngine(device="cpu", cpu_threads=2, batched=True).transcribe(audio)
    assert wer(f"{FIRST} {SECOND}", " ".join(s.text for s in transcript.segments)) <= 0.2
    assert segment_with(transcript, "eggs").start >= second_starts - 0.6


def test_real_speech_jfk(engine):
    transcript = engine.transcribe(shared_path("audio", "jfk.flac"))
    text = " ".join(s.text for s in transcript.segments)
    assert wer(JFK, text) <= 0.15, text
    assert transcript.audio_seconds == pytest.approx(11.0, abs=0.1)
    assert transcript.segments[0].start < 1.0 and transcript.segments[-1].end <= 11.1


def test_silence_is_no_speech_not_invented_text(engine, tmp_path):
    with pytest.raises(NoSpeech, match="no speech found in silence.wav"):
        engine.transcribe(silent_file(tmp_path / "silence.wav"))


def test_corrupt_file_is_corrupt_media(engine, tmp_path):
    with pytest.raises(CorruptMedia, match="broken.mp3"):
        engine.transcribe(corrupt_file(tmp_path / "broken.mp3"))


def test_missing_file_is_corrupt_media(engine, tmp_path):
    with pytest.raises(CorruptMedia, match="no such media file"):
        engine.transcribe(tmp_path / "nothing.mp3")


def test_from_settings_and_unavailable_model(tmp_path):
    settings = load_settings(whisper_model="", whisper_device="cpu", whisper_cpu_threads=2, data_dir=tmp_path)
    eng = LocalWhisperEngine.from_settings(settings)
    assert (eng.name, eng.model_name, eng.cpu_threads) == ("local", "tiny.en", 2)
    # A named model that is neither cached nor downloadable (offline) says what to do.
    big = LocalWhisperEngine.from_settings(load_settings(whisper_model="small.en", whisper_device="cpu",
                                                         data_dir=tmp_path))
    assert big.model_name == "small.en"
    with pytest.raises(EngineUnavailable, match="small.en.*(offline|bundled tiny.en)"):
        big.load()


def test_device_choice():
    import ctranslate2

    assert resolve_device("cpu") == ("cpu", "int8")
    if ctranslate2.get_cuda_device_count() > 0:
        assert resolve_device("auto") == ("cuda", "float16")
    else:
        assert resolve_device("auto") == ("cpu", "int8")
        with pytest.raises(EngineUnavailable, match="no CUDA device"):
            resolve_device("cuda")
