"""Zoom webhook events → meetings in the archive (hidden until the admin publishes them).

Everything here is quick database work, so the receiver (core/zoom/receiver.py) answers inside
Zoom's 3-second window: a meeting becomes a `media_items` row plus a queued job, and the
worker does the downloading and transcribing later.

Signatures follow Zoom's documentation: `x-zm-signature` is `v0=` + hex HMAC-SHA256 of
`v0:{x-zm-request-timestamp}:{raw body}` keyed with the app's secret token; the URL check
(`endpoint.url_validation`) is answered with the HMAC of its `plainToken`.

A recording event registers its meeting through `core.zoom.meetings.ingest_meeting`, the
same path as the periodic sync and the admin's upload.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.db import session_scope
from core.models import WebhookEvent
from core.zoom.meetings import (
    delete_meeting,
    find_meeting,
    ingest_meeting,
    invalidate_search_cache,
    remove_files,
    trash_meeting,
)

log = logging.getLogger(__name__)

SIGNATURE_VERSION = "v0"
MAX_CLOCK_SKEW_S = 300  # Zoom: refuse requests whose timestamp is more than 5 minutes off
URL_VALIDATION = "endpoint.url_validation"
COMPLETED = "recording.completed"
TRANSCRIPT_COMPLETED = "recording.transcript_completed"
TRASHED = "recording.trashed"
DELETED = "recording.deleted"
HANDLED_EVENTS = frozenset({COMPLETED, TRANSCRIPT_COMPLETED, TRASHED, DELETED})
# Keys whose values are credentials: kept out of the stored event log.
_SECRET_KEYS = frozenset({"download_token", "password", "recording_play_passcode", "plainToken", "encryptedToken"})
WEBHOOK_ACTOR = "zoom-webhook"


# ---------------------------------------------------------------------------------------------
# Verification (pure)
# ---------------------------------------------------------------------------------------------


class WebhookRejected(Exception):
    """A delivery we refuse; `status` is the HTTP answer."""

    status = 400

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadSignature(WebhookRejected):
    status = 401


class BadEvent(WebhookRejected):
    status = 400


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `x-zm-signature` value Zoom sends for this body and timestamp."""
    message = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def _timestamp_seconds(value: str) -> float:
    """The header's seconds (or milliseconds); BadEvent (400) for text, nan or inf.

    float() accepts "nan" and "inf", and nan compares False with everything: without the
    finiteness check a signed `nan` would pass the freshness test.
    """
    try:
        number = float(value)
    except ValueError:
        raise BadEvent("x-zm-request-timestamp is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise BadEvent("x-zm-request-timestamp is not a finite, positive number")
    return number / 1000.0 if number > 1e11 else number  # tolerate milliseconds


def verify_request(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> None:
    """Raise BadSignature unless the raw body is signed with `secret` and recent (either way)."""
    signature = headers.get("x-zm-signature")
    timestamp = headers.get("x-zm-request-timestamp")
    if not signature or not timestamp:
        raise BadSignature("missing x-zm-signature or x-zm-request-timestamp")
    sent_at = _timestamp_seconds(timestamp)
    # Checked before the HMAC, but the HMAC covers the timestamp: an old signed body cannot be
    # replayed with a fresh timestamp.
    if abs((time.time() if now is None else now) - sent_at) > max_skew_s:
        raise BadSignature("timestamp more than 5 minutes off")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignature("signature does not match")


def url_validation_response(secret: str, plain_token: str) -> dict[str, str]:
    """Zoom's endpoint check: echo the plain token with its hex HMAC-SHA256 under the secret."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


# ---------------------------------------------------------------------------------------------
# Parsing (pure)
# ---------------------------------------------------------------------------------------------


# Bounds on what a recording event may carry. Zoom's own values sit far inside them; anything
# outside is a broken or hostile sender. Python's json reads 1e400 as inf and accepts NaN, and
# int(inf) raises deep inside the ingest: checked here, before anything is stored, as a 400.
MAX_ID_CHARS = 200  # media_items.external_id and webhook_events.event_id are String(200)
MAX_FILE_BYTES = 10 * 2**40  # 10 TiB: no Zoom recording file comes near it
MAX_DURATION_MIN = 7 * 24 * 60  # a week of meeting, in Zoom's whole minutes
MAX_EVENT_TS = 1e14  # milliseconds, year ~5138
MAX_TEXT_CHARS = 2000  # topic, URLs, emails, times


def _in_range(value: Any, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high


def _check_number(obj: Mapping[str, Any], key: str, high: float, where: str) -> None:
    if key in obj and obj[key] is not None and not _in_range(obj[key], 0, high):
        raise BadEvent(f"{where}{key} is not a number between 0 and {high:g}")


def _check_text(obj: Mapping[str, Any], key: str, limit: int, where: str) -> None:
    value = obj.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadEvent(f"{where}{key} has the wrong type")
    if len(str(value)) > limit:
        raise BadEvent(f"{where}{key} is longer than {limit} characters")


def check_recording_values(obj: Mapping[str, Any]) -> None:
    """BadEvent unless the recording object's numbers, ids and texts are in range."""
    _check_text(obj, "uuid", MAX_ID_CHARS, "")
    _check_text(obj, "id", 40, "")
    if isinstance(obj.get("id"), (int, float)) and not _in_range(obj["id"], 0, 2**63 - 1):
        raise BadEvent("id is not a meeting number")
    _check_number(obj, "duration", MAX_DURATION_MIN, "")
    _check_number(obj, "total_size", MAX_FILE_BYTES, "")
    _check_number(obj, "recording_count", 10_000, "")
    for key in ("topic", "host_email", "host_id", "share_url", "start_time", "timezone", "account_id"):
        _check_text(obj, key, MAX_TEXT_CHARS, "")
    files = obj.get("recording_files")
    if files is None:
        return
    if not isinstance(files, list) or len(files) > 1000:
        raise BadEvent("recording_files is not a list of files")
    for f in files:
        if not isinstance(f, Mapping):
            raise BadEvent("a recording file is not an object")
        _check_number(f, "file_size", MAX_FILE_BYTES, "recording_files.")
        for key in ("id", "meeting_id"):
            _check_text(f, key, MAX_ID_CHARS, "recording_files.")
        for key in ("file_type", "recording_type", "status", "file_extension", "recording_start", "recording_end"):
            _check_text(f, key, 100, "recording_files.")
        for key in ("download_url", "play_url"):
            _check_text(f, key, MAX_TEXT_CHARS, "recording_files.")


class ZoomEvent(NamedTuple):
    event_id: str  # stable across Zoom's re-deliveries of the same notification
    event: str
    event_ts: int | None
    account_id: str | None
    object: dict[str, Any]
    download_token: str | None
    payload: dict[str, Any]  # the whole body, for the event log (credentials redacted on store)


def parse_event(body: bytes) -> ZoomEvent:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str) or not data["event"]:
        raise BadEvent("no event name")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise BadEvent("no payload object")
    event = data["event"]
    obj: dict[str, Any] = payload["object"] if isinstance(payload.get("object"), dict) else {}
    if event == URL_VALIDATION:
        if not isinstance(payload.get("plainToken"), str) or not payload["plainToken"]:
            raise BadEvent("url_validation without plainToken")
    elif event in HANDLED_EVENTS and (not isinstance(obj.get("uuid"), str) or not obj["uuid"]):
        raise BadEvent(f"{event} without a meeting uuid")
    if event in HANDLED_EVENTS:
        check_recording_values(obj)
    ts = data.get("event_ts")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and not _in_range(ts, 0, MAX_EVENT_TS):
        raise BadEvent("event_ts out of range")
    event_ts = int(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
    # Zoom re-sends the same body when we were slow; its event_ts and meeting uuid identify it.
    if event_ts is not None:
        event_id = f"zoom:{event}:{obj.get('uuid') or obj.get('id') or '-'}:{event_ts}"
    else:
        event_id = "zoom:sha256:" + hashlib.sha256(body).hexdigest()
    token = data.get("download_token") or payload.get("download_token")
    return ZoomEvent(
        event_id=event_id[:200],
        event=event,
        event_ts=event_ts,
        account_id=payload.get("account_id") if isinstance(payload.get("account_id"), str) else None,
        object=obj,
        download_token=token if isinstance(token, str) and token else None,
        payload=data,
    )


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("[redacted]" if k in _SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# One delivery
# ---------------------------------------------------------------------------------------------


class EventOutcome(NamedTuple):
    status: str  # accepted | duplicate | ignored
    item_id: int | None = None
    files_to_remove: tuple[Path, ...] = ()


def handle_event(session: Session, event: ZoomEvent, settings: Settings) -> EventOutcome:
    """Record the event once, then apply it. A re-delivery finds its id and changes nothing."""
    first = session.execute(
        pg_insert(WebhookEvent)
        .values(event_id=event.event_id, source="zoom", event=event.event[:64], payload=redact(event.payload))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(WebhookEvent.event_id)
    ).scalar()
    if first is None:
        return EventOutcome("duplicate")
    if event.event not in HANDLED_EVENTS:
        return EventOutcome("ignored")
    uuid = event.object["uuid"]
    if event.event in (COMPLETED, TRANSCRIPT_COMPLETED):
        outcome = ingest_meeting(
            session, event.object, settings=settings, account_id=event.account_id,
            download_token=event.download_token,
        )
        return EventOutcome("accepted", outcome.item_id)
    item = find_meeting(session, uuid)
    if item is None:
        return EventOutcome("ignored")
    if event.event == TRASHED:
        trash_meeting(session, item, actor=WEBHOOK_ACTOR)
        return EventOutcome("accepted", item.id)
    item_id = item.id
    files = delete_meeting(session, item, settings, actor=WEBHOOK_ACTOR)
    return EventOutcome("accepted", item_id, tuple(files))


def process_delivery(event: ZoomEvent, settings: Settings | None = None) -> EventOutcome:
    """Apply one verified event in its own transaction; files go only after the commit."""
    settings = settings or get_settings()
    with session_scope() as session:
        outcome = handle_event(session, event, settings)
    if outcome.files_to_remove:
        remove_files(list(outcome.files_to_remove))
    if outcome.status == "accepted" and event.event in (TRASHED, DELETED):
        invalidate_search_cache()
    return outcome
