"""A person's interrupt (Ctrl-C, SIGTERM, SIGHUP under `ingest`), held back while native code loads.

`ingest` raises the interrupt from its signal handler, in the main thread, wherever it is. Raised
while a native extension initialises (onnxruntime, which faster-whisper imports for its VAD as a
transcription starts; numpy or ctranslate2 under it), the extension reports an ImportError of its
own and prints a C-level traceback instead. Code that loads such extensions runs inside held();
an interrupt that arrives meanwhile is raised as soon as the outermost held() ends.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal) during `ingest`: handled as Ctrl-C is."""


_state = threading.local()  # per thread: signal handlers run in the main thread only


@contextmanager
def held() -> Iterator[None]:
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth
    pending = getattr(_state, "pending", None)
    if depth == 0 and pending is not None:
        _state.pending = None
        raise Interrupted(pending)


def interrupt(why: str) -> None:
    """Raise the interrupt now, or, inside held(), as soon as it ends (called by a signal handler)."""
    if getattr(_state, "depth", 0):
        _state.pending = why
        return
    raise Interrupted(why)
