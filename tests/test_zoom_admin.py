"""The admin's Zoom actions: publish/unpublish, the source default, upload by hand — all audited."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.config import load_settings
from core.db import session_scope
from core.models import AuditEntry, Job, MediaItem
from core.zoom.admin import (
    get_source_default,
    list_meetings,
    playback_for,
    publish,
    set_source_default,
    unpublish,
    upload_recording,
)

PAGE = Path(__file__).resolve().parent.parent / "pages" / "admin_zoom.py"


@pytest.fixture()
def recording(tmp_path):
    media = tmp_path / "talk.m4a"
    media.write_bytes(b"\x00\x00\x00\x18ftypM4A fake audio")
    vtt = tmp_path / "talk.vtt"
    vtt.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nAnthony Chaffee: Hello.\n")
    return media, vtt


def test_upload_is_hidden_queued_audited_and_idempotent(db, recording):
    media, vtt = recording
    with session_scope() as s:
        item_id = upload_recording(s, media, "Members Q&A", "admin", transcript_path=vtt)
    with session_scope() as s:
        again = upload_recording(s, media, "Members Q&A", "admin")
    assert again == item_id
    with session_scope() as s:
        item = s.get(MediaItem, item_id)
        assert (item.title, item.visible, item.status) == ("Members Q&A", False, "queued")
        assert item.media_path and item.media_path != str(media)  # our own copy, for playback
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        assert [a.action for a in s.scalars(select(AuditEntry))] == ["zoom.upload", "zoom.upload"]
        [row] = list_meetings(s)
        assert (row.state, row.has_zoom_transcript) == ("processing", True)


def test_publish_unpublish_and_default_are_audited(db, recording):
    media, _ = recording
    with session_scope() as s:
        item_id = upload_recording(s, media, "Talk", "admin")
        s.get(MediaItem, item_id).status = "indexed"
    with session_scope() as s:
        assert publish(s, item_id, "admin") is True
        assert publish(s, item_id, "admin") is False  # already published: no second audit row
        assert [r.state for r in list_meetings(s)] == ["published"]
        assert unpublish(s, item_id, "admin") is True
        assert get_source_default(s) is False
        set_source_default(s, True, "admin")
        assert get_source_default(s) is True
    with session_scope() as s:
        rows = [(a.action, a.before, a.after) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert rows[1:] == [
        ("zoom.publish", {"visible": False}, {"visible": True}),
        ("zoom.unpublish", {"visible": True}, {"visible": False}),
        ("zoom.default_publish", {"publish_by_default": False}, {"publish_by_default": True}),
    ]


def test_playback_only_for_those_allowed(db, recording):
    media, _ = recording
    with session_scope() as s:
        item_id = upload_recording(s, media, "Talk", "admin")
    with session_scope() as s:
        assert playback_for(s, item_id, 12.0, is_admin=False) is None  # hidden meeting
        assert playback_for(s, item_id, 12.0, is_admin=True).kind == "file"
        publish(s, item_id, "admin")
        seen = playback_for(s, item_id, 12.0, is_admin=False, settings=load_settings())
        assert (seen.kind, seen.start_s) == ("file", 12.0)


def test_zoom_page_lists_hidden_meetings_to_the_admin_and_publishes(db, recording):
    from streamlit.testing.v1 import AppTest

    media, _ = recording
    with session_scope() as s:
        upload_recording(s, media, "Private members call", "admin")

    anonymous = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert "Private members call" not in str([e.value for e in anonymous.dataframe]) + str(anonymous.markdown)
    assert not anonymous.button  # nothing to press without signing in

    page = AppTest.from_file(str(PAGE), default_timeout=60)
    page.session_state["admin_user"] = "admin"
    page.run()
    assert not page.exception
    assert "Private members call" in page.dataframe[0].value["Topic"].tolist()
    next(b for b in page.button if b.label == "Publish").click().run()
    assert not page.exception
    with session_scope() as s:
        assert [r.state for r in list_meetings(s)] == ["processing"] and list_meetings(s)[0].visible
        assert s.scalars(select(AuditEntry.action).order_by(AuditEntry.id.desc())).first() == "zoom.publish"
