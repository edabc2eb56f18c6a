"""What kind of failure a run had, decided once from the exception's type, and its plain words.

The worker calls `classify` when it records a failure; the kind is stored with the job
(jobs.failure_cause) so the dead letter groups by it and the library shows it without
ever matching text at display time. Sources and engines raise typed errors
(core.sources.base, core.transcribe.base; the YouTube mapping reads yt-dlp's exception
chain, the Zoom client httpx's): this module only maps those types to FailureCause.
An exception may also name its kind itself with a `failure_cause` attribute (the
worker's JobTimeout, the pipeline's NoUsableTranscript).
"""
from __future__ import annotations

from core.sources import base as src
from core.states import FailureCause
from core.transcribe import base as tr

# Most specific first: isinstance walks each class's parents (SourceUnreachable is a TransientSourceError).
_BY_TYPE: tuple[tuple[type[BaseException], FailureCause], ...] = (
    (src.RateLimited, FailureCause.RATE_LIMITED),
    (src.SourceUnreachable, FailureCause.SOURCE_UNREACHABLE),
    (src.PrivateItem, FailureCause.PRIVATE),
    (src.MembersOnly, FailureCause.PRIVATE),
    (src.AgeRestricted, FailureCause.PRIVATE),
    (src.Unavailable, FailureCause.REMOVED),
    (src.RegionBlocked, FailureCause.REGION_BLOCKED),
    (src.BadInput, FailureCause.BAD_INPUT),
    (src.SourceRefused, FailureCause.REFUSED),
    (src.NotStartedYet, FailureCause.NOT_STARTED),
    (tr.NoSpeech, FailureCause.NO_SPEECH),
    (tr.CorruptMedia, FailureCause.CORRUPT_MEDIA),
    (tr.TranscriptionError, FailureCause.ENGINE_FAILED),
)
# Source errors of a plug-in's own type, by their code (core.zoom.client's).
_BY_SOURCE_CODE = {"zoom_auth": FailureCause.REFUSED, "zoom_not_configured": FailureCause.REFUSED}


def classify(error: BaseException) -> FailureCause:
    """The kind of a failure, from the exception's type (never from its text)."""
    named = getattr(error, "failure_cause", None)
    if isinstance(named, FailureCause):
        return named
    for kind, cause in _BY_TYPE:
        if isinstance(error, kind):
            return cause
    if isinstance(error, src.SourceError):
        return _BY_SOURCE_CODE.get(error.code, FailureCause.OTHER)
    if isinstance(error, (ConnectionError, TimeoutError)):
        return FailureCause.SOURCE_UNREACHABLE
    return FailureCause.OTHER


UNCLASSIFIED = "Not classified (failed before causes were recorded)"
_SOURCE_NAMES = {"youtube": "YouTube", "zoom": "Zoom", "upload": "An uploaded file's folder"}
_ITEM_WORD = {"youtube": "Video", "zoom": "Meeting recording", "upload": "File"}


def source_name(kind: str | None) -> str:
    return _SOURCE_NAMES.get(kind or "", "The source")


def label(cause: FailureCause | str | None, source_kind: str | None = None) -> str:
    """A failure kind in the words of the person who has to act on it ("YouTube could not be reached")."""
    site = source_name(source_kind)
    item = _ITEM_WORD.get(source_kind or "", "Item")
    try:
        kind = FailureCause(cause) if cause else None
    except ValueError:
        kind = None
    words = {
        FailureCause.SOURCE_UNREACHABLE: f"{site} could not be reached",
        FailureCause.RATE_LIMITED: f"{site} is rate-limiting us (too many requests or a bot check)",
        FailureCause.PRIVATE: f"{item} is private, members-only or age-restricted",
        FailureCause.REMOVED: f"{item} is removed or does not exist",
        FailureCause.REGION_BLOCKED: f"{item} is blocked in our region",
        FailureCause.NOT_STARTED: f"{item} is a live stream or premiere that has not ended",
        FailureCause.REFUSED: f"{site} refused the request (permission or credentials)",
        FailureCause.BAD_INPUT: "The address or file is not usable",
        FailureCause.NO_SPEECH: "The recording holds no speech",
        FailureCause.CORRUPT_MEDIA: "The file cannot be decoded as audio",
        FailureCause.NO_TRANSCRIPT: "No allowed engine could transcribe it",
        FailureCause.ENGINE_FAILED: "The transcription engine failed",
        FailureCause.TIMED_OUT: "It ran past the job timeout",
        FailureCause.WORKER_LOST: "Its worker stopped answering (killed or crashed)",
        FailureCause.OTHER: "Another error (see the details)",
    }
    return words[kind] if kind is not None else UNCLASSIFIED


def advice(cause: FailureCause | str | None) -> str:
    """What retrying a group will do, in one sentence."""
    try:
        kind = FailureCause(cause) if cause else FailureCause.OTHER
    except ValueError:
        kind = FailureCause.OTHER
    if kind in (FailureCause.SOURCE_UNREACHABLE, FailureCause.RATE_LIMITED, FailureCause.WORKER_LOST,
                FailureCause.TIMED_OUT, FailureCause.ENGINE_FAILED, FailureCause.NOT_STARTED):
        return "Usually passes: retry once the cause is gone."
    if kind in (FailureCause.PRIVATE, FailureCause.REFUSED):
        return "Retry after giving the app access (cookies, credentials), else discard."
    if kind in (FailureCause.REMOVED, FailureCause.BAD_INPUT, FailureCause.NO_SPEECH, FailureCause.CORRUPT_MEDIA):
        return "Retrying will not help: discard."
    return "Read the details, then retry or discard."
