"""`webhooks`: the Zoom webhook receiver under uvicorn (started by `serve` beside the UI)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("webhooks", help="run the Zoom webhook receiver (POST /webhooks/zoom)")
    p.add_argument("--host", help="interface to bind (default WEBHOOK_HOST, 127.0.0.1: put HTTPS in front)")
    p.add_argument("--port", type=int, help="port (default WEBHOOK_PORT, 8765)")
    p.set_defaults(func=cmd_webhooks)


def cmd_webhooks(args: argparse.Namespace) -> int:
    import uvicorn

    from core.config import get_settings

    settings = get_settings()
    if not settings.zoom_webhook_secret:
        # Still start: /healthz answers and Zoom gets a clear 503 until the secret is set.
        print("warning: ZOOM_WEBHOOK_SECRET is not set; Zoom events will be refused")
    uvicorn.run(
        "core.zoom.receiver:app",
        host=args.host or settings.webhook_host,
        port=args.port or settings.webhook_port,
        log_level="info" if args.verbose else "warning",
        proxy_headers=True,
    )
    return 0
