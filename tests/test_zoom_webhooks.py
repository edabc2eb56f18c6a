"""The webhook receiver under a real uvicorn on 127.0.0.1, fed events signed as Zoom signs them."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import func, select

from core.config import load_settings
from core.db import session_scope
from core.models import AuditEntry, Chunk, Job, MediaItem, Source, TranscriptSegment, WebhookEvent
from core.zoom.receiver import create_app
from tests.fakes.zoom_server import FakeZoom, ZoomWebhookSender, recording_event, serve_asgi

SECRET = "zoom-secret-token-for-tests"


@pytest.fixture()
def zoom():
    fake = FakeZoom()
    with fake.running():
        yield fake


@pytest.fixture()
def settings(zoom):
    return load_settings(**zoom.settings_overrides(), zoom_webhook_secret=SECRET, webhook_max_body_bytes=4096)


@pytest.fixture()
def receiver(db, settings):
    with serve_asgi(create_app(settings)) as url:
        yield url


@pytest.fixture()
def sender(receiver):
    return ZoomWebhookSender(f"{receiver}/webhooks/zoom", SECRET)


def completed_event(zoom: FakeZoom, topic: str = "Ask Dr Chaffee", *, transcript: bool = False):
    meeting = zoom.add_meeting(topic=topic, start_time=datetime(2025, 1, 5, 17, tzinfo=timezone.utc))
    zoom.add_file(meeting, file_type="M4A", recording_type="audio_only", data=b"audio")
    if transcript:
        zoom.add_file(meeting, file_type="TRANSCRIPT", recording_type="audio_transcript",
                      data=b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nA: hi\n")
    return meeting, recording_event("recording.completed", meeting, download_token=zoom.issue_download_token())


def counts() -> tuple[int, int, int]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(WebhookEvent)),
            s.scalar(select(func.count()).select_from(MediaItem)),
            s.scalar(select(func.count()).select_from(Job)),
        )


def test_url_validation_is_answered_as_zoom_documents(sender):
    resp = sender.send({"event": "endpoint.url_validation", "event_ts": 1, "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}})
    assert resp.status_code == 200
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert resp.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}


@pytest.mark.parametrize(
    "how",
    ["forged", "other_secret", "stale", "future", "no_signature", "no_timestamp"],
)
def test_unsigned_or_stale_deliveries_are_refused_and_create_nothing(zoom, sender, how):
    _meeting, body = completed_event(zoom)
    kwargs: dict = {
        "forged": {"signature": "v0=" + "0" * 64},
        "other_secret": {"secret": "someone-elses-secret"},
        "stale": {"timestamp": str(int(time.time()) - 301)},
        "future": {"timestamp": str(int(time.time()) + 400)},
        "no_signature": {"omit": ("x-zm-signature",)},
        "no_timestamp": {"omit": ("x-zm-request-timestamp",)},
    }[how]
    resp = sender.send(body, **kwargs)
    assert resp.status_code == 401
    assert counts() == (0, 0, 0)


def test_signature_covers_the_raw_body(zoom, sender):
    _meeting, body = completed_event(zoom)
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    from tests.fakes.zoom_server import zoom_signature

    # Signed one body, sent another with the same JSON meaning but different bytes.
    resp = sender.send(json.dumps(body, indent=2).encode(), timestamp=ts, signature=zoom_signature(SECRET, ts, raw))
    assert resp.status_code == 401
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"event": "recording.completed"}',
                                  b'{"event": "recording.completed", "payload": {"object": {}}}'])
def test_malformed_bodies_are_refused_with_400(sender, body):
    assert sender.send(body).status_code == 400
    assert counts() == (0, 0, 0)


def test_oversized_body_is_refused_with_400(zoom, sender):
    _meeting, body = completed_event(zoom)
    body["payload"]["object"]["topic"] = "x" * 5000  # the test receiver caps bodies at 4 KiB
    assert sender.send(body).status_code == 400
    assert counts() == (0, 0, 0)


def test_same_event_twice_creates_one_item_and_one_job(zoom, sender):
    meeting, body = completed_event(zoom)
    first, second = sender.send(body), sender.send(body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["status"], second.json()["status"]) == ("accepted", "duplicate")
    assert counts() == (1, 1, 1)
    with session_scope() as s:
        item = s.scalars(select(MediaItem)).one()
        source = s.get(Source, item.source_id)
        assert (item.external_id, item.title, item.host) == (meeting["uuid"], "Ask Dr Chaffee", "host@example.com")
        assert item.published_at == datetime(2025, 1, 5, 17, tzinfo=timezone.utc)
        assert item.visible is False and source.kind == "zoom" and source.publish_by_default is False
        assert item.extra["zoom"]["download_token"] in zoom.download_tokens  # kept for the worker
        stored = s.scalars(select(WebhookEvent)).one()
        assert "download_token" not in json.dumps(stored.payload).replace('"download_token": "[redacted]"', "")
        job = s.scalars(select(Job)).one()
        assert (job.kind, job.status, job.media_item_id) == ("ingest", "queued", item.id)


def test_answers_fast(zoom, sender):
    _meeting, body = completed_event(zoom)
    began = time.monotonic()
    assert sender.send(body).status_code == 200
    assert time.monotonic() - began < 3.0  # Zoom's window


def test_source_default_publish_makes_new_meetings_visible(zoom, sender):
    with session_scope() as s:
        s.add(Source(kind="zoom", name="Zoom", url=zoom.account_id, publish_by_default=True))
    _meeting, body = completed_event(zoom)
    assert sender.send(body).status_code == 200
    with session_scope() as s:
        assert s.scalars(select(MediaItem.visible)).one() is True


def test_trashed_hides_and_deleted_removes_item_chunks_and_files(zoom, sender, settings):
    meeting, body = completed_event(zoom, transcript=True)
    assert sender.send(body).status_code == 200
    media = settings.media_dir / "zoom-test" / "meeting.m4a"
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_bytes(b"downloaded")
    with session_scope() as s:
        item = s.scalars(select(MediaItem)).one()
        item.visible, item.status, item.media_path = True, "indexed", str(media)
        s.add(TranscriptSegment(media_item_id=item.id, idx=0, start_s=1, end_s=2, text="hi", engine="captions"))
        s.add(Chunk(media_item_id=item.id, idx=0, start_s=1, end_s=2, text="hi", speakers="A"))
        item_id = item.id

    trashed = recording_event("recording.trashed", meeting)
    assert sender.send(trashed).json()["status"] == "accepted"
    with session_scope() as s:
        item = s.get(MediaItem, item_id)
        assert (item.visible, item.status) == (False, "skipped")

    deleted = recording_event("recording.deleted", meeting)
    assert sender.send(deleted).json()["status"] == "accepted"
    with session_scope() as s:
        assert s.get(MediaItem, item_id) is None
        assert s.scalar(select(func.count()).select_from(Chunk)) == 0
        assert s.scalar(select(func.count()).select_from(TranscriptSegment)) == 0
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert {a.action for a in s.scalars(select(AuditEntry))} == {"zoom.trash", "zoom.delete"}
    assert not media.exists()


def test_transcript_completed_later_adds_the_file_without_a_second_job(zoom, sender):
    meeting, body = completed_event(zoom)
    assert sender.send(body).status_code == 200
    transcript = zoom.add_file(meeting, file_type="TRANSCRIPT", recording_type="audio_transcript",
                               data=b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nA: hi\n")
    later = recording_event("recording.transcript_completed", {**meeting, "recording_files": [transcript]})
    assert sender.send(later).json()["status"] == "accepted"
    assert counts() == (2, 1, 1)
    with session_scope() as s:
        files = s.scalars(select(MediaItem)).one().extra["zoom"]["meeting"]["recording_files"]
        assert sorted(f["file_type"] for f in files) == ["M4A", "TRANSCRIPT"]
        job = s.scalars(select(Job)).one()
        assert job.run_after <= datetime.now(timezone.utc)


def test_healthz_and_missing_secret(db, receiver):
    assert httpx.get(f"{receiver}/healthz").json() == {"ok": True}
    with serve_asgi(create_app(load_settings(zoom_webhook_secret=None))) as url:
        assert httpx.post(f"{url}/webhooks/zoom", content=b"{}").status_code == 503


def _absurd(body: dict, how: str) -> dict:
    obj = body["payload"]["object"]
    if how == "huge_file_size":
        obj["recording_files"][0]["file_size"] = 1e400  # json.dumps writes Infinity; Zoom's 1e400 reads the same
    elif how == "negative_file_size":
        obj["recording_files"][0]["file_size"] = -5
    elif how == "huge_duration":
        obj["duration"] = 1e300
    elif how == "nan_duration":
        obj["duration"] = float("nan")
    elif how == "long_uuid":
        obj["uuid"] = "u" * 300
    elif how == "object_topic":
        obj["topic"] = {"nested": "x"}
    return body


@pytest.mark.parametrize(
    "how", ["huge_file_size", "negative_file_size", "huge_duration", "nan_duration", "long_uuid", "object_topic"]
)
def test_signed_events_with_absurd_values_get_400_and_store_nothing(zoom, sender, how):
    _meeting, body = completed_event(zoom)
    resp = sender.send(_absurd(body, how))
    assert resp.status_code == 400, resp.text
    assert "error" in resp.json()
    assert counts() == (0, 0, 0)


def test_literal_1e400_in_the_raw_body_gets_400(zoom, sender):
    _meeting, body = completed_event(zoom)
    body["payload"]["object"]["recording_files"][0]["file_size"] = 123456789
    raw = json.dumps(body).encode().replace(b"123456789", b"1e400")
    assert sender.send(raw).status_code == 400
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("timestamp", ["nan", "NaN", "inf", "-inf", "soon", "1e400"])
def test_signed_non_numeric_timestamps_get_400_and_store_nothing(zoom, sender, timestamp):
    _meeting, body = completed_event(zoom)
    resp = sender.send(body, timestamp=timestamp)  # signed over this very timestamp
    assert resp.status_code == 400, resp.text
    assert counts() == (0, 0, 0)
