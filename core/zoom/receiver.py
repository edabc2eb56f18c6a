"""The webhook receiver: a small Starlette app (run by `python -m core webhooks` under uvicorn).

POST /webhooks/zoom  signed Zoom events → core.zoom.events (database work only, so Zoom's
                     3-second window is always met: transcription happens in the worker)
GET  /healthz        liveness for the supervisor and reverse proxies

Order of checks, cheapest and least trusting first: body size (400), signature and
timestamp over the *raw* bytes (401), JSON shape and value ranges (400). Nothing unsigned is
ever parsed. While the database is away (a restart) the answer is 503 with Retry-After, so
Zoom delivers the event again later.
"""
from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.config import Settings, get_settings
from core.outage import OutageLog, is_connection_lost
from core.zoom.events import (
    URL_VALIDATION,
    BadEvent,
    WebhookRejected,
    parse_event,
    process_delivery,
    url_validation_response,
    verify_request,
)

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30  # Zoom retries a failed delivery; the database restarts in seconds


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():  # a lying or absent Content-Length is caught here
        body += chunk
        if len(body) > cap:
            raise _TooLarge
    return bytes(body)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app; `settings` defaults to the process settings, read on first request."""

    outage = OutageLog("webhook receiver", log)

    def current() -> Settings:
        return settings or get_settings()

    async def zoom_webhook(request: Request) -> JSONResponse:
        cfg = current()
        secret = cfg.zoom_webhook_secret
        if not secret:
            return JSONResponse({"error": "ZOOM_WEBHOOK_SECRET is not configured"}, status_code=503)
        try:
            body = await _read_capped(request, cfg.webhook_max_body_bytes)
        except _TooLarge:
            return JSONResponse({"error": "body too large"}, status_code=400)
        try:
            verify_request(secret, request.headers, body)
            event = parse_event(body)
        except WebhookRejected as exc:
            log.info("refused a Zoom webhook: %s", exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        if event.event == URL_VALIDATION:
            return JSONResponse(url_validation_response(secret, event.payload["payload"]["plainToken"]))
        try:
            outcome = await run_in_threadpool(process_delivery, event, cfg)
        except BadEvent as exc:  # pragma: no cover - parse_event catches shapes first
            return JSONResponse({"error": exc.reason}, status_code=400)
        except Exception as exc:
            # Zoom re-delivers on a non-2xx answer; the event id was not recorded (rolled back).
            if is_connection_lost(exc):
                # A database restart: ask Zoom to come back rather than report a bug.
                outage.lost(exc)
                return JSONResponse({"error": "the archive database is briefly unavailable"}, status_code=503,
                                    headers={"Retry-After": str(RETRY_AFTER_S)})
            log.exception("could not apply Zoom event %s", event.event)
            return JSONResponse({"error": "temporary failure"}, status_code=500)
        outage.back()
        log.info("Zoom event %s: %s", event.event, outcome.status)
        return JSONResponse({"status": outcome.status, "item_id": outcome.item_id})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/webhooks/zoom", zoom_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


app = create_app()
