"""The real Zoom client against a local fake Zoom over HTTP on 127.0.0.1."""
from __future__ import annotations

import time
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from core.config import load_settings
from core.models import Job, MediaItem
from core.sources.base import RateLimited
from core.zoom.client import DbQuota, MemoryQuota, ZoomClient, ZoomQuotaExceeded
from core.zoom.meetings import ingest_meeting, known_meeting
from core.zoom.records import month_windows, parse_meeting, pick_audio_file, pick_transcript_file
from core.zoom.source import ZoomSource
from core.zoom.sync import backfill, sync_range
from tests.fakes.zoom_server import FakeZoom

VTT = b"""WEBVTT

1
00:00:01.000 --> 00:00:04.000
Anthony Chaffee: Red meat is the most nutritious food.

2
00:00:04.500 --> 00:00:07.000
Guest Doctor: And what about fibre?
"""


@pytest.fixture()
def fake():
    zoom = FakeZoom(page_size_cap=2)
    with zoom.running():
        yield zoom


def make_client(fake: FakeZoom, **kwargs) -> ZoomClient:
    settings = load_settings(**fake.settings_overrides())
    kwargs.setdefault("quota", MemoryQuota(1000))
    return ZoomClient.from_settings(settings, **kwargs)


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 15, 0, tzinfo=timezone.utc)


def test_month_windows_split_at_calendar_months():
    assert list(month_windows(date(2024, 1, 15), date(2024, 3, 2))) == [
        (date(2024, 1, 15), date(2024, 1, 31)),
        (date(2024, 2, 1), date(2024, 2, 29)),
        (date(2024, 3, 1), date(2024, 3, 2)),
    ]


def test_token_is_cached_and_listing_pages_through_every_month(fake):
    topics = [f"Talk {i}" for i in range(7)]
    days = [at(2024, 1, 20), at(2024, 1, 21), at(2024, 1, 22), at(2024, 2, 3), at(2024, 3, 9), at(2024, 3, 10),
            at(2024, 4, 1)]
    for topic, day in zip(topics, days):
        fake.add_meeting(topic=topic, start_time=day)

    with make_client(fake) as client:
        found = [m.topic for m in client.list_recordings(date(2024, 1, 15), date(2024, 3, 31))]

    assert found == topics[:6]  # April is outside the range
    assert fake.count("/oauth/token") == 1  # one token for every call
    # Jan: 3 meetings at 2 a page = 2 requests; Feb: 1; Mar: 1 — and the fake refuses > 1 month.
    assert fake.count("/v2/users/me/recordings", 200) == 4
    assert fake.count("/v2/users/me/recordings", 400) == 0


def test_expired_token_is_refreshed_once_on_401(fake):
    fake.add_meeting(topic="One", start_time=at(2024, 5, 2))
    with make_client(fake) as client:
        assert len(list(client.list_recordings(date(2024, 5, 1), date(2024, 5, 31)))) == 1
        fake.revoke_tokens()  # Zoom revoked it early (e.g. credentials rotated)
        assert len(list(client.list_recordings(date(2024, 5, 1), date(2024, 5, 31)))) == 1
    assert fake.count("/oauth/token") == 2
    assert fake.count("/v2/users/me/recordings", 401) == 1


def test_429_waits_for_retry_after_then_succeeds(fake):
    fake.add_meeting(topic="Busy", start_time=at(2024, 6, 2))
    fake.throttle("1")
    with make_client(fake) as client:
        began = time.monotonic()
        meetings = list(client.list_recordings(date(2024, 6, 1), date(2024, 6, 30)))
        waited = time.monotonic() - began
    assert [m.topic for m in meetings] == ["Busy"]
    assert waited >= 1.0
    assert fake.count("/v2/users/me/recordings", 429) == 1


def test_429_longer_than_we_wait_fails_as_rate_limited(fake):
    fake.throttle("3600")
    with make_client(fake, max_retry_wait_s=5) as client:
        with pytest.raises(RateLimited) as caught:
            list(client.list_recordings(date(2024, 6, 1), date(2024, 6, 30)))
    assert caught.value.retryable and caught.value.retry_after_s == 3600


def test_daily_quota_stops_before_zoom_is_asked(fake):
    for day in (2, 3, 4, 5, 6):
        fake.add_meeting(topic=f"Day {day}", start_time=at(2024, 7, day))
    with make_client(fake, quota=MemoryQuota(2)) as client:
        with pytest.raises(ZoomQuotaExceeded):
            list(client.list_recordings(date(2024, 7, 1), date(2024, 7, 31)))  # needs 3 pages
    assert fake.count("/v2/users/me/recordings") == 2


def test_daily_quota_is_shared_through_the_database(db, fake):
    quota = DbQuota(3)
    with make_client(fake, quota=quota) as first, make_client(fake, quota=DbQuota(3)) as second:
        first.check()
        second.check()
        first.check()
        ok, message = second.check()
    assert not ok and "allowance" in message
    assert quota.used_today() == 3
    assert fake.count("/v2/users/me/recordings") == 3


def test_download_needs_a_token(fake, tmp_path):
    import httpx

    meeting = fake.add_meeting(topic="Files", start_time=at(2024, 8, 1))
    audio = fake.add_file(meeting, file_type="M4A", recording_type="audio_only", data=b"\x00audio" * 100)
    assert httpx.get(audio["download_url"]).status_code == 401  # no token: refused

    token = fake.issue_download_token()
    with make_client(fake) as client:
        path = client.download(audio["download_url"], tmp_path / "a.m4a", download_token=token)
        assert path.read_bytes() == b"\x00audio" * 100
        # An expired webhook token falls back to the app's own access token.
        again = client.download(audio["download_url"], tmp_path / "b.m4a", download_token="dl-expired")
        assert again.read_bytes() == b"\x00audio" * 100


def test_bad_credentials_are_reported_without_the_secret(fake):
    settings = load_settings(**{**fake.settings_overrides(), "zoom_client_secret": "wrong-secret-value"})
    with ZoomClient.from_settings(settings, quota=MemoryQuota(10)) as client:
        ok, message = client.check()
    assert not ok
    assert "Invalid client_id or client_secret" in message
    assert "wrong-secret-value" not in message


def test_recording_json_helpers_pick_audio_and_transcript(fake):
    meeting = fake.add_meeting(topic="Layouts", start_time=at(2024, 9, 1))
    fake.add_file(meeting, file_type="MP4", recording_type="gallery_view", data=b"v1")
    fake.add_file(meeting, file_type="MP4", recording_type="shared_screen_with_speaker_view", data=b"v2")
    fake.add_file(meeting, file_type="CHAT", recording_type="chat_file", data=b"chat")
    parsed = parse_meeting(meeting)
    assert pick_audio_file(parsed).recording_type == "shared_screen_with_speaker_view"
    assert pick_transcript_file(parsed) is None
    fake.add_file(meeting, file_type="M4A", recording_type="audio_only", data=b"a")
    fake.add_file(meeting, file_type="TRANSCRIPT", recording_type="audio_transcript", data=VTT, status="processing")
    parsed = parse_meeting(meeting)
    assert pick_audio_file(parsed).file_type == "M4A"
    assert pick_transcript_file(parsed) is None  # still processing at Zoom


def test_source_gives_zoom_transcript_with_speakers_and_the_audio(db, fake, tmp_path):
    meeting = fake.add_meeting(topic="Carnivore Q&A", start_time=at(2024, 10, 1), host_email="dr@example.com")
    fake.add_file(meeting, file_type="M4A", recording_type="audio_only", data=b"m4a-bytes")
    fake.add_file(meeting, file_type="TRANSCRIPT", recording_type="audio_transcript", data=VTT)
    settings = load_settings(**fake.settings_overrides())
    client = ZoomClient.from_settings(settings, quota=MemoryQuota(100))
    # Nothing stored about it: the source asks the API for the meeting's files.
    source = ZoomSource(settings, client=client, lookup=lambda _uuid: known_meeting({}))

    info = source.fetch_metadata(meeting["uuid"])
    assert (info.title, info.host, info.published_at) == ("Carnivore Q&A", "dr@example.com", at(2024, 10, 1))
    transcript = source.fetch_captions(meeting["uuid"])
    assert transcript.engine == "captions"
    assert [(s.start, s.speaker) for s in transcript.segments] == [(1.0, "Anthony Chaffee"), (4.5, "Guest Doctor")]
    assert transcript.segments[0].text == "Red meat is the most nutritious food."
    assert source.fetch_audio(meeting["uuid"], tmp_path).read_bytes() == b"m4a-bytes"
    client.close()


def test_sync_registers_hidden_meetings_once_and_backfills_months(db, fake):
    from core.db import session_scope

    for day, topic in ((3, "Early"), (20, "Late")):
        m = fake.add_meeting(topic=topic, start_time=at(2024, 11, day))
        fake.add_file(m, file_type="M4A", recording_type="audio_only", data=b"x")
    chat_only = fake.add_meeting(topic="Chat only", start_time=at(2024, 12, 1))
    fake.add_file(chat_only, file_type="CHAT", recording_type="chat_file", data=b"hi")
    settings = load_settings(**fake.settings_overrides(), zoom_transcript_wait_s=0)

    with make_client(fake) as client:
        report = backfill("2024-11", "2024-12", settings=settings, client=client)
        again = sync_range(date(2024, 11, 1), date(2024, 11, 30), settings=settings, client=client)

    assert (report.listed, report.new, report.enqueued, report.skipped) == (3, 2, 2, 1)
    assert (again.new, again.enqueued) == (0, 0)  # known meetings with a live job: nothing new
    with session_scope() as session:
        items = session.scalars(select(MediaItem).order_by(MediaItem.published_at)).all()
        assert [(i.title, i.visible) for i in items] == [("Early", False), ("Late", False)]
        assert session.scalar(select(func.count()).select_from(Job)) == 2


def test_meeting_without_transcript_waits_for_it(db):
    from core.db import session_scope

    settings = load_settings(zoom_transcript_wait_s=600)
    meeting = {
        "uuid": "wait==", "topic": "Waiting", "start_time": datetime.now(timezone.utc).isoformat(), "duration": 0,
        "recording_files": [{"id": "a", "file_type": "M4A", "recording_type": "audio_only",
                             "download_url": "http://127.0.0.1:9/a", "status": "completed"}],
    }
    with session_scope() as session:
        item_id = ingest_meeting(session, meeting, settings=settings).item_id
        job = session.scalars(select(Job).where(Job.media_item_id == item_id)).one()
        assert (job.run_after - datetime.now(timezone.utc)).total_seconds() > 500
        meeting["recording_files"] = [{"id": "t", "file_type": "TRANSCRIPT", "recording_type": "audio_transcript",
                                       "download_url": "http://127.0.0.1:9/t", "status": "completed"}]
        ingest_meeting(session, meeting, settings=settings)  # the transcript arrived: run now
        session.refresh(job)
        assert (job.run_after - datetime.now(timezone.utc)).total_seconds() < 5
        assert session.scalar(select(func.count()).select_from(Job)) == 1
        files = known_meeting(session.get(MediaItem, item_id).extra).meeting.files
        assert {f.file_type for f in files} == {"M4A", "TRANSCRIPT"}  # merged, not replaced


def test_token_is_renewed_when_it_expires():
    zoom = FakeZoom(token_ttl_s=2)  # we renew halfway through a short-lived token
    with zoom.running():
        zoom.add_meeting(topic="T", start_time=at(2024, 5, 2))
        with make_client(zoom) as client:
            client.list_recordings(date(2024, 5, 1), date(2024, 5, 31)).__next__()
            time.sleep(1.2)
            client.list_recordings(date(2024, 5, 1), date(2024, 5, 31)).__next__()
        assert zoom.count("/oauth/token") == 2
        assert zoom.count("/v2/users/me/recordings", 401) == 0  # renewed before Zoom had to refuse it


def test_zoom_out_of_reach_is_a_source_wide_failure_that_trips_the_breaker(fake):
    """A refused connection (Zoom down, DNS gone) is classified as the source being unreachable, not the meeting."""
    import socket

    from core.backfill.failures import classify, label
    from core.sources.base import SourceUnreachable
    from core.states import SOURCE_WIDE_CAUSES, FailureCause

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = load_settings(**{**fake.settings_overrides(), "zoom_oauth_url": f"{closed}/oauth/token"})
    with ZoomClient.from_settings(settings, quota=MemoryQuota(10)) as client:
        with pytest.raises(SourceUnreachable) as caught:
            list(client.list_recordings(date(2024, 6, 1), date(2024, 6, 30)))
    cause = classify(caught.value)
    assert cause is FailureCause.SOURCE_UNREACHABLE and cause in SOURCE_WIDE_CAUSES
    assert label(cause, "zoom") == "Zoom could not be reached"
