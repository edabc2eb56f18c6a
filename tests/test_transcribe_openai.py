"""The openai engine through the real `openai` client against the local fake OpenAI server."""
from __future__ import annotations

import subprocess

import pytest

from core.config import load_settings
from core.transcribe.audio import probe_duration
from core.transcribe.base import CorruptMedia, EngineUnavailable, NoSpeech
from core.transcribe.openai_api import (
    API_MAX_BYTES,
    PRICE_PER_MINUTE_USD,
    OpenAIAPIError,
    OpenAITranscriptionEngine,
    estimate_cost_usd,
)
from tests.conftest import require_binary, shared_path
from tests.fakes.openai_server import FakeOpenAI
from tests.test_transcribe_local import (
    FIRST,
    JFK,
    SECOND,
    corrupt_file,
    segment_with,
    silent_file,
    two_sentences_with_pause,
    wer,
)

pytestmark = pytest.mark.slow
TRANSCRIPTIONS = "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def fake():
    """One fake server per module (its whisper model loads once per process)."""
    require_binary("ffmpeg")
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.reset()
    fake.max_upload_bytes = API_MAX_BYTES


def engine_for(fake: FakeOpenAI, **kwargs) -> OpenAITranscriptionEngine:
    return OpenAITranscriptionEngine("test-key", base_url=fake.base_url, **kwargs)


@pytest.fixture(scope="module")
def paused_speech(tmp_path_factory):
    return two_sentences_with_pause(tmp_path_factory.mktemp("speech"))


def test_jfk_end_to_end(fake):
    transcript = engine_for(fake).transcribe(shared_path("audio", "jfk.flac"))
    assert wer(JFK, " ".join(s.text for s in transcript.segments)) <= 0.15
    assert (transcript.engine, transcript.model) == ("openai", "whisper-1")
    assert transcript.audio_seconds == pytest.approx(11.0, abs=1.0)  # what the API billed
    [upload] = fake.requests_to(TRANSCRIPTIONS)
    assert upload.files["file"][0] == "jfk.flac"  # small, accepted format: sent as-is
    assert upload.form["response_format"] == "verbose_json" and upload.form["model"] == "whisper-1"
    assert upload.headers["authorization"] == "Bearer test-key"


def test_over_the_limit_audio_is_split_at_silence_and_times_offset(fake, paused_speech):
    audio, second_starts = paused_speech
    total = probe_duration(audio)
    limit = 30_000  # ~6.9 s of 32 kbit/s MP3: the 10.9 s file must become two uploads
    fake.max_upload_bytes = limit  # the fake refuses anything bigger, like the real 25 MB gate
    progress: list[float] = []
    transcript = engine_for(fake, max_bytes=limit).transcribe(audio, progress=lambda d, t: progress.append(d))

    uploads = fake.requests_to(TRANSCRIPTIONS)
    assert len(uploads) == 2
    assert all(len(u.files["file"][1]) <= limit and u.files["file"][0].endswith(".mp3") for u in uploads)
    assert wer(f"{FIRST} {SECOND}", " ".join(s.text for s in transcript.segments)) <= 0.2
    # The second sentence was in the second upload: its times came back shifted to the original.
    eggs = segment_with(transcript, "eggs")
    assert second_starts - 0.6 <= eggs.start and eggs.end <= total + 0.3
    assert segment_with(transcript, "windy").end <= second_starts - 3.0
    assert all(a.start <= b.start for a, b in zip(transcript.segments, transcript.segments[1:]))
    assert progress[-1] == pytest.approx(total) and len(progress) == 2


def test_file_over_25_mb_is_compressed_before_upload(tmp_path):
    """A 26 MB WAV never reaches the API as is: it goes up as compact MP3 under the real limit."""
    ffmpeg = require_binary("ffmpeg")
    big = tmp_path / "long-talk.wav"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100",
                    "-ac", "2", "-t", "155", str(big)], check=True)
    assert big.stat().st_size > API_MAX_BYTES
    with FakeOpenAI(segments=[(0.5, 4.0, " canned words")]) as canned:
        transcript = OpenAITranscriptionEngine("k", base_url=canned.base_url).transcribe(big)
        [upload] = canned.requests_to(TRANSCRIPTIONS)
    assert upload.files["file"][0].endswith(".mp3") and len(upload.files["file"][1]) < API_MAX_BYTES / 10
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [(0.5, 4.0, "canned words")]


def test_forced_split_offsets_every_piece(tmp_path):
    """Canned answers make the offset arithmetic exact: each piece's 0.5 s lands at offset + 0.5."""
    ffmpeg = require_binary("ffmpeg")
    tone = tmp_path / "tone.wav"  # 3 s tone, 1 s silence, repeated: silences at 3–4, 7–8, …
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=300:sample_rate=16000,volume='if(lt(mod(t,4),3),1,0)':eval=frame",
                    "-t", "20", str(tone)], check=True)
    with FakeOpenAI(segments=[(0.5, 1.5, "piece")]) as canned:
        transcript = OpenAITranscriptionEngine("k", base_url=canned.base_url, max_bytes=40_000).transcribe(tone)
        uploads = canned.requests_to(TRANSCRIPTIONS)
    starts = [s.start for s in transcript.segments]
    assert len(uploads) == len(starts) >= 3
    offsets = [s - 0.5 for s in starts]
    assert offsets[0] == 0.0
    # Every cut sits inside a silence (3–4 s, 7–8 s, …), not in the middle of the tone.
    assert all(3.0 <= o % 4 <= 4.0 for o in offsets[1:]), offsets


def test_no_api_key_is_engine_unavailable(fake, tmp_path):
    eng = OpenAITranscriptionEngine.from_settings(load_settings(openai_api_key=None, data_dir=tmp_path))
    with pytest.raises(EngineUnavailable, match="OPENAI_API_KEY"):
        eng.transcribe(shared_path("audio", "jfk.flac"))
    assert fake.requests == []


def test_rate_limit_then_success(fake):
    fake.fail_next(1, status=429, retry_after=0.01)
    transcript = engine_for(fake).transcribe(shared_path("audio", "jfk.flac"))
    assert "country" in " ".join(s.text for s in transcript.segments).lower()
    assert len(fake.requests_to(TRANSCRIPTIONS, status=429)) == 1
    assert len(fake.requests_to(TRANSCRIPTIONS, status=200)) == 1


@pytest.mark.parametrize("status, retryable", [(429, True), (503, True), (400, False), (413, False)])
def test_api_errors_say_whether_to_retry(fake, status, retryable):
    fake.fail_next(3, status=status, retry_after=0.01)
    with pytest.raises(OpenAIAPIError) as info:
        engine_for(fake, max_retries=1).transcribe(shared_path("audio", "jfk.flac"))
    assert (info.value.status_code, info.value.retryable) == (status, retryable)
    assert str(status) in str(info.value)


def test_wrong_key_is_not_retryable(tmp_path):
    with FakeOpenAI(api_key="the-right-key", segments=[(0, 1, "x")]) as guarded:
        with pytest.raises(OpenAIAPIError, match="refused the API key") as info:
            OpenAITranscriptionEngine("wrong", base_url=guarded.base_url).transcribe(shared_path("audio", "jfk.flac"))
    assert info.value.retryable is False


def test_server_down_is_engine_unavailable():
    with FakeOpenAI() as gone:
        url = gone.base_url
    with pytest.raises(EngineUnavailable, match="cannot reach"):
        OpenAITranscriptionEngine("k", base_url=url, max_retries=0).transcribe(shared_path("audio", "jfk.flac"))


def test_silent_and_corrupt_files_cost_nothing(fake, tmp_path):
    with pytest.raises(NoSpeech):
        engine_for(fake).transcribe(silent_file(tmp_path / "silence.wav"))
    with pytest.raises(CorruptMedia, match="broken.mp3"):
        engine_for(fake).transcribe(corrupt_file(tmp_path / "broken.mp3"))
    assert fake.requests_to(TRANSCRIPTIONS, status=None) == []


def test_text_only_model_gets_one_timed_segment_per_piece(fake, paused_speech):
    audio, _ = paused_speech
    transcript = engine_for(fake, model="gpt-4o-mini-transcribe").transcribe(audio)
    [upload] = fake.requests_to(TRANSCRIPTIONS)
    assert upload.form["response_format"] == "json"
    [segment] = transcript.segments
    assert (segment.start, segment.end) == (0.0, pytest.approx(probe_duration(audio)))
    assert wer(f"{FIRST} {SECOND}", segment.text) <= 0.2


def test_prices():
    assert PRICE_PER_MINUTE_USD == {"whisper-1": 0.006, "gpt-4o-mini-transcribe": 0.003, "gpt-4o-transcribe": 0.006}
    assert estimate_cost_usd("whisper-1", 600) == pytest.approx(0.06)
    assert estimate_cost_usd("gpt-4o-mini-transcribe-2025-03-20", 60) == pytest.approx(0.003)
    assert estimate_cost_usd("unknown-model", 60) is None
