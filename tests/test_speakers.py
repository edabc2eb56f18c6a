"""Speaker turns through the real pipeline: a real conversation file ingested with the real CLI
(local whisper), then `python -m core diarize` with the real voice encoder.

Needs the optional speakers extra (`make install-speakers`); without it these tests skip and
say so. The conversations are made of real, different speakers (tests/conversations.py).
"""
from __future__ import annotations

import re
import shutil

import pytest
from sqlalchemy import text

from core import speakers
from core.db import session_scope
from tests import conversations as cv
from tests.conftest import shared_path
from tests.test_spine_e2e import cli

pytestmark = pytest.mark.slow
HOST = "Dr. Anthony Chaffee"


@pytest.fixture(scope="module", autouse=True)
def extra():
    if not speakers.available():
        pytest.skip(f"needs the optional speakers extra ({speakers.INSTALL_HINT}); missing here: "
                    f"{', '.join(speakers.missing())}")


@pytest.fixture(scope="module")
def audio_dir():
    return shared_path("audio", "jfk.flac").parent


def _ingest(path, title: str) -> int:
    done = cli("ingest", str(path), "--title", title)
    assert done.returncode == 0, done.stderr
    return int(re.search(r"item (\d+)", done.stdout).group(1))


def _segments(item_id: int):
    with session_scope() as s:
        return s.execute(text("SELECT start_s, end_s, text, speaker, speaker_by FROM transcript_segments "
                              "WHERE media_item_id = :i ORDER BY idx"), {"i": item_id}).all()


def test_two_speakers_get_two_names_with_the_change_within_a_second(db, audio_dir, tmp_path):
    conv = cv.build(audio_dir, tmp_path, "2 speakers", cv.SEQUENCES["2 speakers"], pauses=False)
    item = _ingest(conv.path, "Two voices, back to back")
    run = cli("diarize", str(item))
    assert run.returncode == 0, run.stderr
    assert f"item {item}: 2 speaker(s) (Guest 1, Guest 2)" in run.stdout

    segs = _segments(item)
    assert {s.speaker for s in segs} == {"Guest 1", "Guest 2"}
    assert all(s.speaker_by == "voice" for s in segs)
    # Where the named speaker changes between segments, against where the voice really changes.
    found = [b.start_s for a, b in zip(segs, segs[1:]) if a.speaker != b.speaker]
    assert len(found) == len(conv.changes), (found, conv.changes)
    for ref, hyp in zip(conv.changes, found):
        assert abs(ref - hyp) <= 1.0, (conv.changes, found)
    # Each turn's segments carry one name, and the two voices alternate: Guest 1, 2, 1, 2.
    runs = [segs[0].speaker] + [b.speaker for a, b in zip(segs, segs[1:]) if a.speaker != b.speaker]
    assert runs == ["Guest 1", "Guest 2", "Guest 1", "Guest 2"]
    # No chunk joins the two voices any more, so a filter or a quote never mixes them.
    with session_scope() as s:
        lists = s.execute(text("SELECT speakers FROM chunks WHERE media_item_id = :i"), {"i": item}).scalars().all()
    assert lists and all(n in ("Guest 1", "Guest 2") for n in lists)

    status = cli("diarize", "--status")
    assert "0 item(s) pending" in status.stdout


def test_an_enrolled_voice_is_named_and_transcript_names_and_renames_win(db, audio_dir, tmp_path):
    from core.speakers import admin

    # The admin enrols the host from a span of one video where only he speaks (voice C's first clip) …
    first = cv.build(audio_dir, tmp_path, "enrol", ("fleurs-en-001", "jfk"), pauses=True)
    enrol_item = _ingest(first.path, "Interview one")
    c_turn = first.turns[0]
    with session_scope() as s:
        admin.enrol_from_item(s, "admin", enrol_item, c_turn.start, c_turn.end, HOST)
    with session_scope() as s:
        audit = s.execute(text("SELECT action, target FROM audit_log")).all()
    assert ("speaker.enrol", f"voice {HOST}") in [tuple(r) for r in audit]

    # … and a later video with his other recording among two other voices names him there.
    later = cv.build(audio_dir, tmp_path, "later", ("fleurs-en-000", "fleurs-en-005", "fleurs-en-002"), pauses=True)
    item = _ingest(later.path, "Interview two")
    # One segment already named by its transcript (an inline label) must keep that name.
    with session_scope() as s:
        s.execute(text("UPDATE transcript_segments SET speaker = 'Producer' WHERE media_item_id = :i AND idx = 0"),
                  {"i": item})
    run = cli("diarize", str(item))
    assert run.returncode == 0, run.stderr
    segs = _segments(item)
    assert segs[0].speaker == "Producer" and segs[0].speaker_by is None
    host_turn = later.turns[1]
    for s in segs[1:]:
        mid = (s.start_s + s.end_s) / 2
        if host_turn.start <= mid <= host_turn.end:
            assert s.speaker == HOST, (s, host_turn)
        else:
            assert s.speaker != HOST and s.speaker.startswith("Guest "), s
    guest = next(s.speaker for s in segs if s.speaker.startswith("Guest "))

    # The admin renames a guest of this item; the audit says so, and a new pass keeps the name.
    with session_scope() as s:
        admin.rename_speaker(s, "admin", item, guest, "Richard Smith")
    assert cli("diarize", str(item)).returncode == 0
    names = {s.speaker for s in _segments(item)}
    assert "Richard Smith" in names and guest not in names and HOST in names
    with session_scope() as s:
        renamed = s.execute(text("SELECT before, after FROM audit_log WHERE action = 'speaker.rename'")).one()
    assert renamed.before == {"speaker": guest} and renamed.after["speaker"] == "Richard Smith"


def test_a_pass_stopped_by_its_time_budget_resumes_where_it_stopped(db, audio_dir, tmp_path):
    import numpy as np

    from core.speakers import stage, voice

    conv = cv.build(audio_dir, tmp_path, "2 speakers", cv.SEQUENCES["2 speakers"], pauses=True)
    item = _ingest(conv.path, "Budgeted pass")
    wav = voice.load_audio(conv.path)
    full = voice.embed_windows(wav)
    # Continuing from the first windows gives exactly the vectors of one whole run.
    resumed = voice.embed_windows(wav, done=full.vectors[:10])
    assert np.allclose(resumed.vectors, full.vectors, atol=1e-5)

    # A budget already spent: the pass stops, keeps what it has, writes no speaker …
    with pytest.raises(voice.OutOfTime):
        stage.diarize_item(item, deadline=0.0)
    assert stage._checkpoint(item).exists()
    assert all(s.speaker is None for s in _segments(item))
    report = stage.diarize_pending(budget_s=1e-9)
    assert report.out_of_time and report.left == 1 and not report.done
    # … and the next pass finishes the item and drops the saved windows.
    report = stage.diarize_pending()
    assert [p.item_id for p in report.done] == [item] and report.left == 0
    assert not stage._checkpoint(item).exists()
    assert {s.speaker for s in _segments(item)} == {"Guest 1", "Guest 2"}


def test_a_transcribed_videos_audio_waits_for_its_pass_and_is_not_fetched_again(db, audio_dir, tmp_path):
    from core.speakers import stage

    conv = cv.build(audio_dir, tmp_path, "2 speakers", cv.SEQUENCES["2 speakers"], pauses=True)
    item = _ingest(conv.path, "A video transcribed here")
    # Make it a YouTube video whose id no server knows: any fetch would fail, offline or not.
    with session_scope() as s:
        src = s.execute(text("INSERT INTO sources (kind, name, url) VALUES ('youtube', 'ch', 'https://yt.test') "
                             "RETURNING id")).scalar_one()
        s.execute(text("UPDATE media_items SET source_id = :s, external_id = 'zzzzzzzzzzz', media_path = NULL, "
                       "engine = 'local' WHERE id = :i"), {"s": src, "i": item})
    copy = tmp_path / "downloaded.wav"
    shutil.copy(conv.path, copy)
    assert stage.keep_audio(item, copy)  # what the pipeline does instead of deleting the download
    assert not copy.exists() and stage._kept(item) is not None

    done = stage.diarize_item(item)
    assert done.speakers == ["Guest 1", "Guest 2"]
    assert stage._kept(item) is None  # listened to once, then deleted
