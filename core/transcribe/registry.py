"""Engine names → engine objects. The pipeline and router look engines up here.

"captions" is not in this table: it is the source's own transcript (YouTube captions,
Zoom's VTT), asked of the source itself. Tests and plug-ins may register more engines.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from core.transcribe.base import EngineUnavailable, TranscriptionEngine

_FACTORIES: dict[str, Callable[[], TranscriptionEngine]] = {}


def register_engine(name: str, factory: Callable[[], TranscriptionEngine]) -> None:
    _FACTORIES[name] = factory
    get_engine.cache_clear()


def _builtin(name: str) -> TranscriptionEngine:
    from core.config import get_settings

    settings = get_settings()
    if name == "local":
        from core.transcribe.local import LocalWhisperEngine

        return LocalWhisperEngine.from_settings(settings)
    if name == "openai":
        from core.transcribe.openai_api import OpenAITranscriptionEngine

        return OpenAITranscriptionEngine.from_settings(settings)
    raise EngineUnavailable(f"unknown transcription engine {name!r}")


@lru_cache(maxsize=8)
def get_engine(name: str) -> TranscriptionEngine:
    """One engine object per name per process (models load once)."""
    factory = _FACTORIES.get(name)
    return factory() if factory else _builtin(name)
