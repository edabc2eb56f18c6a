"""Admin → Settings → Speakers under AppTest: what the page offers with and without the extra,
and a rename of one video's speaker (works without the extra: Zoom names can be renamed too)."""
from __future__ import annotations

from sqlalchemy import text

from core import speakers
from core.db import session_scope
from tests.test_admin_pages import _button, _no_errors, _page


def _seed_item(s) -> int:
    src = s.execute(text("INSERT INTO sources (kind, name, url) VALUES ('upload', 'Uploads', NULL) RETURNING id")).scalar_one()
    item = s.execute(text("INSERT INTO media_items (source_id, external_id, title, url, status, indexed_at) "
                          "VALUES (:s, 'h1', 'Live Q&A', 'file:///x.wav', 'indexed', now()) RETURNING id"),
                     {"s": src}).scalar_one()
    for i, (who, by) in enumerate([("Guest 1", "voice"), ("Dr. Anthony Chaffee", "voice"), ("Guest 1", "voice")]):
        s.execute(text("INSERT INTO transcript_segments (media_item_id, idx, start_s, end_s, text, speaker, speaker_by, "
                       "engine) VALUES (:m, :i, :a, :b, 'words', :who, :by, 'local')"),
                  {"m": item, "i": i, "a": i * 10.0, "b": i * 10.0 + 9, "who": who, "by": by})
        s.execute(text("INSERT INTO chunks (media_item_id, idx, start_s, end_s, text, speakers) "
                       "VALUES (:m, :i, :a, :b, 'words', :who)"), {"m": item, "i": i, "a": i * 10.0, "b": i * 10.0 + 9, "who": who})
    return int(item)


def test_the_settings_page_says_what_the_speakers_extra_adds_or_offers_enrolment(db):
    at = _page("admin_settings.py")
    _no_errors(at)
    infos = " ".join(i.value for i in at.info)
    if speakers.available():
        assert "make install-speakers" not in infos
        assert any(b.label == "Enrol voice" for b in at.button)
    else:
        assert speakers.WHAT_IT_ADDS in infos and "make install-speakers" in infos
        assert not any(b.label == "Enrol voice" for b in at.button)


def test_the_admin_renames_a_guest_of_one_video_and_the_audit_says_so(db):
    with session_scope() as s:
        item = _seed_item(s)
    at = _page("admin_settings.py")
    at.selectbox(key="rename_item").set_value(item).run()
    form = [sb for sb in at.selectbox if sb.label == "Speaker"][0]
    form.set_value("Guest 1")
    [t for t in at.text_input if t.label == "New name"][0].input("Richard Smith")
    _button(at, "Rename").click().run()
    _no_errors(at)
    with session_scope() as s:
        segs = s.execute(text("SELECT speaker, speaker_by FROM transcript_segments WHERE media_item_id = :i ORDER BY idx"),
                         {"i": item}).all()
        chunks = s.execute(text("SELECT speakers FROM chunks WHERE media_item_id = :i ORDER BY idx"), {"i": item}).scalars().all()
        row = s.execute(text("SELECT actor, before, after FROM audit_log WHERE action = 'speaker.rename'")).one()
    assert [tuple(r) for r in segs] == [("Richard Smith", "admin"), ("Dr. Anthony Chaffee", "voice"),
                                        ("Richard Smith", "admin")]
    assert chunks == ["Richard Smith", "Dr. Anthony Chaffee", "Richard Smith"]
    assert row.actor == "admin" and row.before == {"speaker": "Guest 1"} and row.after["segments"] == 2


def test_a_name_with_a_comma_is_refused_in_a_sentence(db):
    with session_scope() as s:
        item = _seed_item(s)
    at = _page("admin_settings.py")
    at.selectbox(key="rename_item").set_value(item).run()
    [t for t in at.text_input if t.label == "New name"][0].input("Smith, Richard")
    _button(at, "Rename").click().run()
    assert any("cannot contain a comma" in e.value for e in at.error)


def test_captioned_videos_wait_for_the_admin_before_their_audio_is_fetched(db):
    from core.speakers import admin, store

    with session_scope() as s:
        src = s.execute(text("INSERT INTO sources (kind, name, url) VALUES ('youtube', 'channel', 'https://x') "
                             "RETURNING id")).scalar_one()
        ids = {}
        for engine in ("captions", "local"):
            ids[engine] = s.execute(text(
                "INSERT INTO media_items (source_id, external_id, title, url, status, engine, indexed_at) "
                "VALUES (:src, :ext, :t, 'https://youtu.be/x', 'indexed', :e, now()) RETURNING id"),
                {"src": src, "ext": f"vid{engine}", "t": engine, "e": engine}).scalar_one()
            s.execute(text("INSERT INTO transcript_segments (media_item_id, idx, start_s, end_s, text, engine) "
                           "VALUES (:i, 0, 0, 5, 'hello there', :e)"), {"i": ids[engine], "e": engine})
    with session_scope() as s:
        assert store.pending_ids(s) == [ids["local"]]  # whisper's audio may be fetched again; captions' not yet
        admin.set_captioned_audio(s, "admin", True)
    with session_scope() as s:
        assert sorted(store.pending_ids(s)) == sorted(ids.values())
        row = s.execute(text("SELECT before, after FROM audit_log WHERE action = 'speaker.captioned_audio'")).one()
    assert row.before == {"allowed": False} and row.after == {"allowed": True}
