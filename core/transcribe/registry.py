"""Engine names → engine objects. The pipeline and router look engines up here.

"captions" is not in this table: it is the source's own transcript (YouTube captions,
Zoom's VTT), asked of the source itself. Tests and plug-ins may register more engines.

Availability is decided here, once, for the router, the worker's capabilities, the admin
pages and the CLI: an engine that cannot run on this machine (the paid API without a key,
local whisper without weights) is simply not offered, so nothing is routed to it, no
attempt is burned on it and no retry job waits for it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from core.transcribe.base import EngineUnavailable, TranscriptionEngine

if TYPE_CHECKING:
    from core.config import Settings

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


def unavailable_reason(name: str, settings: Settings | None = None) -> str | None:
    """Why engine `name` cannot run on this machine (a sentence), or None when it can.

    Cheap: nothing is loaded or called; a model that fails to load later still fails then.
    """
    if name == "captions" or name in _FACTORIES:
        return None
    if settings is None:
        from core.config import get_settings

        settings = get_settings()
    if name == "local":
        from core.transcribe.local import unavailable_reason as local_reason

        return local_reason(settings)
    if name == "openai":
        from core.transcribe.openai_api import unavailable_reason as openai_reason

        return openai_reason(settings)
    return f"unknown transcription engine {name!r}"


def available_engines(names: Iterable[str], settings: Settings | None = None) -> list[str]:
    """`names` in order, without the engines that cannot run here."""
    return [n for n in names if unavailable_reason(n, settings) is None]


@lru_cache(maxsize=8)
def get_engine(name: str) -> TranscriptionEngine:
    """One engine object per name per process (models load once)."""
    factory = _FACTORIES.get(name)
    return factory() if factory else _builtin(name)
