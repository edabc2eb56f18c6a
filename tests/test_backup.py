"""Backups through the real CLI: `python -m core backup` of the embedded database, `python -m core
restore FILE` into an empty data directory gives the same search results; bad files and a
database that holds data are refused with one sentence; retention keeps the newest files."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT
from tests.conftest import shared_path
from tests.pgtcp import scratch_dir
from tests.test_search_replicas import _srt_slice

QUERIES = ("control trials and interventional trials in humans", "crohn's disease", "what about fibre")


def cli(*args: str, data_dir: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if data_dir is not None:
        env["DATA_DIR"] = str(data_dir)  # another machine's (or a new) embedded database
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# The `search` command run for each query in ONE process, through `core.__main__.main` exactly as
# `python -m core search Q` runs it: a process start imports the stack and loads the embedder (≈ 8 s on
# two busy cores) and this file compares the three queries four times. Each query's printed output and
# exit code come back as JSON.
_SEARCH_EACH = """
import contextlib, io, json, sys
from core.__main__ import main
results = []
for q in sys.argv[1:]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["search", q])
    results.append([code, printed.getvalue()])
print(json.dumps(results))
"""


def searches(data_dir: Path | None = None) -> list[str]:
    env = {**os.environ}
    if data_dir is not None:
        env["DATA_DIR"] = str(data_dir)  # another machine's (or a new) embedded database
    out = subprocess.run([sys.executable, "-c", _SEARCH_EACH, *QUERIES], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    outs = []
    for q, (code, printed) in zip(QUERIES, json.loads(out.stdout.splitlines()[-1]), strict=True):
        assert code == 0, (q, out.stderr[-2000:])
        outs.append(re.sub(r"\(\d+ ms\)\s*$", "", printed))  # the timing differs, nothing else may
    return outs


def test_restore_into_an_empty_data_directory_gives_identical_search_results(db, tmp_path):
    srt = tmp_path / "crohns.srt"
    _srt_slice(shared_path("transcripts", "48fTLPbE5JA.srt"), srt, 300, 765)
    out = cli("ingest", str(srt), "--title", "Crohn's Q&A")
    assert out.returncode == 0, out.stderr[-2000:]
    before = searches()
    assert "Crohn's Q&A" in before[0]

    made = cli("backup", "--dir", str(tmp_path / "backups"))
    assert made.returncode == 0, made.stderr
    dump = Path(re.search(r"^backup (\S+) ", made.stdout).group(1))
    assert dump.parent == tmp_path / "backups" and dump.stat().st_size > 0
    assert not list((tmp_path / "backups").glob("*.partial"))

    fresh = scratch_dir("chaffee-restore-") / "new-machine"  # outside tmp_path: see tests/pgtcp.scratch_dir
    done = cli("restore", str(dump), data_dir=fresh)
    assert done.returncode == 0, done.stderr
    assert (fresh / "pgdata" / "PG_VERSION").exists()
    assert searches(fresh) == before

    # A second restore would replace the archive that is there now: refused, data untouched.
    again = cli("restore", str(dump), data_dir=fresh)
    assert again.returncode == 1 and "already holds an archive" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert searches(fresh) == before
    forced = cli("restore", str(dump), "--force", data_dir=fresh)
    assert forced.returncode == 0, forced.stderr
    assert searches(fresh) == before


@pytest.mark.parametrize("damage", ["missing", "not-a-dump", "truncated"])
def test_a_missing_or_corrupt_file_is_refused_in_one_sentence_and_changes_nothing(db, tmp_path, damage):
    bad = tmp_path / "bad.dump"
    if damage == "not-a-dump":
        bad.write_text("SELECT 1;\n")
    elif damage == "truncated":  # half of a real backup (only this case needs one: a CLI start is seconds)
        made = cli("backup", "--dir", str(tmp_path / "b"))
        assert made.returncode == 0, made.stderr
        good = Path(re.search(r"^backup (\S+) ", made.stdout).group(1))
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    fresh = tmp_path / "empty"
    out = cli("restore", str(bad), data_dir=fresh)
    assert out.returncode == 1, out.stdout
    line = out.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, line
    expected = {"missing": "No backup file", "not-a-dump": "is not a backup", "truncated": "damaged or incomplete"}
    assert expected[damage] in line, line
    assert not (fresh / "pgdata").exists()  # refused before any database was touched


def test_retention_keeps_the_newest_backups(db, tmp_path):
    folder = tmp_path / "b"
    names = []
    for _ in range(4):
        out = cli("backup", "--dir", str(folder), "--keep", "2")
        assert out.returncode == 0, out.stderr
        names.append(Path(out.stdout.split()[1]).name)
    assert sorted(p.name for p in folder.iterdir()) == names[-2:]
