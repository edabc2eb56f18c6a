"""Caption files → timed segments: YouTube json3, WebVTT (YouTube, Zoom) and SubRip (.srt).

A source's own captions are free and usually better than our transcription, so this parser
is lenient about what it accepts (missing WEBVTT header, `,` or `.` in times, BOMs, Windows
line ends) but strict about what it returns: segments in time order, no empty text, no
markup, and no text repeated by YouTube's rolling automatic captions.

Speaker rule: Zoom writes `Name: text` on each cue; other transcripts label only some lines
("Chaffee: …", "Host: …"). A leading `Name:` on a payload line becomes `Segment.speaker`
(and leaves the text) when
  * the prefix looks like a name: 1–4 words, ≤ 40 characters, starts with a letter, holds no
    digit-colon time and no sentence punctuation (`?`, `!`, `"`), is followed by a space, and
    what follows does not start with a clock time ("Note: 5:30 …" is a label, not a speaker); and
  * the file uses it as a speaker label: at least 80 % of its cues start with a label (Zoom),
    or this very name starts a line at least twice (a labelled interview).
The file-level test keeps ordinary captions ("Note: take 5", "Step one: fast") intact, since
such prefixes are a small minority there and rarely repeat. A label names the speaker of its
own line and the lines after it in the same cue, never of later cues: an unlabelled cue may
be the other person, and quoting a co-host as the guest is worse than naming nobody. A cue
whose lines change speaker is split, its time shared by length. WebVTT voice spans
(`<v Name>text`) always name the speaker.

Transcript import (`read_transcript_file`) is strict where captions are lenient: a file a
person brings must be a real transcript (known encoding, well-formed times that run forward),
or it is refused with one sentence saying what is wrong, before anything is stored.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from core.records import Segment

FORMATS = ("json3", "vtt", "srt")
_EXTENSIONS = {".json3": "json3", ".json": "json3", ".vtt": "vtt", ".webvtt": "vtt", ".srt": "srt"}

# 00:01:02.345 / 01:02.345 / 00:01:02,345 (SRT) / 1:02:03.4 (lenient writers).
_TIME = r"(?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?"
_TIMING_LINE = re.compile(rf"^\s*({_TIME})\s*-->\s*({_TIME})")
_INLINE_TIME = re.compile(r"<\d+:\d{2}(?::\d{2})?\.\d{3}>")  # YouTube's per-word <00:00:01.234>
_VOICE = re.compile(r"<v(?:\.[^\s>]+)?\s+([^>]+)>")  # WebVTT <v Speaker Name>
_TAG = re.compile(r"</?[a-zA-Z][^>]*>|<\d[^>]*>")  # <c>, </c>, <i>, <font …>, <00:00:01.000>
# A line that is only a sound label: [Music], (applause), ♪ … ♪.
_SOUND_TAG = re.compile(r"^\s*(?:\[[^\]]*\]|\([^)]*\)|♪[^♪]*♪?)\s*$")
_SPEAKER = re.compile(r"^\s*(?:>>\s*)?([^\W\d_][^:]{0,39}?):\s+(\S.*)$", re.DOTALL)


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def parse_captions(data: bytes | str, fmt: str) -> list[Segment]:
    """Parse caption text in `fmt` ("json3", "vtt" or "srt") into time-ordered segments.

    Raises ValueError when the input is not that format (no cues, bad JSON, unknown fmt).
    A well-formed file with no cues gives [].
    """
    fmt = fmt.lower().lstrip(".")
    fmt = {"webvtt": "vtt", "subrip": "srt"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"unknown caption format {fmt!r}; expected one of {', '.join(FORMATS)}")
    text = _decode(data)
    if fmt == "json3":
        segments = _parse_json3(text)
    else:
        segments = _parse_cues(text, fmt)
    return _finish(segments)


def parse_caption_file(path: str | Path) -> list[Segment]:
    """Parse a caption file, its format taken from the extension (.json3, .vtt, .srt)."""
    path = Path(path)
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path.name}: unknown caption file type (expected .json3, .vtt or .srt)")
    try:
        return parse_captions(path.read_bytes(), fmt)
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        text = data
    else:
        # UTF-8 (with or without BOM) is the norm; old Windows tools wrote cp1252 SRT files.
        for encoding in ("utf-8-sig", "cp1252"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            text = data.decode("latin-1")
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _seconds(stamp: str) -> float:
    stamp = stamp.replace(",", ".")
    total = 0.0
    for part in stamp.split(":"):
        total = total * 60 + float(part)
    return total


def _clean_line(line: str) -> str:
    line = _TAG.sub("", line)
    line = html.unescape(line).replace("\u00a0", " ")
    # ">>" marks a change of speaker in broadcast-style captions; it is not speech.
    return " ".join(line.split()).removeprefix(">>").strip()


def _finish(segments: list[Segment]) -> list[Segment]:
    """Drop empty text, order by time, and make sure no segment ends before it starts."""
    out = [s for s in segments if s.text.strip()]
    out.sort(key=lambda s: s.start)  # stable: equal starts keep file order
    return [s._replace(end=max(s.end, s.start)) for s in out]


# ---------------------------------------------------------------------------------------------
# YouTube json3
# ---------------------------------------------------------------------------------------------


def _parse_json3(text: str) -> list[Segment]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not json3 caption data: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise ValueError("not json3 caption data: no 'events' list")
    segments: list[Segment] = []
    for event in doc["events"]:
        segs = event.get("segs") if isinstance(event, dict) else None
        if not segs:
            continue  # window/style definitions carry no text
        line = " ".join("".join(str(s.get("utf8", "")) for s in segs).split())
        start = int(event.get("tStartMs", 0)) / 1000
        end = start + int(event.get("dDurationMs", 0)) / 1000
        if event.get("aAppend"):
            # An appended event continues the previous line (auto captions append a bare "\n").
            if line and segments:
                prev = segments[-1]
                segments[-1] = prev._replace(text=f"{prev.text} {line}", end=max(prev.end, end))
            continue
        if line and not _SOUND_TAG.match(line):
            segments.append(Segment(start, end, line))
    # Automatic captions overlap (a line stays up while the next is typed): end each line
    # where the next begins so times are monotonic and spans do not double-count.
    for i in range(len(segments) - 1):
        nxt = segments[i + 1].start
        if segments[i].start < nxt < segments[i].end:
            segments[i] = segments[i]._replace(end=nxt)
    return segments


# ---------------------------------------------------------------------------------------------
# WebVTT and SRT: both are "timing line, then payload lines, blank line"
# ---------------------------------------------------------------------------------------------


class _Cue:
    __slots__ = ("start", "end", "lines")

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.lines: list[str] = []  # raw payload lines (markup still in)


def _split_cues(text: str, fmt: str) -> list[_Cue]:
    cues: list[_Cue] = []
    cue: _Cue | None = None
    for raw in text.split("\n"):
        timing = _TIMING_LINE.match(raw)
        if timing:
            if cue is not None:
                _drop_trailing_identifier(cue)
            cue = _Cue(_seconds(timing.group(1)), _seconds(timing.group(2)))
            cues.append(cue)
        elif cue is not None:
            # A truly empty line ends a cue. YouTube's VTT puts a single space on a line to
            # keep the 2-line layout: that is payload, not a cue end. SRT has no such use.
            if raw == "" or (fmt == "srt" and not raw.strip()):
                cue = None
            else:
                cue.lines.append(raw)
    if cue is not None:
        _drop_trailing_identifier(cue)
    return cues


def _drop_trailing_identifier(cue: _Cue) -> None:
    """A missing blank line can pull the next cue's number ("12") into this payload."""
    if len(cue.lines) > 1 and cue.lines[-1].strip().isdigit():
        cue.lines.pop()


def _parse_cues(text: str, fmt: str) -> list[Segment]:
    cues = _split_cues(text, fmt)
    if not cues:
        if fmt == "vtt" and text.lstrip().startswith("WEBVTT"):
            return []  # a valid, empty caption file
        raise ValueError(f"no {'WebVTT' if fmt == 'vtt' else 'SRT'} cues found (no 'start --> end' lines)")

    # YouTube automatic captions: per-word <00:00:01.234> tags, and every cue repeats the
    # previous cue's line above the new one. Only there do we drop carried-over lines, so a
    # human caption that says "No." twice in a row keeps both.
    rolling = fmt == "vtt" and bool(_INLINE_TIME.search(text))
    speakers = _speaker_names(cues)
    segments: list[Segment] = []
    previous: set[str] = set()
    for cue in cues:
        voice_name: str | None = None
        parts: list[tuple[str | None, list[str]]] = []  # (speaker, lines) in the order said
        shown: set[str] = set()
        for raw in cue.lines:
            if voice := _VOICE.search(raw):
                voice_name = " ".join(voice.group(1).split())
            line = _clean_line(raw)
            if not line or _SOUND_TAG.match(line):
                continue
            shown.add(line)
            if rolling and line in previous:
                continue
            named = _speaker_prefix(line) if speakers else None
            if named and named[0] in speakers and voice_name is None:
                parts.append((named[0], [named[1]]))
            elif parts:
                parts[-1][1].append(line)
            else:
                parts.append((voice_name, [line]))
        if rolling:
            previous = shown
        if voice_name is not None:
            parts = [(voice_name, lines) for _, lines in parts]
        segments.extend(_share_time(cue.start, cue.end, [(who, " ".join(lines)) for who, lines in parts]))
    return segments


def _share_time(start: float, end: float, parts: list[tuple[str | None, str]]) -> list[Segment]:
    """One segment per speaker turn inside a cue, the cue's time divided by text length."""
    parts = [(who, body) for who, body in parts if body]
    if len(parts) <= 1:
        return [Segment(start, end, body, who) for who, body in parts]
    total = sum(len(body) for _, body in parts)
    out, t = [], start
    for i, (who, body) in enumerate(parts):
        t_end = end if i == len(parts) - 1 else t + (end - start) * len(body) / total
        out.append(Segment(round(t, 3), round(t_end, 3), body, who))
        t = t_end
    return out


def _speaker_prefix(text: str) -> tuple[str, str] | None:
    """("Jane Doe", "rest") when `text` starts with a name-like `Jane Doe: rest`, else None."""
    m = _SPEAKER.match(text)
    if not m:
        return None
    name, rest = m.group(1).strip(), m.group(2).strip()
    words = name.split()
    if not 1 <= len(words) <= 4:
        return None
    if re.search(r"\d:\d|[?!\"“”]", name) or name.endswith((".", ",")):
        return None
    if re.match(r"\d{1,2}:\d{2}\b", rest):
        return None  # "Note: 5:30 …" / "Start: 10:00": a label and a time, not a speaker
    return name, rest


def _speaker_names(cues: list[_Cue]) -> frozenset[str]:
    """The names this file uses as speaker labels at the start of payload lines (see the module doc)."""
    counts: dict[str, int] = {}
    labelled_cues = cues_with_text = 0
    for cue in cues:
        lines = [_clean_line(raw) for raw in cue.lines]
        lines = [ln for ln in lines if ln]
        if not lines:
            continue
        cues_with_text += 1
        for i, line in enumerate(lines):
            if named := _speaker_prefix(line):
                counts[named[0]] = counts.get(named[0], 0) + 1
                labelled_cues += i == 0
    if not counts:
        return frozenset()
    if labelled_cues * 5 >= cues_with_text * 4:
        return frozenset(counts)  # Zoom: (nearly) every cue starts with its speaker
    return frozenset(name for name, n in counts.items() if n >= 2)


# ---------------------------------------------------------------------------------------------
# Transcript import: strict checks on a file a person brings
# ---------------------------------------------------------------------------------------------

TRANSCRIPT_SUFFIXES = tuple(_EXTENSIONS)
# Overlap a well-formed transcript may have (one cue still shown as the next starts).
MAX_OVERLAP_S = 2.0
_ANY_TIMING = re.compile(r"-->")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})(?:[.,]\d{1,3})?$")


class TranscriptFileError(ValueError):
    """A file that is not a usable transcript; the message is one sentence for the user."""


def _fmt_time(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"


def _decode_strict(data: bytes, name: str) -> str:
    """UTF-8 (BOM or not), UTF-16/32 with a BOM, or cp1252 text; anything else is refused."""
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                          (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return _decode(data.decode(encoding))
            except UnicodeDecodeError:
                break
    else:
        if b"\x00" not in data:
            for encoding in ("utf-8", "cp1252"):
                try:
                    text = data.decode(encoding)
                except UnicodeDecodeError:
                    continue
                # cp1252 maps almost every byte: binary data shows up as control characters.
                controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
                if controls <= len(text) // 1000:
                    return _decode(text)
    raise TranscriptFileError(
        f"{name}: unknown text encoding (binary data, or UTF-16 without a byte-order mark); save it as UTF-8"
    )


def _check_timing_lines(text: str, name: str) -> None:
    """Every line with '-->' must be a well-formed 'start --> end' with minutes and seconds below 60."""
    for number, line in enumerate(text.split("\n"), 1):
        if not _ANY_TIMING.search(line):
            continue
        m = _TIMING_LINE.match(line)
        stamps = m.groups() if m else ()
        if not m or not all((c := _CLOCK.match(t)) and int(c.group(3)) < 60 and (c.group(1) is None or int(c.group(2)) < 60)
                            for t in stamps):
            raise TranscriptFileError(f"{name}: garbled time on line {number}: {line.strip()[:60]!r}")


def _check_order(spans: list[tuple[float, float]], name: str) -> None:
    """Cues must not end before they start, go back in time, or overlap by more than MAX_OVERLAP_S."""
    prev: tuple[float, float] | None = None
    for i, (start, end) in enumerate(spans, 1):
        if end < start:
            raise TranscriptFileError(f"{name}: cue {i} ends before it starts ({_fmt_time(start)} --> {_fmt_time(end)})")
        if prev is not None:
            if start < prev[0]:
                raise TranscriptFileError(
                    f"{name}: times go backwards at cue {i} ({_fmt_time(start)} after {_fmt_time(prev[0])})"
                )
            if start < prev[1] - MAX_OVERLAP_S:
                raise TranscriptFileError(
                    f"{name}: cue {i} starts at {_fmt_time(start)}, {prev[1] - start:.1f} s before cue {i - 1} ends: "
                    "overlapping times"
                )
        prev = (start, end)


def read_transcript_file(path: str | Path) -> tuple[list[Segment], str]:
    """(segments, format) of a transcript file (.srt, .vtt, .json3), checked strictly.

    Raises TranscriptFileError (one sentence) for an unknown type, an empty file, an unknown
    encoding, garbled, backwards or overlapping times, or a file with no text in it.
    """
    path = Path(path)
    name = path.name
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise TranscriptFileError(f"{name}: not a transcript file (expected .srt, .vtt or .json3)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TranscriptFileError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    if not data.strip():
        raise TranscriptFileError(f"{name} is empty")
    text = _decode_strict(data, name)
    if fmt == "json3":
        try:
            events = json.loads(text).get("events")
        except (json.JSONDecodeError, AttributeError):
            events = None
        if not isinstance(events, list):
            raise TranscriptFileError(f"{name}: not a transcript: not YouTube json3 (no 'events' list)")
        spans = []
        for e in events:
            if isinstance(e, dict) and e.get("segs") and not e.get("aAppend"):
                try:
                    start = int(e.get("tStartMs", 0)) / 1000
                    spans.append((start, start + int(e.get("dDurationMs", 0)) / 1000))
                except (TypeError, ValueError):
                    raise TranscriptFileError(f"{name}: garbled time in event {e.get('tStartMs')!r}") from None
        # Rolling automatic captions overlap by design: only sign and order are checked here.
        for i, (s, e) in enumerate(spans, 1):
            if e < s or s < 0:
                raise TranscriptFileError(f"{name}: event {i} has a negative time or duration")
        if any(b[0] < a[0] for a, b in zip(spans, spans[1:])):
            raise TranscriptFileError(f"{name}: times go backwards (events out of order)")
    else:
        _check_timing_lines(text, name)
        cues = _split_cues(text, fmt)
        if not cues:
            raise TranscriptFileError(f"{name}: not a transcript: no 'start --> end' timing lines")
        rolling = fmt == "vtt" and bool(_INLINE_TIME.search(text))
        if not rolling:  # YouTube's automatic VTT overlaps each line with the next by design
            _check_order([(c.start, c.end) for c in cues], name)
    try:
        segments = parse_captions(text, fmt)
    except ValueError as exc:
        raise TranscriptFileError(f"{name}: not a transcript: {exc}") from None
    if not segments:
        raise TranscriptFileError(f"{name}: the transcript holds no text")
    return segments, fmt
