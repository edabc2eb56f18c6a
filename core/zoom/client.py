"""Zoom's REST API with Server-to-Server OAuth, and the daily request cap.

The account-credentials token is cached until it expires and refreshed once on a 401;
recordings are listed one calendar month per request with `next_page_token` paging;
downloads use the webhook's `download_token` (or the access token); a 429 is answered by
sleeping `Retry-After` (bounded); and a daily request cap is checked *before* each call so
we stop short of Zoom's quota instead of running into it.
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
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from core.config import Settings, get_settings
from core.sources.base import RateLimited, SourceError, SourceUnreachable, TransientSourceError, Unavailable
from core.zoom.records import ZoomMeeting, encode_meeting_uuid, month_windows, parse_meeting, parse_time

log = logging.getLogger(__name__)

PAGE_SIZE = 300  # the largest page Zoom's recordings list allows


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
    when = parse_time(value)
    if when is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())



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
                raise SourceUnreachable(f"cannot reach Zoom's token endpoint: {type(exc).__name__}") from None
            if resp.status_code == 429:
                raise RateLimited("Zoom's token endpoint is rate-limiting us",
                                  retry_after_s=parse_retry_after(resp.headers.get("Retry-After")))
            if resp.status_code >= 500:
                raise SourceUnreachable(f"Zoom's token endpoint answered {resp.status_code}")
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
            token = download_token if use_download_token and download_token is not None else self.access_token()
            request = self._http.build_request(method, url, params=params, headers={"Authorization": f"Bearer {token}"})
            try:
                resp = self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise SourceUnreachable(f"Zoom request failed: {type(exc).__name__}") from None
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
                raise SourceUnreachable(f"Zoom answered {status}")
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
            raise SourceUnreachable(f"Zoom download broke off: {type(exc).__name__}") from None
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


