"""Who said it: speaker turns in audio, the host recognised by voice (issue #15).

The optional `speakers` extra (`make install-speakers`: torch, Resemblyzer, webrtcvad, librosa,
scikit-learn) runs it; without it every other part of the project works unchanged and
`available()` says what is missing.

Modules, one job each, in the order the data flows:
- voice.py: audio → voiced windows → one voice vector per window (Resemblyzer's encoder, its
  weights ship in its wheel: offline);
- turns.py: window vectors → speaker turns (clustering; pure numpy/scikit-learn);
- naming.py: turns → names (an enrolled profile's name when the voice matches, else "Guest N")
  and → the item's timed segments (a segment with a speaker from its transcript keeps it);
- store.py: profiles, segment speakers, the per-item pass record, renames (PostgreSQL);
- rechunk.py: the item's chunks cut again at speaker changes (no chunk joins two speakers);
- stage.py: the diarization stage over items (free, time-budgeted, resumable, re-runnable);
- admin.py: the admin's actions (enrol, rename, delete a profile, allow audio for captioned videos).
"""
from __future__ import annotations

import importlib.util

EXTRA = "speakers"
INSTALL_HINT = "make install-speakers"
# What the admin page says the extra adds when it is missing.
WHAT_IT_ADDS = (
    "Speaker turns: who speaks when in the audio the project transcribes, the host recognised by "
    "voice from an enrolled sample, other voices as \"Guest 1\", \"Guest 2\"… per video, and the "
    "search filter \"only the host speaking\"."
)
_MODULES = ("torch", "resemblyzer", "webrtcvad", "librosa", "sklearn")


def missing() -> list[str]:
    """The extra's modules that cannot be imported here (empty when diarization can run)."""
    return [m for m in _MODULES if importlib.util.find_spec(m) is None]


def available() -> bool:
    return not missing()


class ExtraMissing(RuntimeError):
    """Diarization was asked for on an install without the speakers extra."""

    def __init__(self) -> None:
        super().__init__(
            f"speaker turns need the optional speakers extra (missing: {', '.join(missing())}); "
            f"install it with `{INSTALL_HINT}`"
        )
