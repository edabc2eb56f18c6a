"""End to end: a signed recording.completed event for a meeting of synthesized speech becomes
a hidden meeting, found by nobody but the admin until published, then found by a spoken
phrase at the right second with its speaker; recording.deleted takes it out of search.

Real parts only: espeak-ng speech encoded to M4A by ffmpeg, a fake Zoom on 127.0.0.1
(OAuth, recordings, token-checked downloads), the webhook receiver under uvicorn, the
embedded PostgreSQL, the real pipeline (Zoom's VTT, or faster-whisper) and the real search.
"""
from __future__ import annotations

import subprocess
import wave
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import get_settings
from core.db import session_scope
from core.models import Job, MediaItem
from core.pipeline import process_item
from core.search import SearchFilters, search
from core.zoom.admin import list_meetings, playback_for, publish
from core.zoom.receiver import create_app
from tests.conftest import require_binary
from tests.fakes.zoom_server import FakeZoom, ZoomWebhookSender, recording_event, serve_asgi

SECRET = "e2e-webhook-secret"
PHRASE = "The liver is the most nutrient dense organ meat you can eat."
PHRASE_AT_S = 30.0  # the meeting opens with half a minute of silence (people joining)
CLOSING = "Thank you everyone for joining the monthly members call."
CLOSING_AT_S = 100.0  # far enough from the phrase to be a chunk of its own


def _speech(text: str, path: Path) -> None:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, capture_output=True)


def make_recording(tmp: Path) -> tuple[Path, float, float]:
    """Silence, the phrase at PHRASE_AT_S, silence, the closing at CLOSING_AT_S → M4A.

    Returns (path, phrase end, closing end) in seconds.
    """
    require_binary("espeak-ng")
    require_binary("ffmpeg")
    _speech(PHRASE, tmp / "a.wav")
    _speech(CLOSING, tmp / "b.wav")
    with wave.open(str(tmp / "a.wav")) as a, wave.open(str(tmp / "b.wav")) as b:
        params, rate, width = a.getparams(), a.getframerate(), a.getsampwidth()
        phrase, closing = a.readframes(a.getnframes()), b.readframes(b.getnframes())

    def silence(seconds: float) -> bytes:
        return b"\x00" * (int(seconds * rate) * width)

    phrase_end = PHRASE_AT_S + len(phrase) / width / rate
    closing_end = CLOSING_AT_S + len(closing) / width / rate
    with wave.open(str(tmp / "meeting.wav"), "wb") as out:
        out.setparams(params)
        out.writeframes(silence(PHRASE_AT_S) + phrase + silence(CLOSING_AT_S - phrase_end) + closing + silence(1))
    m4a = tmp / "meeting.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp / "meeting.wav"), "-c:a", "aac", "-b:a", "48k", str(m4a)],
                   check=True)
    return m4a, phrase_end, closing_end


def vtt(phrase_end: float, closing_end: float) -> bytes:
    """Zoom's audio transcript of that recording: `Name: text` cues."""
    def ts(s: float) -> str:
        return f"00:{int(s) // 60:02d}:{s % 60:06.3f}"

    return (
        "WEBVTT\n\n"
        f"1\n{ts(PHRASE_AT_S)} --> {ts(phrase_end)}\nGuest Doctor: {PHRASE}\n\n"
        f"2\n{ts(CLOSING_AT_S)} --> {ts(closing_end)}\nAnthony Chaffee: {CLOSING}\n"
    ).encode()


@pytest.fixture()
def zoom_env(db, monkeypatch):
    """A fake Zoom, the process settings pointed at it, and the webhook receiver on those settings."""
    fake = FakeZoom()
    with fake.running():
        for name, value in {**fake.settings_overrides(), "zoom_webhook_secret": SECRET}.items():
            monkeypatch.setenv(name.upper(), value)
        monkeypatch.setenv("ZOOM_TRANSCRIPT_WAIT_S", "0")
        get_settings.cache_clear()
        with serve_asgi(create_app()) as url:  # no settings passed: the receiver reads the environment
            yield fake, ZoomWebhookSender(f"{url}/webhooks/zoom", SECRET)
    get_settings.cache_clear()


def anonymous_hits(query: str, **filters):
    with session_scope() as s:
        response = search(s, query, filters=SearchFilters(**filters), log=False, use_cache=True)
        return [(g.media_item_id, m.start_s, m.speakers, m.link) for g, m in response.hits()]


def test_meeting_is_private_until_published_then_found_at_the_second_with_its_speaker(zoom_env, tmp_path):
    fake, sender = zoom_env
    m4a, phrase_end, closing_end = make_recording(tmp_path)
    meeting = fake.add_meeting(topic="Members call, March", start_time=datetime(2025, 3, 4, 18, tzinfo=timezone.utc),
                               duration_min=2, host_email="anthony@example.com")
    fake.add_file(meeting, file_type="M4A", recording_type="audio_only", data=m4a.read_bytes(), seconds=closing_end + 1)
    fake.add_file(meeting, file_type="TRANSCRIPT", recording_type="audio_transcript", data=vtt(phrase_end, closing_end),
                  seconds=closing_end + 1)

    body = recording_event("recording.completed", meeting, account_id=fake.account_id,
                           download_token=fake.issue_download_token())
    assert sender.send(body).status_code == 200
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        item_id = job.media_item_id

    result = process_item(item_id)  # what the worker does with the job
    assert result.engine == "captions" and "zoom" in result.route_reason

    # The admin sees the meeting; anonymous search does not, even for its exact words.
    with session_scope() as s:
        [row] = list_meetings(s)
        assert (row.item_id, row.title, row.state, row.host) == (item_id, "Members call, March", "hidden",
                                                               "anthony@example.com")
        admin_view = search(s, "liver nutrient dense organ meat", include_hidden=True, log=False)
        assert item_id in [g.media_item_id for g, _ in admin_view.hits()]
    assert all(hit[0] != item_id for hit in anonymous_hits("liver nutrient dense organ meat"))
    with session_scope() as s:
        assert playback_for(s, item_id, PHRASE_AT_S, is_admin=False) is None

    with session_scope() as s:
        publish(s, item_id, "admin")
    hits = [h for h in anonymous_hits("liver nutrient dense organ meat") if h[0] == item_id]
    assert hits, "published meeting not found"
    _id, start_s, speakers, link = hits[0]
    assert abs(start_s - PHRASE_AT_S) <= 1.0
    assert "Guest Doctor" in speakers
    assert f"play={item_id}" in link and f"t={int(start_s)}" in link  # the app's own player, at the second
    assert [h[0] for h in anonymous_hits("liver organ meat", speaker="guest doctor")] == [item_id]
    assert anonymous_hits("liver organ meat", speaker="Nobody Else") == []

    with session_scope() as s:
        played = playback_for(s, item_id, start_s, is_admin=False)
        assert played.kind == "file" and Path(played.target).read_bytes() == m4a.read_bytes()
        media_file = Path(s.get(MediaItem, item_id).media_path)

    deleted = recording_event("recording.deleted", meeting, account_id=fake.account_id)
    assert sender.send(deleted).status_code == 200
    assert all(hit[0] != item_id for hit in anonymous_hits("liver nutrient dense organ meat"))
    with session_scope() as s:
        assert s.get(MediaItem, item_id) is None
        assert list_meetings(s) == []
    assert not media_file.exists()


@pytest.mark.slow
def test_meeting_without_zoom_transcript_is_transcribed_by_the_local_engine(zoom_env, tmp_path):
    fake, sender = zoom_env
    m4a, _phrase_end, closing_end = make_recording(tmp_path)
    meeting = fake.add_meeting(topic="No transcript", start_time=datetime(2025, 3, 5, 18, tzinfo=timezone.utc))
    fake.add_file(meeting, file_type="M4A", recording_type="audio_only", data=m4a.read_bytes(), seconds=closing_end + 1)
    body = recording_event("recording.completed", meeting, account_id=fake.account_id,
                           download_token=fake.issue_download_token())
    assert sender.send(body).status_code == 200
    with session_scope() as s:
        item_id = s.scalars(select(Job.media_item_id)).one()
        publish(s, item_id, "admin")

    result = process_item(item_id, engines=["captions", "local"])
    assert result.engine == "local"
    hits = [h for h in anonymous_hits("liver organ meat") if h[0] == item_id]
    assert hits and abs(hits[0][1] - PHRASE_AT_S) <= 2.0
    assert fake.count("/rec/download/", 302) == 1  # the audio was fetched once, with the webhook's token
