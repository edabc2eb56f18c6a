"""Worker plug-in for tests: `python -m core worker --plugin tests.fakes.queue_engines`.

Registers the stand-in engines of tests/fakes/fake_speech.py in the worker process: "local"
always; "openai" (a paid engine: the pipeline bills its audio_seconds) only when
FAKE_PAID_ENGINE=1 — otherwise the real OpenAI engine talks to tests/fakes/openai_server.
Import it only in a worker process: it replaces engines for the whole process.
"""
from __future__ import annotations

import os

from core.transcribe.registry import register_engine
from tests.fakes.fake_speech import FakeEngine

register_engine("local", lambda: FakeEngine("local", "fake-whisper"))
if os.environ.get("FAKE_PAID_ENGINE") == "1":
    register_engine("openai", lambda: FakeEngine("openai", "fake-whisper-1"))
