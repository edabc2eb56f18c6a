"""Zoom cloud recordings as a source: the Server-to-Server OAuth client and `ZoomSource`.

Three layers, each usable alone:

* pure helpers that read Zoom's documented recording JSON (`parse_meeting`, `pick_audio_file`,
  `pick_transcript_file`, `month_windows`) — no network, no database;
* `ZoomClient`, the HTTP client: account-credentials token cached until it expires and
  refreshed once on a 401, recordings listed one calendar month per request with
  `next_page_token` paging, downloads with the webhook's `download_token` (or the access
  token), 429 answered by sleeping `Retry-After` (bounded), and a daily request cap checked
  *before* each call so we stop short of Zoom's quota instead of running into it;
* `ZoomSource`, the `MediaSource` the pipeline talks to. It finds a meeting's files in what
  the webhook or the sync stored on the item (`media_items.extra["zoom"]`), else asks the API.
"""
from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

import httpx

from core.config import Settings, get_settings
from core.records import ItemInfo, Transcript
from core.sources.base import RateLimited, SourceError, TransientSourceError, Unavailable

log = logging.getLogger(__name__)

# Zoom documents download tokens as valid for 24 hours; stop trusting one a little before.
DOWNLOAD_TOKEN_TTL = timedelta(hours=23)
PAGE_SIZE = 300  # the largest page Zoom's recordings list allows
# Video layouts to fall back to when there is no audio-only file, best for speech first.
MP4_PREFERENCE = (
    "shared_screen_with_speaker_view",
    "active_speaker",
    "speaker_view",
    "shared_screen_with_gallery_view",
    "gallery_view",
    "shared_screen",
)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ZoomNotConfigured(SourceError):
    code = "zoom_not_configured"


class ZoomAuthError(SourceError):
    """Zoom refused the app's credentials or scopes: a person must fix the app, retrying won't."""

    code = "zoom_auth"


class ZoomApiError(SourceError):
    code = "zoom_api"


class ZoomQuotaExceeded(RateLimited):
    """Our daily cap on Zoom requests is spent: try again after midnight UTC."""

    code = "zoom_quota"


# ---------------------------------------------------------------------------------------------
# Zoom's recording JSON → typed records (pure)
# ---------------------------------------------------------------------------------------------


class ZoomFile(NamedTuple):
    id: str
    file_type: str  # M4A | MP4 | TRANSCRIPT | CC | CHAT | TIMELINE | CSV | SUMMARY …
    recording_type: str  # audio_only | shared_screen_with_speaker_view | audio_transcript | closed_caption …
    download_url: str
    status: str  # completed | processing
    file_extension: str
    file_size: int | None = None
    play_url: str | None = None
    recording_start: datetime | None = None
    recording_end: datetime | None = None

    @property
    def ready(self) -> bool:
        return bool(self.download_url) and self.status.lower() in ("", "completed")


class ZoomMeeting(NamedTuple):
    uuid: str  # one occurrence of a meeting; our external_id
    meeting_id: str  # the (reusable) numeric meeting id
    topic: str
    start_time: datetime | None
    duration_s: float | None
    host_email: str | None
    host_id: str | None
    share_url: str | None
    files: tuple[ZoomFile, ...]


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_file(obj: Mapping[str, Any]) -> ZoomFile:
    size = obj.get("file_size")
    return ZoomFile(
        id=str(obj.get("id") or ""),
        file_type=str(obj.get("file_type") or "").upper(),
        recording_type=str(obj.get("recording_type") or "").lower(),
        download_url=str(obj.get("download_url") or ""),
        status=str(obj.get("status") or ""),
        file_extension=str(obj.get("file_extension") or obj.get("file_type") or "").upper(),
        file_size=int(size) if isinstance(size, (int, float)) else None,
        play_url=obj.get("play_url") or None,
        recording_start=_parse_time(obj.get("recording_start")),
        recording_end=_parse_time(obj.get("recording_end")),
    )


def parse_meeting(obj: Mapping[str, Any]) -> ZoomMeeting:
    """One meeting of a recordings list, a `GET /meetings/{id}/recordings` answer or a webhook's `object`."""
    uuid = obj.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise ValueError("a Zoom recording object without a uuid")
    files = tuple(parse_file(f) for f in obj.get("recording_files") or () if isinstance(f, Mapping))
    duration_s: float | None = None
    spans = [(f.recording_start, f.recording_end) for f in files if f.recording_start and f.recording_end]
    if spans:  # the recording's own length, to the second; `duration` is whole minutes of meeting
        duration_s = max(e for _, e in spans).timestamp() - min(s for s, _ in spans).timestamp()
    elif isinstance(obj.get("duration"), (int, float)):
        duration_s = float(obj["duration"]) * 60.0
    return ZoomMeeting(
        uuid=uuid,
        meeting_id=str(obj.get("id") or ""),
        topic=str(obj.get("topic") or "Zoom meeting"),
        start_time=_parse_time(obj.get("start_time")),
        duration_s=duration_s,
        host_email=obj.get("host_email") or None,
        host_id=obj.get("host_id") or None,
        share_url=obj.get("share_url") or None,
        files=files,
    )


def meeting_to_json(meeting: ZoomMeeting) -> dict[str, Any]:
    """The fields we keep, in Zoom's own shape (so `parse_meeting` reads them back).

    Passwords and passcodes in Zoom's payload are deliberately not kept.
    """

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "uuid": meeting.uuid,
        "id": meeting.meeting_id,
        "topic": meeting.topic,
        "start_time": iso(meeting.start_time),
        "duration": round(meeting.duration_s / 60) if meeting.duration_s else None,
        "host_email": meeting.host_email,
        "host_id": meeting.host_id,
        "share_url": meeting.share_url,
        "recording_files": [
            {
                "id": f.id,
                "file_type": f.file_type,
                "recording_type": f.recording_type,
                "download_url": f.download_url,
                "status": f.status,
                "file_extension": f.file_extension,
                "file_size": f.file_size,
                "play_url": f.play_url,
                "recording_start": iso(f.recording_start),
                "recording_end": iso(f.recording_end),
            }
            for f in meeting.files
        ],
    }


def pick_audio_file(meeting: ZoomMeeting) -> ZoomFile | None:
    """The audio-only M4A (smallest, all we need), else the best MP4 layout, else None."""
    ready = [f for f in meeting.files if f.ready]
    for f in ready:
        if f.file_type == "M4A" or f.recording_type == "audio_only":
            return f
    mp4s = [f for f in ready if f.file_type == "MP4"]
    for layout in MP4_PREFERENCE:
        for f in mp4s:
            if f.recording_type == layout:
                return f
    return mp4s[0] if mp4s else None


def pick_transcript_file(meeting: ZoomMeeting) -> ZoomFile | None:
    """Zoom's audio transcript (VTT with speaker names), else the meeting's closed captions."""
    ready = [f for f in meeting.files if f.ready]
    for f in ready:
        if f.file_type == "TRANSCRIPT" or f.recording_type == "audio_transcript":
            return f
    for f in ready:
        if f.file_type == "CC" or f.recording_type == "closed_caption":
            return f
    return None


def meeting_info(meeting: ZoomMeeting) -> ItemInfo:
    return ItemInfo(
        external_id=meeting.uuid,
        title=meeting.topic,
        url=meeting.share_url or "",  # no public page: hits open in the app's own player
        published_at=meeting.start_time,
        duration_s=meeting.duration_s,
        host=meeting.host_email or meeting.host_id,
    )


def month_windows(start: date, end: date) -> Iterator[tuple[date, date]]:
    """Split [start, end] (inclusive days) at calendar months: Zoom allows one month per request."""
    if end < start:
        return
    cursor = start
    while cursor <= end:
        next_month = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1)
        window_end = min(end, next_month - timedelta(days=1))
        yield cursor, window_end
        cursor = window_end + timedelta(days=1)


def parse_month(value: str) -> date:
    """'YYYY-MM' → the first day of that month (the back-fill CLI's unit)."""
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"{value!r} is not a month like 2024-03") from None


def month_end(first_day: date) -> date:
    return (first_day.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds, an HTTP date, or an ISO time.

    Zoom sends seconds for per-second limits and a reset time for its daily limits.
    """
    if not value:
        return None
    value = value.strip()
    now = now or datetime.now(timezone.utc)
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = _parse_time(value)
    if when is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def encode_meeting_uuid(uuid: str) -> str:
    """Path form of a meeting uuid. Zoom: a uuid starting with '/' or holding '//' is double-encoded."""
    once = quote(uuid, safe="")
    return quote(once, safe="") if uuid.startswith("/") or "//" in uuid else once


# ---------------------------------------------------------------------------------------------
# The daily request cap
# ---------------------------------------------------------------------------------------------


class RequestQuota(Protocol):
    def take(self) -> bool:
        """Count one request; False (and nothing counted) when today's allowance is spent."""
        ...


def _utc_day_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _seconds_to_midnight() -> float:
    now = datetime.now(timezone.utc)
    return (_utc_day_start(now) + timedelta(days=1) - now).total_seconds()


class MemoryQuota:
    """A per-process cap (tests, one-off CLI runs without a database)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._day = _utc_day_start()
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            today = _utc_day_start()
            if today != self._day:
                self._day, self.used = today, 0
            if self.used >= self.limit:
                return False
            self.used += 1
            return True


class DbQuota:
    """The cap shared by every process (UI, scheduler, webhook receiver), in `rate_buckets`.

    One atomic upsert per request: it only increments while below the limit, so two
    workers can never both take the last request of the day.
    """

    KEY = "zoom-api"

    def __init__(self, limit: int, session_scope: Callable[[], AbstractContextManager] | None = None):
        self.limit = limit
        if session_scope is None:
            from core.db import session_scope as default_scope

            session_scope = default_scope
        self._scope = session_scope

    def take(self) -> bool:
        from sqlalchemy import text

        with self._scope() as session:
            row = session.execute(
                text(
                    "INSERT INTO rate_buckets (key, window_start, calls) VALUES (:key, :day, 1) "
                    "ON CONFLICT (key, window_start) DO UPDATE SET calls = rate_buckets.calls + 1 "
                    "WHERE rate_buckets.calls < :limit RETURNING calls"
                ),
                {"key": self.KEY, "day": _utc_day_start(), "limit": self.limit},
            ).first()
        return row is not None

    def used_today(self) -> int:
        from sqlalchemy import text

        with self._scope() as session:
            value = session.execute(
                text("SELECT calls FROM rate_buckets WHERE key = :key AND window_start = :day"),
                {"key": self.KEY, "day": _utc_day_start()},
            ).scalar()
        return int(value or 0)


# ---------------------------------------------------------------------------------------------
# The HTTP client
# ---------------------------------------------------------------------------------------------


class ZoomClient:
    """Zoom's REST API with Server-to-Server OAuth. Thread-safe; one per process is enough."""

    def __init__(
        self,
        *,
        account_id: str | None,
        client_id: str | None,
        client_secret: str | None,
        api_base_url: str = "https://api.zoom.us/v2",
        oauth_url: str = "https://zoom.us/oauth/token",
        user_id: str = "me",
        quota: RequestQuota | None = None,
        max_retry_wait_s: float = 60.0,
        max_429_retries: int = 3,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._account_id = account_id
        self._client_id = client_id
        self._client_secret = client_secret
        self.api_base_url = api_base_url.rstrip("/")
        self.oauth_url = oauth_url
        self.user_id = user_id
        self.quota = quota or MemoryQuota(10_000)
        self.max_retry_wait_s = max_retry_wait_s
        self.max_429_retries = max_429_retries
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(30.0, read=120.0), follow_redirects=True, headers={"User-Agent": "chaffee-search"}
        )
        self._sleep = sleep
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic() after which the token is not used
        self._token_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, shared_quota: bool = True, **kwargs: Any) -> "ZoomClient":
        """The client the app uses; `shared_quota` counts requests in the database (all processes)."""
        settings = settings or get_settings()
        quota = kwargs.pop("quota", None)
        if quota is None:
            quota = DbQuota(settings.zoom_daily_request_limit) if shared_quota else MemoryQuota(
                settings.zoom_daily_request_limit
            )
        kwargs.setdefault("max_retry_wait_s", settings.zoom_max_retry_wait_s)
        return cls(
            account_id=settings.zoom_account_id,
            client_id=settings.zoom_client_id,
            client_secret=settings.zoom_client_secret,
            api_base_url=settings.zoom_api_base_url,
            oauth_url=settings.zoom_oauth_url,
            user_id=settings.zoom_user_id,
            quota=quota,
            **kwargs,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ZoomClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def configured(self) -> bool:
        return bool(self._account_id and self._client_id and self._client_secret)

    # -- OAuth -----------------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token, fetched once and reused until shortly before it expires."""
        with self._token_lock:
            if self._token and time.monotonic() < self._token_expires:
                return self._token
            if not self.configured:
                raise ZoomNotConfigured(
                    "Zoom is not connected: set ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET"
                )
            try:
                resp = self._http.post(
                    self.oauth_url,
                    params={"grant_type": "account_credentials", "account_id": self._account_id},
                    auth=(self._client_id or "", self._client_secret or ""),
                )
            except httpx.HTTPError as exc:
                raise TransientSourceError(f"cannot reach Zoom's token endpoint: {type(exc).__name__}") from None
            if resp.status_code == 429:
                raise RateLimited("Zoom's token endpoint is rate-limiting us",
                                  retry_after_s=parse_retry_after(resp.headers.get("Retry-After")))
            if resp.status_code >= 500:
                raise TransientSourceError(f"Zoom's token endpoint answered {resp.status_code}")
            if resp.status_code != 200:
                # Zoom's reason ("Invalid client_id or client_secret") never contains the secret.
                raise ZoomAuthError(f"Zoom refused the app credentials ({resp.status_code}: {_zoom_reason(resp)})")
            data = resp.json()
            token = data.get("access_token")
            if not token:
                raise ZoomAuthError("Zoom's token answer had no access_token")
            expires_in = float(data.get("expires_in") or 3600)
            # Renew a minute early (or halfway for short-lived tokens) so a call never races expiry.
            self._token = token
            self._token_expires = time.monotonic() + max(1.0, expires_in - min(60.0, expires_in / 2))
            return token

    def _forget_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token, self._token_expires = None, 0.0

    # -- one request -------------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
        download_token: str | None = None, stream: bool = False,
    ) -> httpx.Response:
        """Send with quota, token refresh on 401, Retry-After on 429. The caller closes a stream."""
        use_download_token = download_token is not None
        refreshed = False
        waits = 0
        while True:
            if not self.quota.take():
                raise ZoomQuotaExceeded(
                    "today's Zoom request allowance is spent (ZOOM_DAILY_REQUEST_LIMIT)",
                    retry_after_s=_seconds_to_midnight(),
                )
            token = download_token if use_download_token else self.access_token()
            request = self._http.build_request(method, url, params=params, headers={"Authorization": f"Bearer {token}"})
            try:
                resp = self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise TransientSourceError(f"Zoom request failed: {type(exc).__name__}") from None
            status = resp.status_code
            if status < 400:
                return resp
            if stream:
                resp.read()  # error bodies are small; read them for Zoom's reason
            resp.close()
            if status == 401 and not refreshed:
                refreshed = True
                if use_download_token:
                    # The webhook's token lasts 24 h; past that our own access token still works.
                    if not self.configured:
                        raise Unavailable("Zoom refused the download token and no API credentials are set")
                    use_download_token = False
                else:
                    self._forget_token(token)
                continue
            if status == 429:
                wait = parse_retry_after(resp.headers.get("Retry-After"))
                wait = 1.0 * 2**waits if wait is None else wait
                if waits >= self.max_429_retries or wait > self.max_retry_wait_s:
                    raise RateLimited(f"Zoom rate limit ({resp.headers.get('X-RateLimit-Type') or '429'})",
                                      retry_after_s=wait)
                log.info("Zoom asked us to wait %.1f s (429)", wait)
                self._sleep(wait)
                waits += 1
                continue
            if status == 401:
                raise ZoomAuthError(f"Zoom refused our token: {_zoom_reason(resp)}")
            if status == 404:
                raise Unavailable(f"Zoom: {_zoom_reason(resp)}")
            if status >= 500:
                raise TransientSourceError(f"Zoom answered {status}")
            if status in (400, 403) and "scope" in _zoom_reason(resp).lower():
                raise ZoomAuthError(f"the Zoom app lacks a scope: {_zoom_reason(resp)}")
            raise ZoomApiError(f"Zoom answered {status}: {_zoom_reason(resp)}")

    def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        resp = self._send("GET", f"{self.api_base_url}{path}", params=params)
        try:
            data = resp.json()
        except ValueError:
            raise TransientSourceError("Zoom answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise TransientSourceError("Zoom answered an unexpected JSON shape")
        return data

    # -- recordings ----------------------------------------------------------------------------------

    def list_recordings(self, start: date, end: date) -> Iterator[ZoomMeeting]:
        """Every cloud-recorded meeting that started between two days (inclusive), oldest window first."""
        user = quote(self.user_id, safe="@")
        for window_start, window_end in month_windows(start, end):
            page_token = ""
            while True:
                params = {"from": window_start.isoformat(), "to": window_end.isoformat(), "page_size": PAGE_SIZE}
                if page_token:
                    params["next_page_token"] = page_token
                data = self._get_json(f"/users/{user}/recordings", params)
                for obj in data.get("meetings") or ():
                    try:
                        yield parse_meeting(obj)
                    except ValueError:
                        log.warning("skipping a Zoom recording entry without a uuid")
                page_token = data.get("next_page_token") or ""
                if not page_token:
                    break

    def get_meeting(self, uuid: str) -> ZoomMeeting:
        """One meeting's recordings (fresh download URLs included)."""
        return parse_meeting(self._get_json(f"/meetings/{encode_meeting_uuid(uuid)}/recordings"))

    def download(self, url: str, dest: Path, *, download_token: str | None = None) -> Path:
        """Stream a recording file to `dest` (atomically: a half download is never taken for whole)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        resp = self._send("GET", url, download_token=download_token, stream=True)
        try:
            if "text/html" in resp.headers.get("content-type", ""):
                # A passcode or sign-in page instead of the file: not something to index.
                raise Unavailable("Zoom answered a web page instead of the recording file")
            with part.open("wb") as fh:
                for block in resp.iter_bytes(1 << 20):
                    fh.write(block)
        except httpx.HTTPError as exc:
            part.unlink(missing_ok=True)
            raise TransientSourceError(f"Zoom download broke off: {type(exc).__name__}") from None
        finally:
            resp.close()
        part.replace(dest)
        return dest

    def download_bytes(self, url: str, *, download_token: str | None = None) -> bytes:
        resp = self._send("GET", url, download_token=download_token)
        return resp.content

    def check(self) -> tuple[bool, str]:
        """Do the credentials work, and may the app read recordings? (One token + one list call.)"""
        if not self.configured:
            return False, "Not connected: set ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET."
        today = datetime.now(timezone.utc).date()
        try:
            self.access_token()
            data = self._get_json(
                f"/users/{quote(self.user_id, safe='@')}/recordings",
                {"from": today.replace(day=1).isoformat(), "to": today.isoformat(), "page_size": 1},
            )
        except SourceError as exc:
            return False, f"Zoom connection failed: {exc}"
        total = data.get("total_records")
        suffix = f" ({total} recorded meeting(s) this month)" if isinstance(total, int) else ""
        return True, f"Connected to Zoom: credentials work and recordings are readable{suffix}."


def _zoom_reason(resp: httpx.Response) -> str:
    """Zoom's own explanation from an error body ({"code", "message"} or {"reason", "error"})."""
    try:
        data = resp.json()
    except ValueError:
        return resp.reason_phrase or str(resp.status_code)
    if isinstance(data, dict):
        for key in ("message", "reason", "error_description", "error"):
            if isinstance(data.get(key), str) and data[key]:
                return data[key][:300]
    return resp.reason_phrase or str(resp.status_code)


# ---------------------------------------------------------------------------------------------
# The MediaSource
# ---------------------------------------------------------------------------------------------


class KnownMeeting(NamedTuple):
    """What we stored about a meeting when a webhook, the sync or an upload registered it."""

    meeting: ZoomMeeting | None
    download_token: str | None  # still fresh, else None
    transcript_path: Path | None  # an uploaded VTT
    media_path: Path | None = None  # the recording already on our disk (upload or earlier download)


def known_meeting(
    extra: Mapping[str, Any] | None, *, media_path: str | None = None, now: datetime | None = None
) -> KnownMeeting:
    """Read `media_items.extra["zoom"]` (written by core.zoom.events)."""
    zoom = (extra or {}).get("zoom") or {}
    meeting = None
    if isinstance(zoom.get("meeting"), Mapping):
        try:
            meeting = parse_meeting(zoom["meeting"])
        except ValueError:
            meeting = None
    token = zoom.get("download_token") or None
    received = _parse_time(zoom.get("download_token_at"))
    now = now or datetime.now(timezone.utc)
    if token and (received is None or now - received > DOWNLOAD_TOKEN_TTL):
        token = None
    transcript = Path(zoom["transcript_path"]) if zoom.get("transcript_path") else None
    return KnownMeeting(meeting, token, transcript, Path(media_path) if media_path else None)


def _safe_name(uuid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in uuid)[:80] or "meeting"


def parse_vtt(data: bytes | str) -> list:
    """Zoom's VTT → segments with speakers (the shared captions parser does the work)."""
    from core.transcribe.captions import parse_captions

    try:
        return parse_captions(data, "vtt")
    except ValueError:  # not a VTT after all: no free transcript, a transcription engine is asked
        log.warning("Zoom's transcript file is not WebVTT; ignoring it")
        return []


class ZoomSource:
    """Zoom recordings behind the one MediaSource protocol."""

    kind = "zoom"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: ZoomClient | None = None,
        lookup: Callable[[str], KnownMeeting] | None = None,
        window_days: int | None = None,
    ):
        self.settings = settings or get_settings()
        self._client = client
        self._lookup = lookup or self._lookup_in_db
        self.window_days = window_days or self.settings.zoom_sync_days

    @property
    def client(self) -> ZoomClient:
        if self._client is None:
            self._client = ZoomClient.from_settings(self.settings)
        return self._client

    # -- where a meeting's files are -----------------------------------------------------------

    @staticmethod
    def _lookup_in_db(uuid: str) -> KnownMeeting:
        from sqlalchemy import select

        from core.db import session_scope
        from core.models import MediaItem, Source

        with session_scope() as session:
            row = session.execute(
                select(MediaItem.extra, MediaItem.media_path)
                .join(Source)
                .where(Source.kind == "zoom", MediaItem.external_id == uuid)
            ).first()
        return known_meeting(row[0], media_path=row[1]) if row else known_meeting(None)

    def _meeting(self, uuid: str) -> KnownMeeting:
        known = self._lookup(uuid)
        if known.meeting is not None and known.meeting.files:
            return known
        if not self.client.configured:
            return known
        return known._replace(meeting=self.client.get_meeting(uuid))

    # -- MediaSource -----------------------------------------------------------------------------

    def list_items(self) -> Iterator[ItemInfo]:
        today = datetime.now(timezone.utc).date()
        for meeting in self.client.list_recordings(today - timedelta(days=self.window_days), today):
            if pick_audio_file(meeting) or pick_transcript_file(meeting):
                yield meeting_info(meeting)

    def fetch_metadata(self, external_id: str) -> ItemInfo:
        known = self._meeting(external_id)
        if known.meeting is None:
            raise Unavailable(f"no Zoom recording {external_id}", external_id=external_id)
        return meeting_info(known.meeting)

    def fetch_captions(self, external_id: str) -> Transcript | None:
        """Zoom's own transcript (free, with speaker names), or None so a paid engine is asked."""
        known = self._meeting(external_id)
        if known.transcript_path is not None and known.transcript_path.is_file():
            segments, model = parse_vtt(known.transcript_path.read_bytes()), "zoom:uploaded-vtt"
        else:
            file = pick_transcript_file(known.meeting) if known.meeting else None
            if file is None:
                return None
            data = self.client.download_bytes(file.download_url, download_token=known.download_token)
            segments, model = parse_vtt(data), f"zoom:{file.recording_type or file.file_type.lower()}"
        if not segments:
            return None
        self._keep_recording_for_playback(external_id, known)
        return Transcript(segments=segments, engine="captions", model=model,
                          audio_seconds=max(s.end for s in segments))

    def _keep_recording_for_playback(self, external_id: str, known: KnownMeeting) -> None:
        """With Zoom's transcript the pipeline never asks for the audio, yet the app's player
        plays meeting hits from our copy: fetch it now, unless hits open in Zoom instead."""
        if known.media_path is not None and known.media_path.is_file():
            return
        if self.settings.zoom_share_links and known.meeting is not None and known.meeting.share_url:
            return
        try:
            self.fetch_audio(external_id, self.settings.media_dir / "zoom")
        except SourceError as exc:  # the transcript is still good; playback falls back to the share link
            log.warning("could not keep the Zoom recording for playback: %s", exc)

    def fetch_audio(self, external_id: str, dest_dir: Path) -> Path:
        """The audio-only M4A, else an MP4; kept (not deleted) because the player serves it."""
        known = self._meeting(external_id)
        file = pick_audio_file(known.meeting) if known.meeting else None
        if file is None:
            raise Unavailable(f"Zoom has no audio or video file for {external_id}", external_id=external_id)
        suffix = "m4a" if file.file_type == "M4A" else (file.file_extension or "mp4").lower()
        dest = dest_dir / f"{_safe_name(external_id)}.{suffix}"
        path = self.client.download(file.download_url, dest, download_token=known.download_token)
        _remember_media_path(external_id, path)
        return path


def _remember_media_path(uuid: str, path: Path) -> None:
    """Point the item at its downloaded file: the player serves it, deletion removes it."""
    from sqlalchemy import select, update

    from core.db import session_scope
    from core.models import MediaItem, Source

    try:
        with session_scope() as session:
            zoom_sources = select(Source.id).where(Source.kind == "zoom").scalar_subquery()
            session.execute(
                update(MediaItem)
                .where(MediaItem.source_id.in_(zoom_sources), MediaItem.external_id == uuid)
                .values(media_path=str(path))
            )
    except Exception:  # the file is downloaded either way; playback can fall back to the share link
        log.warning("could not record the downloaded file of a Zoom meeting", exc_info=True)
