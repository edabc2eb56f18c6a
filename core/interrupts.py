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


_state = threading.local()  # held()'s depth and a deferred raise, per thread: handlers run in the main one
_received: str | None = None  # why the person stopped this process, for the code that must notice later


def received() -> str | None:
    """Why the person stopped this process, once they have (interrupt()); else None.

    The raise can be lost: one that lands in a garbage-collector callback is printed and dropped
    by Python, one inside a native extension's import comes back as another error. Code that
    runs on after it (the worker's next stage, ingest's progress bar) asks here."""
    return _received


def forget() -> None:
    """received() is None again (a test that raised a real signal in its own process)."""
    global _received
    _received = None


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
    global _received
    _received = why
    if getattr(_state, "depth", 0):
        _state.pending = why
        return
    raise Interrupted(why)
