"""Stand-in transcription engines for queue/worker tests (registered by tests/fakes/queue_engines.py).

They replace the speech model, not our code: the real pipeline, queue, budget and worker
run around them. Each "audio" file may be a JSON spec saying how the engine behaves:

    {"seconds": 300,            # audio length: paid engines bill this
     "fail_times": 2,           # fail the first N calls (counted in a file beside it) …
     "fail": "retryable",       # … with a retryable or "permanent" error
     "sleep": 0.0,              # seconds to take (first call only if "sleep_times": 1)
     "marker": "/path",         # touched when a call starts (tests wait for it, then kill -9)
     "fetch": "http://…",       # GET this first, as a source download (bench/soak.py's fake YouTube);
                                #   unreachable → a retryable TransientSourceError
     "rate_limited": 120}       # answer like YouTube's 429 (a RateLimited source error, Retry-After s)

Any other file (real audio) is treated as {"seconds": <its WAV length or 60>}. The text is
speech-like (≈150 words a minute of varied words) and different for every file, so the
quality gates pass and no two items look like duplicates.

Every call is logged to $FAKE_ENGINE_LOG as "engine<TAB>file<TAB>unix time<TAB>pid".
Importing this module registers nothing: `--plugin tests.fakes.queue_engines` does.
"""
from __future__ import annotations

import json
import os
import random
import time
import wave
from pathlib import Path

from core.records import Segment, Transcript
from core.sources.base import RateLimited
from core.transcribe.base import CorruptMedia, EngineUnavailable

_WORDS = (
    "meat fat protein energy body brain sleep sunlight heart muscle bone blood sugar insulin ketone "
    "fasting breakfast dinner steak eggs butter salt water coffee tea fruit plant fiber oxalate "
    "inflammation autoimmune arthritis migraine depression anxiety focus memory weight strength "
    "athlete rugby training recovery doctor patient study trial evidence science history ancestor "
    "hunter evolution human species tooth jaw skull gut microbiome digestion stomach acid enzyme "
    "vitamin mineral iron zinc magnesium sodium potassium collagen liver kidney organ marrow broth "
    "question answer listener caller email story family child mother father friend community "
    "morning evening week month year decade clinic hospital surgery nerve spine injury pain "
    "cholesterol artery pressure hormone testosterone thyroid cortisol stress calm joy habit change "
    "simple clear strong fresh natural modern ancient wild healthy sick better worse slowly quickly "
    "really actually basically usually never always often sometimes maybe certainly probably "
    "think know believe explain show understand remember eat drink cook buy grow hunt run lift walk"
).split()


def speech_like(seed: str, seconds: float, *, segment_s: float = 6.0, wpm: float = 150.0) -> list[Segment]:
    rng = random.Random(seed)
    segments = []
    start = 0.0
    while start < seconds - 0.5:
        end = min(seconds, start + segment_s)
        n = max(3, round((end - start) / 60.0 * wpm))
        words = [rng.choice(_WORDS) for _ in range(n)]
        segments.append(Segment(start, end, " ".join(words).capitalize() + "."))
        start = end
    return segments


def _spec(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        with wave.open(str(path)) as w:
            return {"seconds": w.getnframes() / w.getframerate()}
    except (wave.Error, EOFError):
        return {"seconds": 60.0}


def _fetch(url: str) -> None:
    import urllib.request

    from core.sources.base import TransientSourceError

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
    except OSError as exc:
        raise TransientSourceError(f"could not reach {url}: {exc}") from exc


def _count_call(path: Path) -> int:
    counter = path.with_name(path.name + ".calls")
    # O_APPEND writes of one byte are atomic: the count survives processes and kill -9.
    with open(counter, "ab") as fh:
        fh.write(b".")
    return counter.stat().st_size


class _SpecError(EngineUnavailable):
    pass


class _Permanent(CorruptMedia):
    pass


class FakeEngine:
    def __init__(self, name: str, model: str):
        self.name = name
        self.model = model

    def transcribe(self, audio_path: Path, *, progress=None) -> Transcript:
        audio_path = Path(audio_path)
        spec = _spec(audio_path)
        calls = _count_call(audio_path)
        log = os.environ.get("FAKE_ENGINE_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{self.name}\t{audio_path.name}\t{time.time():.6f}\t{os.getpid()}\n")
        if spec.get("fetch"):
            _fetch(spec["fetch"])
        if spec.get("marker"):
            Path(spec["marker"]).write_text(str(os.getpid()))
        if spec.get("sleep") and calls <= int(spec.get("sleep_times", 10**9)):
            time.sleep(float(spec["sleep"]))
        if spec.get("rate_limited"):
            raise RateLimited("HTTP Error 429: Too Many Requests", retry_after_s=float(spec["rate_limited"]))
        if calls <= int(spec.get("fail_times", 0)):
            if spec.get("fail") == "permanent":
                raise _Permanent(f"{audio_path.name}: undecodable on purpose")
            raise _SpecError(f"{audio_path.name}: failing on purpose (call {calls})")
        seconds = float(spec.get("seconds", 60.0))
        return Transcript(speech_like(audio_path.name, seconds), engine=self.name, model=self.model, audio_seconds=seconds)
