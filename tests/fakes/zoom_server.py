"""A local fake Zoom on 127.0.0.1 that speaks the documented shapes, and a webhook sender.

FakeZoom serves:
  POST /oauth/token?grant_type=account_credentials&account_id=…   (Basic client_id:client_secret)
  GET  /v2/users/{user}/recordings?from=&to=&page_size=&next_page_token=   (≤ 1 month per request)
  GET  /v2/meetings/{meetingUUID}/recordings
  GET  /rec/download/{file_id}   needs `Authorization: Bearer <download_token | access_token>`,
                                 then redirects to a signed storage URL, as Zoom does
and counts every request, so tests can say how many calls the client made. `throttle()`
queues 429 answers with a Retry-After; `revoke_tokens()` makes the next API call get a 401.

ZoomWebhookSender signs bodies exactly as Zoom does (v0:{timestamp}:{raw body}, HMAC-SHA256).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Run an ASGI app under a real uvicorn on 127.0.0.1 (a free port); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


class FakeZoom:
    def __init__(
        self,
        *,
        account_id: str = "acct-123",
        client_id: str = "client-abc",
        client_secret: str = "client-secret-xyz",
        token_ttl_s: int = 3599,
        page_size_cap: int = 300,
    ):
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.token_ttl_s = token_ttl_s
        self.page_size_cap = page_size_cap
        self.base_url = ""
        self.meetings: list[dict[str, Any]] = []
        self._files: dict[str, tuple[bytes, str]] = {}  # file id → (bytes, content type)
        self._tokens: dict[str, float] = {}  # access token → expiry (epoch seconds)
        self.download_tokens: set[str] = set()
        self._pages: dict[str, tuple[str, str, int]] = {}
        self._throttle: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self.app = Starlette(
            routes=[
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/v2/users/{user}/recordings", self._list, methods=["GET"]),
                Route("/v2/meetings/{uuid:path}/recordings", self._meeting, methods=["GET"]),
                Route("/rec/download/{file_id}", self._download, methods=["GET"]),
                Route("/rec/storage/{file_id}", self._storage, methods=["GET"]),
            ]
        )
        self._server = None

    # -- running -------------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator["FakeZoom"]:
        with serve_asgi(self._counting(self.app)) as url:
            self.base_url = url
            yield self

    def _counting(self, app: Any) -> Any:
        async def wrapper(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            status = {"code": 0}

            async def send_wrapper(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            await app(scope, receive, send_wrapper)
            with self._lock:
                self.requests.append((scope["method"], scope["path"], status["code"]))

        return wrapper

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def oauth_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    def settings_overrides(self) -> dict[str, Any]:
        return {
            "zoom_account_id": self.account_id,
            "zoom_client_id": self.client_id,
            "zoom_client_secret": self.client_secret,
            "zoom_api_base_url": self.api_base_url,
            "zoom_oauth_url": self.oauth_url,
        }

    def count(self, path_prefix: str, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for _m, p, s in self.requests if p.startswith(path_prefix) and (status is None or s == status))

    # -- test controls ---------------------------------------------------------------------------

    def throttle(self, *retry_after: str) -> None:
        """The next API calls get 429 with these Retry-After values, one each."""
        self._throttle.extend(retry_after)

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    def issue_download_token(self) -> str:
        token = "dl-" + secrets.token_urlsafe(16)
        self.download_tokens.add(token)
        return token

    def add_meeting(
        self, *, topic: str, start_time: datetime, duration_min: int = 1, host_email: str = "host@example.com",
        uuid: str | None = None,
    ) -> dict[str, Any]:
        n = next(self._ids)
        meeting = {
            "uuid": uuid or base64.b64encode(hashlib.sha256(f"m{n}{topic}".encode()).digest()[:16]).decode(),
            "id": 80000000000 + n,
            "account_id": self.account_id,
            "host_id": f"host{n}",
            "host_email": host_email,
            "topic": topic,
            "type": 2,
            "start_time": start_time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timezone": "UTC",
            "duration": duration_min,
            "total_size": 0,
            "recording_count": 0,
            "share_url": f"{self.base_url}/rec/share/{n}",
            "recording_files": [],
        }
        self.meetings.append(meeting)
        return meeting

    def add_file(
        self, meeting: dict[str, Any], *, file_type: str, recording_type: str, data: bytes,
        status: str = "completed", seconds: float | None = None,
    ) -> dict[str, Any]:
        file_id = f"f{next(self._ids)}"
        ext = {"TRANSCRIPT": "VTT", "CC": "VTT"}.get(file_type, file_type)
        ctype = {"M4A": "audio/mp4", "MP4": "video/mp4", "VTT": "text/vtt"}.get(ext, "application/octet-stream")
        start = datetime.strptime(meeting["start_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        end = start + timedelta(seconds=seconds if seconds is not None else meeting["duration"] * 60)
        entry = {
            "id": file_id,
            "meeting_id": meeting["uuid"],
            "recording_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "recording_end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "file_type": file_type,
            "file_extension": ext,
            "file_size": len(data),
            "play_url": f"{self.base_url}/rec/play/{file_id}",
            "download_url": f"{self.base_url}/rec/download/{file_id}",
            "status": status,
            "recording_type": recording_type,
        }
        self._files[file_id] = (data, ctype)
        meeting["recording_files"].append(entry)
        meeting["recording_count"] = len(meeting["recording_files"])
        meeting["total_size"] += len(data)
        return entry

    # -- endpoints -------------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if not hmac.compare_digest(auth, expected):
            return JSONResponse({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}, 400)
        q = request.query_params
        if q.get("grant_type") != "account_credentials" or q.get("account_id") != self.account_id:
            return JSONResponse({"reason": "Invalid request : Account does not exist", "error": "invalid_request"}, 400)
        token = "at-" + secrets.token_urlsafe(16)
        self._tokens[token] = time.time() + self.token_ttl_s
        return JSONResponse({
            "access_token": token, "token_type": "bearer", "expires_in": self.token_ttl_s,
            "scope": "cloud_recording:read:list_user_recordings:admin cloud_recording:read:recording:admin",
            "api_url": self.base_url,
        })

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        return self._tokens.get(token, 0) > time.time()

    def _gate(self, request: Request) -> Response | None:
        if self._throttle:
            return _error(429, 429, "You have reached the maximum per-second rate limit for this API.",
                          {"Retry-After": self._throttle.pop(0), "X-RateLimit-Type": "Per-second-limit"})
        if not self._authorised(request):
            return _error(401, 124, "Invalid access token.")
        return None

    async def _list(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        q = request.query_params
        try:
            start, end = date.fromisoformat(q["from"]), date.fromisoformat(q["to"])
        except (KeyError, ValueError):
            return _error(400, 300, "Invalid from/to date")
        if end < start or (end - start).days > 31:
            return _error(400, 300, "The date range must be within one month")
        page_size = min(int(q.get("page_size") or 30), 300, self.page_size_cap)
        offset = 0
        if token := q.get("next_page_token"):
            if self._pages.get(token, ("", "", 0))[:2] != (q["from"], q["to"]):
                return _error(400, 300, "The next page token is invalid or expired.")
            offset = self._pages.pop(token)[2]
        chosen = [
            m for m in self.meetings
            if start <= datetime.strptime(m["start_time"], "%Y-%m-%dT%H:%M:%SZ").date() <= end
        ]
        page = chosen[offset: offset + page_size]
        next_token = ""
        if offset + page_size < len(chosen):
            next_token = secrets.token_urlsafe(12)
            self._pages[next_token] = (q["from"], q["to"], offset + page_size)
        listed = []
        for m in page:  # the list endpoint does not carry the host's email
            listed.append({k: v for k, v in m.items() if k != "host_email"})
        return JSONResponse({
            "from": q["from"], "to": q["to"], "page_count": -(-len(chosen) // page_size) if chosen else 0,
            "page_size": page_size, "total_records": len(chosen), "next_page_token": next_token,
            "meetings": listed,
        })

    async def _meeting(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        uuid = request.path_params["uuid"]
        if "%" in uuid:  # double-encoded uuids arrive once-decoded
            uuid = unquote(uuid)
        for m in self.meetings:
            if m["uuid"] == uuid:
                return JSONResponse(m)
        return _error(404, 3301, "This recording does not exist.")

    def _storage_sig(self, file_id: str) -> str:
        return hmac.new(b"fake-storage", file_id.encode(), hashlib.sha256).hexdigest()[:16]

    async def _download(self, request: Request) -> Response:
        if self._throttle:
            return _error(429, 429, "Too many downloads", {"Retry-After": self._throttle.pop(0)})
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else request.query_params.get("access_token", "")
        if token not in self.download_tokens and self._tokens.get(token, 0) <= time.time():
            return _error(401, 124, "Invalid access token.")
        file_id = request.path_params["file_id"]
        if file_id not in self._files:
            return _error(404, 3301, "This recording does not exist.")
        return RedirectResponse(f"{self.base_url}/rec/storage/{file_id}?sig={self._storage_sig(file_id)}", 302)

    async def _storage(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if file_id not in self._files or request.query_params.get("sig") != self._storage_sig(file_id):
            return Response("Forbidden", 403)
        data, ctype = self._files[file_id]
        return Response(data, media_type=ctype)


# ---------------------------------------------------------------------------------------------
# Webhooks, signed as Zoom signs them
# ---------------------------------------------------------------------------------------------


def zoom_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def recording_event(
    event: str, meeting: dict[str, Any], *, account_id: str = "acct-123", download_token: str | None = None,
    event_ts: int | None = None,
) -> dict[str, Any]:
    """A body shaped like Zoom's recording.* notifications."""
    body: dict[str, Any] = {
        "event": event,
        "event_ts": event_ts if event_ts is not None else int(time.time() * 1000),
        "payload": {"account_id": account_id, "object": json.loads(json.dumps(meeting))},
    }
    if download_token:
        body["download_token"] = download_token
    return body


class ZoomWebhookSender:
    def __init__(self, url: str, secret: str):
        self.url, self.secret = url, secret

    def send(
        self, body: dict[str, Any] | bytes, *, timestamp: str | None = None, secret: str | None = None,
        signature: str | None = None, headers: dict[str, str] | None = None, omit: tuple[str, ...] = (),
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts = timestamp or str(int(time.time()))
        sent = {
            "content-type": "application/json",
            "x-zm-request-timestamp": ts,
            "x-zm-signature": signature or zoom_signature(secret or self.secret, ts, raw),
            **(headers or {}),
        }
        for name in omit:
            sent.pop(name, None)
        return httpx.post(self.url, content=raw, headers=sent, timeout=10)
