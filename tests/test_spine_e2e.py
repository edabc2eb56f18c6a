"""The spine end to end, through the real CLI: a spoken file becomes a search hit at the right second."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlalchemy import func, select, text

from core.config import PROJECT_ROOT
from core.models import Chunk, MediaItem, TranscriptSegment
from tests.speech import synthesize

pytestmark = pytest.mark.slow


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m core …` in a child process sharing the test's embedded database."""
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TRANSCRIPTION_ENGINES": "captions,local"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _seconds(stamp: str) -> int:
    parts = [int(p) for p in stamp.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    dest = tmp_path_factory.mktemp("speech") / "weekly_qa_episode.wav"
    return dest, synthesize(dest)


def test_ingested_speech_is_found_at_the_second_it_was_said(db, spoken):
    audio, parts = spoken
    done = cli("ingest", str(audio), "--title", "Weekly Q&A episode")
    assert done.returncode == 0, done.stderr
    assert "indexed" in done.stdout

    lighthouse = parts[5]  # spoken about a minute in: a later chunk, not the first
    found = cli("search", "lighthouse keeper counted ships in the storm")
    assert found.returncode == 0, found.stderr
    # The first result block (the verdict's one-line summary, "Answered in 1 video.", comes before it).
    first_hit = next(b for b in found.stdout.split("\n\n") if re.search(r"\[\d+(?::\d\d)+\]", b))
    assert "Weekly Q&A episode" in first_hit
    stamp = re.search(r"\[(\d+(?::\d\d)+)\]", first_hit)
    assert stamp, found.stdout
    # The deep link opens at the sentence that holds the phrase (a short lead-in before it),
    # inside the paragraph that says it, not at the start of its chunk or of the file.
    start = _seconds(stamp.group(1))
    assert lighthouse.start - 3 <= start <= lighthouse.end, (start, lighthouse)
    assert start > 0


def test_ingesting_the_same_file_twice_keeps_one_copy(db, spoken):
    audio, _ = spoken
    assert cli("ingest", str(audio)).returncode == 0
    with db.connect() as conn:
        first = conn.execute(select(func.count()).select_from(Chunk)).scalar_one()
    assert cli("ingest", str(audio)).returncode == 0
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MediaItem)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(Chunk)).scalar_one() == first
        dupes = conn.execute(text("SELECT count(*) FROM (SELECT idx FROM chunks GROUP BY media_item_id, idx HAVING count(*) > 1) d")).scalar_one()
        assert dupes == 0


def test_a_silent_file_is_refused_with_a_reason_and_no_chunks(db, tmp_path):
    silent = tmp_path / "silence.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "20", str(silent)], check=True)
    done = cli("ingest", str(silent))
    assert done.returncode != 0
    assert "speech" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Chunk)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(TranscriptSegment)).scalar_one() == 0
        status, detail = conn.execute(select(MediaItem.status, MediaItem.status_detail)).one()
    # No retry can help a silent file: it is dead-lettered at once, with the reason kept.
    assert status == "dead" and "speech" in detail.lower()


def test_a_corrupt_file_is_refused_before_anything_is_stored(db, tmp_path):
    corrupt = tmp_path / "broken.mp3"
    corrupt.write_bytes(os.urandom(50_000))
    done = cli("ingest", str(corrupt))
    assert done.returncode == 2
    assert "broken.mp3" in done.stderr and "Traceback" not in done.stderr
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MediaItem)).scalar_one() == 0


@pytest.mark.parametrize("target", ["https://www.youtube.com/watch?v=", "htps:/youtube", "https://example.com/video"])
def test_a_malformed_url_gets_a_clear_message(db, target):
    done = cli("ingest", target)
    assert done.returncode == 2
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MediaItem)).scalar_one() == 0


def test_a_missing_file_gets_a_clear_message(db, tmp_path):
    done = cli("ingest", str(tmp_path / "nope.mp4"))
    assert done.returncode == 2 and "no such file" in done.stderr


@pytest.mark.parametrize("query,message", [("   ", "empty"), ("x" * 5000, "long")])
def test_bad_queries_get_a_clear_message(db, query, message):
    done = cli("search", query)
    assert done.returncode == 2
    assert message in done.stderr.lower() and "Traceback" not in done.stderr


def test_an_empty_archive_says_how_to_add_content(db):
    done = cli("search", "anything at all")
    assert done.returncode == 0
    assert "python -m core ingest" in done.stdout
