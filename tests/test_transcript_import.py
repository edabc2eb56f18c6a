"""Transcript import: `python -m core ingest FILE.srt|.vtt|.json3` and Admin → Library's upload.

Through the real CLI and the real database: a YouTube id (from --video or the file name)
makes the item that video; labels become speakers; the engine is "imported"; a re-import is
"already indexed"; a later transcription replaces it; a bad file stores nothing.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from core.config import PROJECT_ROOT
from core.models import Chunk, Job, MediaItem, Source, TranscriptSegment
from tests.conftest import shared_path
from tests.transcripts import labelled_lines, srt_cues

pytestmark = pytest.mark.slow

ZOOM_VTT = """WEBVTT

1
00:00:01.000 --> 00:00:06.000
Anthony Chaffee: Welcome everyone to the monthly call about the carnivore diet.

2
00:00:06.500 --> 00:00:12.000
Jane O'Neil: Thanks. What do you think about oxalates in spinach and almonds?

3
00:00:12.500 --> 00:00:20.000
Anthony Chaffee: Oxalates are a plant toxin; people who stop eating them can feel oxalate dumping for a while.
"""


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _count(db, table) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _ten_minutes_of_the_live_qa(tmp_path) -> Path:
    """01:00–01:10 of the real RcBwvdVEAr8 live Q&A as a 10-minute clip, cue text as written, under
    its own name (the name is the video id): 105 cues, 22 of them labelled `Chaffee:`, and the
    grain-price passage. An import's shape, without embedding all 74 minutes."""
    return srt_cues(shared_path("transcripts", "RcBwvdVEAr8.srt"), tmp_path / "RcBwvdVEAr8.srt", 3600, 4200)


def test_a_youtube_srt_becomes_that_video_with_speakers_and_a_youtube_player(db, tmp_path):
    path = _ten_minutes_of_the_live_qa(tmp_path)
    chaffee_labels = labelled_lines(path, "Chaffee")
    assert chaffee_labels >= 20  # the cut holds a labelled interview, or this test proves nothing
    done = cli("ingest", str(path), "--date", "2023-05-04")
    assert done.returncode == 0, done.stderr
    assert "indexed" in done.stdout and "RcBwvdVEAr8" in done.stdout, done.stdout
    with db.connect() as conn:
        item = conn.execute(select(MediaItem.id, MediaItem.url, MediaItem.engine, MediaItem.external_id,
                                   MediaItem.published_at, Source.kind).join(Source)).one()
        assert item.url == "https://www.youtube.com/watch?v=RcBwvdVEAr8" and item.kind == "youtube"
        assert item.engine == "imported" and item.external_id == "RcBwvdVEAr8"
        assert item.published_at.date().isoformat() == "2023-05-04"
        speakers = dict(conn.execute(select(TranscriptSegment.speaker, func.count()).group_by(TranscriptSegment.speaker)).all())
        # Every `Chaffee:` line is one of his turns; the unlabelled cues name nobody.
        assert speakers.get("Chaffee", 0) == chaffee_labels and None in speakers, speakers
        assert conn.execute(select(func.count()).select_from(Chunk).where(Chunk.text.contains("Chaffee:"))).scalar_one() == 0

    found = cli("search", "price of grain USSR")
    assert found.returncode == 0, found.stderr
    assert "https://www.youtube.com/watch?v=RcBwvdVEAr8&t=" in found.stdout  # links and player are YouTube's

    again = cli("ingest", str(path))
    assert again.returncode == 0 and again.stdout.startswith(f"item {item.id}: already indexed"), again.stdout


def test_a_zoom_vtt_with_title_and_date_is_an_upload_with_named_speakers(db, tmp_path):
    path = tmp_path / "monthly call.vtt"
    path.write_text(ZOOM_VTT)
    done = cli("ingest", str(path), "--title", "Monthly call, March", "--date", "2024-03-01")
    assert done.returncode == 0, done.stderr
    with db.connect() as conn:
        title, kind, engine = conn.execute(select(MediaItem.title, Source.kind, MediaItem.engine).join(Source)).one()
        assert (title, kind, engine) == ("Monthly call, March", "upload", "imported")
        segs = conn.execute(select(TranscriptSegment.speaker, TranscriptSegment.text).order_by(TranscriptSegment.idx)).all()
    assert [s.speaker for s in segs] == ["Anthony Chaffee", "Jane O'Neil", "Anthony Chaffee"]
    assert not any(":" in s.text.split()[0] for s in segs)  # names are speakers, not words


def test_a_json3_with_a_video_url_links_to_that_video(db, tmp_path):
    doc = {"events": [
        {"tStartMs": 0, "dDurationMs": 4000, "segs": [{"utf8": "today we talk about"}, {"utf8": " red meat"}]},
        {"tStartMs": 4000, "dDurationMs": 5000, "segs": [{"utf8": "and why it heals the gut"}]},
    ]}
    path = tmp_path / "captions.json3"
    path.write_text(json.dumps(doc))
    done = cli("ingest", str(path), "--video", "https://youtu.be/dQw4w9WgXcQ")
    assert done.returncode == 0, done.stderr
    with db.connect() as conn:
        assert conn.execute(select(MediaItem.url)).scalar_one() == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def test_a_later_transcription_replaces_the_import_cleanly(db, tmp_path):
    """The imported item gets a whisper run (its audio at hand): segments and chunks are replaced."""
    from core.pipeline import process_item

    path = tmp_path / "call.vtt"
    path.write_text(ZOOM_VTT)
    assert cli("ingest", str(path), "--video", "dQw4w9WgXcQ").returncode == 0
    with db.begin() as conn:
        item_id = conn.execute(select(MediaItem.id)).scalar_one()
        # As if the video's audio had been fetched: the pipeline uses a kept media file first.
        conn.execute(text("UPDATE media_items SET media_path = :p WHERE id = :i"),
                     {"p": str(shared_path("audio", "jfk.flac")), "i": item_id})
    result = process_item(item_id, engines=["local"])
    assert result.engine == "local"
    with db.connect() as conn:
        engines = set(conn.execute(select(TranscriptSegment.engine)).scalars())
        assert engines == {"local"}  # nothing of the import is left
        assert conn.execute(select(MediaItem.engine)).scalar_one() == "local"
        dupes = conn.execute(text("SELECT count(*) FROM (SELECT idx FROM chunks GROUP BY media_item_id, idx "
                                  "HAVING count(*) > 1) d")).scalar_one()
        assert dupes == 0 and _count(db, Chunk) == result.chunk_count
        assert "ask not what your country" in " ".join(conn.execute(select(Chunk.text)).scalars()).lower()

    # And importing again with --force replaces the whisper transcript the same way.
    forced = cli("ingest", str(path), "--video", "dQw4w9WgXcQ", "--force")
    assert forced.returncode == 0, forced.stderr
    with db.connect() as conn:
        assert set(conn.execute(select(TranscriptSegment.engine)).scalars()) == {"imported"}
        assert conn.execute(select(func.count()).select_from(TranscriptSegment)).scalar_one() == 3
        assert conn.execute(select(func.count()).select_from(MediaItem)).scalar_one() == 1


def test_an_import_cancels_a_queued_transcription_of_the_same_video(db, tmp_path):
    from core.backfill import queue
    from core.db import session_scope

    with session_scope() as s:
        src = Source(kind="youtube", name="Channel", url="https://www.youtube.com/@anthonychaffeemd")
        s.add(src)
        s.flush()
        item = MediaItem(source_id=src.id, external_id="RcBwvdVEAr8", title="The real title", url="https://www.youtube.com/watch?v=RcBwvdVEAr8")
        s.add(item)
        s.flush()
        queue.enqueue(s, item.id)
    done = cli("ingest", str(_ten_minutes_of_the_live_qa(tmp_path)))
    assert done.returncode == 0, done.stderr
    with db.connect() as conn:
        assert conn.execute(select(MediaItem.title)).scalar_one() == "The real title"  # the synced item, not a copy
        assert conn.execute(select(Job.status)).scalar_one() == "cancelled"  # no second bill for it


BAD_FILES = {
    "empty": ("talk.srt", b"", "is empty"),
    "not a transcript": ("notes.srt", b"Dear diary, today I ate steak.\nIt was good.\n", "no 'start --> end' timing lines"),
    "garbled time": ("talk.srt", b"1\n00:00:01,000 --> 00:0x:02,000\nhello there\n", "garbled time on line 2"),
    "minutes past 59": ("talk.vtt", b"WEBVTT\n\n00:75:01.000 --> 00:75:02.000\nhello\n", "garbled time on line 3"),
    "ends before it starts": ("talk.srt", b"1\n00:00:05,000 --> 00:00:02,000\nhello there\n", "ends before it starts"),
    "backwards": ("talk.srt", b"1\n00:01:00,000 --> 00:01:02,000\nlater\n\n2\n00:00:10,000 --> 00:00:12,000\nearlier\n",
                  "times go backwards"),
    "overlapping": ("talk.srt", b"1\n00:00:00,000 --> 00:00:30,000\nlong\n\n2\n00:00:05,000 --> 00:00:08,000\ninside\n",
                    "overlapping times"),
    "utf-16 without a BOM": ("talk.srt", "1\n00:00:01,000 --> 00:00:02,000\nhello\n".encode("utf-16-le"), "unknown text encoding"),
    "binary": ("talk.vtt", bytes(range(256)) * 8, "unknown text encoding"),
    "json that is not json3": ("talk.json3", b'{"hello": "world"}', "no 'events' list"),
    "no text": ("talk.srt", b"1\n00:00:01,000 --> 00:00:02,000\n[Music]\n", "holds no text"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_transcript_gets_one_clear_line_and_stores_nothing(db, tmp_path, case):
    name, data, says = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    done = cli("ingest", str(path), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert _count(db, MediaItem) == 0 and _count(db, Source) == 0 and _count(db, Job) == 0


def test_the_admin_upload_imports_audits_and_refuses_bad_files(db, tmp_path):
    from core import admin_actions, audit
    from core.db import session_scope

    data = _ten_minutes_of_the_live_qa(tmp_path).read_bytes()
    with session_scope() as s:
        result = admin_actions.import_transcript(s, "admin", data, "RcBwvdVEAr8.srt", title="Live Q&A")
    # Chunks are ≈ 45 s windows: a whole 10-minute clip is well over 10 of them, a fragment is not.
    assert result.video_id == "RcBwvdVEAr8" and result.chunk_count > 10 and result.status == "indexed"
    assert _count(db, Chunk) == result.chunk_count
    with session_scope() as s:
        (row,) = audit.list_entries(s, action="item.import_transcript")
        assert row.actor == "admin" and "Live Q&A" in row.target
        assert s.scalar(select(MediaItem.engine)) == "imported"
    with session_scope() as s, pytest.raises(admin_actions.AdminActionError, match="already indexed as item"):
        admin_actions.import_transcript(s, "admin", data, "RcBwvdVEAr8.srt")
    with session_scope() as s, pytest.raises(admin_actions.AdminActionError, match="garbled time"):
        admin_actions.import_transcript(s, "admin", b"1\n00:00:01,000 --> nonsense\nhi\n", "../../etc/x.srt")
    assert _count(db, MediaItem) == 1


def test_the_library_page_offers_the_upload(db):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(PROJECT_ROOT) / "pages" / "admin_library.py"), default_timeout=60)
    at.session_state["admin_user"] = "admin"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Import a transcript" in e.label for e in at.expander)


def test_the_cli_quotes_what_is_said_where_the_link_opens(db, tmp_path):
    """A moment's text in the CLI is the words around its link, not the start of its window. In
    this unpunctuated caption the answer about loose stools is said ≈ 50 s into its chunk; the
    listing quoted the chunk's first line ("great okay we've got Lucy here…") under that link."""
    path = srt_cues(shared_path("transcripts", "48fTLPbE5JA.srt"), tmp_path / "48fTLPbE5JA.srt", 5940, 6240)
    assert cli("ingest", str(path)).returncode == 0
    found = cli("search", "loose stools with no fibre in the diet")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    at = next((n for n, line in enumerate(lines) if "watch?v=48fTLPbE5JA&t=" in line), None)
    assert at is not None, found.stdout
    second = int(lines[at].split("&t=")[1].rstrip("s"))
    quoted = []
    for line in lines[at + 1:]:
        if not line.startswith("      "):  # the next moment's link, or the end of the video's block
            break
        quoted.append(line.strip())
    quoted = " ".join(quoted)
    with db.connect() as conn:
        said_there = conn.execute(text("SELECT text FROM transcript_segments WHERE start_s <= :t + 1.5"
                                       " ORDER BY start_s DESC LIMIT 1"), {"t": second}).scalar_one()
    # The quote holds the caption line the link opens on.
    assert said_there.strip() in quoted, (said_there, quoted)


def test_an_answered_search_marks_the_videos_that_do_not_answer(db, tmp_path):
    """'Answered in 1 video.' and then an unrelated recording listed under it as if it answered too:
    in a health archive the CLI must say which listed video is only related."""
    answer = tmp_path / "oxalates.vtt"
    answer.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:06.000\n"
                      "Oxalates are in spinach and almonds, and they can cause kidney stones.\n")
    other = tmp_path / "weather.vtt"
    other.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:06.000\n"
                     "The weather in Paris was cold and rainy for the whole week of the conference.\n")
    assert cli("ingest", str(answer), "--title", "Oxalates Q&A").returncode == 0
    assert cli("ingest", str(other), "--title", "Trip notes").returncode == 0
    found = cli("search", "what does he say about oxalates")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == "Answered in 1 video.", found.stdout
    heads = {line.split(". ", 1)[1].split(" (")[0]: line for line in lines if re.match(r"^\d+\. ", line)}
    assert set(heads) == {"Oxalates Q&A", "Trip notes"}, found.stdout
    assert heads["Trip notes"].endswith("— related, not an answer")
    assert "related" not in heads["Oxalates Q&A"]
