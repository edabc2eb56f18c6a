"""The one small protocol every transcription engine speaks."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from core.records import Transcript

# Called with (seconds of audio done, total seconds or None) while an engine works.
ProgressFn = Callable[[float, float | None], None]


class TranscriptionError(Exception):
    retryable = False


class NoSpeech(TranscriptionError):
    """The audio holds no speech (silence, music): nothing to index."""


class CorruptMedia(TranscriptionError):
    """The file cannot be decoded as audio."""


class EngineUnavailable(TranscriptionError):
    """The engine cannot run here (no API key, model missing, server down)."""

    retryable = True


class TranscriptionEngine(Protocol):
    name: str  # "local" | "openai"

    def transcribe(self, audio_path: Path, *, progress: ProgressFn | None = None) -> Transcript: ...
