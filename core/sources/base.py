"""The one small protocol every source speaks (YouTube, Zoom, uploaded files).

Like yt-dlp's extractors: the pipeline asks a source for metadata, captions and audio
and never knows which source it is talking to.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from core.records import ItemInfo, Transcript


class SourceError(Exception):
    """A source could not give us an item. `retryable` says whether trying later may help."""

    retryable = False
    code = "source_error"

    def __init__(self, message: str, *, external_id: str | None = None):
        super().__init__(message)
        self.external_id = external_id


class BadInput(SourceError):
    code = "bad_input"  # malformed URL, unreadable file: the user must fix it


class Unavailable(SourceError):
    code = "unavailable"  # deleted, removed, never existed


class PrivateItem(SourceError):
    code = "private"


class MembersOnly(SourceError):
    code = "members_only"


class AgeRestricted(SourceError):
    code = "age_restricted"


class RegionBlocked(SourceError):
    code = "region_blocked"


class RateLimited(SourceError):
    """HTTP 429 or a bot wall: slow the whole source down, do not burn retries."""

    retryable = True
    code = "rate_limited"

    def __init__(self, message: str, *, external_id: str | None = None, retry_after_s: float | None = None):
        super().__init__(message, external_id=external_id)
        self.retry_after_s = retry_after_s


class TransientSourceError(SourceError):
    retryable = True
    code = "transient"


class SourceRefused(TransientSourceError):
    """The source refused the request (HTTP 403: an expired link, a missing PO token)."""

    code = "refused"


class NotStartedYet(TransientSourceError):
    """A live stream or premiere that has not ended: its recording comes later."""

    code = "not_started"


class SourceUnreachable(TransientSourceError):
    """The source itself did not answer (DNS, refused or reset connection, timeout, HTTP 5xx).

    Not about this item: several in a row trip the source's circuit breaker (core.backfill.breaker).
    """

    code = "unreachable"


class MediaSource(Protocol):
    kind: str  # "youtube" | "zoom" | "upload"

    def list_items(self) -> Iterator[ItemInfo]:
        """Everything the source currently offers (a channel listing, a month of recordings …)."""
        ...

    def fetch_metadata(self, external_id: str) -> ItemInfo: ...

    def fetch_captions(self, external_id: str) -> Transcript | None:
        """The source's own transcript if it has a good one (free), else None."""
        ...

    def fetch_audio(self, external_id: str, dest_dir: Path) -> Path:
        """Download the audio (or the whole media file) and return its path."""
        ...
