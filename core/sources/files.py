"""Local audio/video files (uploads, Zoom recordings saved by hand) as a source.

A file's identity is its SHA-256, so ingesting the same recording twice finds the same
item. The file is copied (hard-linked when possible) into the media folder so the
archive does not depend on where the user kept it, and the app's player can serve it.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from core.records import ItemInfo, Transcript
from core.sources.base import BadInput

MEDIA_SUFFIXES = {
    ".mp3", ".m4a", ".wav", ".flac", ".ogg", ".opus", ".aac", ".webm", ".mp4", ".mkv", ".mov", ".m4v",
}


TRANSCRIPT_SUFFIXES = {".srt", ".vtt", ".webvtt", ".json3", ".json"}
VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_BRACKETED_ID = re.compile(r"\[([A-Za-z0-9_-]{11})\]")  # yt-dlp's "Title [id].en.vtt"


def is_transcript_file(path: Path) -> bool:
    return path.suffix.lower() in TRANSCRIPT_SUFFIXES


def youtube_id_in_name(path: Path) -> str | None:
    """The YouTube video id a transcript's file name carries, else None.

    `RcBwvdVEAr8.srt`, `RcBwvdVEAr8.en.vtt` (YouTube Studio, yt-dlp) and `Some title [RcBwvdVEAr8].srt`.
    A bare 11-character stem counts only if it looks random (mixed case past the first letter,
    and not CamelCase words), so `Interview_2.srt`, `transcript1.srt` or `MeetingNote.srt` stay plain uploads.
    """
    if m := _BRACKETED_ID.search(path.name):
        return m.group(1)
    stem = path.name.split(".", 1)[0]
    if not VIDEO_ID.fullmatch(stem):
        return None
    random_looking = any(c.isupper() for c in stem[1:]) and any(c.islower() or c.isdigit() for c in stem)
    camel_words = re.fullmatch(r"(?:[A-Z][a-z]+)+\d*", stem) is not None  # "MeetingNote"
    return stem if random_looking and not camel_words else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_media_file(path: Path) -> Path:
    """A readable file with a media extension, or BadInput saying what is wrong."""
    path = path.expanduser()
    if not path.exists():
        raise BadInput(f"no such file: {path}")
    if not path.is_file():
        raise BadInput(f"not a file: {path}")
    if path.suffix.lower() not in MEDIA_SUFFIXES:
        raise BadInput(
            f"{path.name}: not an audio/video file we know ({', '.join(sorted(MEDIA_SUFFIXES))})"
        )
    if path.stat().st_size == 0:
        raise BadInput(f"{path.name} is empty")
    return path.resolve()


def store_copy(path: Path, media_dir: Path, sha: str) -> Path:
    """Put the file at media_dir/uploads/<sha><suffix> (hard link if the disk allows)."""
    target = media_dir / "uploads" / f"{sha}{path.suffix.lower()}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, target)  # atomic: a half-copied file is never taken for a whole one
    return target


def describe_file(path: Path, sha: str, *, title: str | None = None, duration_s: float | None = None) -> ItemInfo:
    mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    return ItemInfo(
        external_id=sha,
        title=title or path.stem.replace("_", " "),
        url=f"file://{path}",
        published_at=mtime,
        duration_s=duration_s,
    )


class FileSource:
    """Items whose media is already on disk (media_items.media_path)."""

    kind = "upload"

    def list_items(self) -> Iterator[ItemInfo]:
        return iter(())  # uploads arrive one by one; there is nothing to list

    def fetch_metadata(self, external_id: str) -> ItemInfo:
        raise BadInput("uploaded files carry their metadata from the upload")

    def fetch_captions(self, external_id: str) -> Transcript | None:
        return None  # a bare file has no transcript of its own

    def fetch_audio(self, external_id: str, dest_dir: Path) -> Path:
        raise BadInput("an uploaded file is its own audio: use media_items.media_path")
