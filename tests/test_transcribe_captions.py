"""Caption parsing: real Whisper-style SRT files, and YouTube/Zoom samples written to the formats' shapes."""
from __future__ import annotations

import json

import pytest

from core.records import Segment
from core.transcribe.captions import parse_caption_file, parse_captions
from tests.conftest import shared_path

# YouTube automatic captions as VTT: per-word <time><c> tags, and each cue repeats the
# previous line above the new one (plus 10 ms "settle" cues that only repeat).
YOUTUBE_AUTO_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.160 --> 00:00:02.990 align:start position:0%
 
so<00:00:00.480><c> today</c><00:00:00.799><c> we're</c><00:00:01.040><c> going</c><00:00:01.199><c> to</c><00:00:01.360><c> talk</c>

00:00:02.990 --> 00:00:03.000 align:start position:0%
so today we're going to talk
 

00:00:03.000 --> 00:00:05.430 align:start position:0%
so today we're going to talk
about<00:00:03.360><c> the</c><00:00:03.600><c> carnivore</c><00:00:04.160><c> diet</c>

00:00:05.430 --> 00:00:05.440 align:start position:0%
about the carnivore diet
 

00:00:05.440 --> 00:00:08.070 align:start position:0%
about the carnivore diet
[Music]

00:00:08.070 --> 00:00:10.000 align:start position:0%
[Music]
and<00:00:08.400><c> why</c><00:00:08.700><c> it</c><00:00:09.000><c> works</c>
"""

# The same speech as YouTube's json3: window events without text, overlapping line events,
# and "aAppend" events that only add a line break.
YOUTUBE_AUTO_JSON3 = {
    "wireMagic": "pb3",
    "pens": [{}],
    "wsWinStyles": [{}, {"mhModeHint": 2, "juJustifCode": 0, "sdScrollDir": 3}],
    "wpWinPositions": [{}, {"apPoint": 6, "ahHorPos": 20, "avVerPos": 100, "rcRows": 2, "ccCols": 40}],
    "events": [
        {"tStartMs": 0, "dDurationMs": 10000, "id": 1, "wpWinPosId": 1, "wsWinStyleId": 1},
        {"tStartMs": 160, "dDurationMs": 5270, "wWinId": 1, "segs": [
            {"utf8": "so", "acAsrConf": 0}, {"utf8": " today", "tOffsetMs": 320, "acAsrConf": 0},
            {"utf8": " we're", "tOffsetMs": 639}, {"utf8": " going", "tOffsetMs": 880},
            {"utf8": " to", "tOffsetMs": 1039}, {"utf8": " talk", "tOffsetMs": 1200}]},
        {"tStartMs": 2990, "dDurationMs": 2440, "wWinId": 1, "aAppend": 1, "segs": [{"utf8": "\n"}]},
        {"tStartMs": 3000, "dDurationMs": 5070, "wWinId": 1, "segs": [
            {"utf8": "about"}, {"utf8": " the", "tOffsetMs": 360}, {"utf8": " carnivore", "tOffsetMs": 600},
            {"utf8": " diet", "tOffsetMs": 1160}]},
        {"tStartMs": 5430, "dDurationMs": 2640, "wWinId": 1, "aAppend": 1, "segs": [{"utf8": "\n"}]},
        {"tStartMs": 5440, "dDurationMs": 4560, "wWinId": 1, "segs": [
            {"utf8": "and"}, {"utf8": " why", "tOffsetMs": 480}, {"utf8": " it", "tOffsetMs": 760},
            {"utf8": " works", "tOffsetMs": 1040}]},
    ],
}

# Zoom cloud-recording transcript: "Name: text" on each cue.
ZOOM_VTT = """WEBVTT

1
00:00:01.000 --> 00:00:04.500
Anthony Chaffee: Welcome everyone to the call.

2
00:00:04.600 --> 00:00:09.000
Jane O'Neil: Thanks. Quick question: what about fiber?

3
00:00:09.100 --> 00:00:12.000
Anthony Chaffee: Note: 5:30 is when we start.

4
00:00:12.000 --> 00:00:12.100
Note: 5:30 sharp.

5
00:00:12.100 --> 00:00:14.000
Dr. Mary Ann Smith: Sounds good &amp; see you then.
"""

EXPECTED_SPEECH = ["so today we're going to talk", "about the carnivore diet", "and why it works"]


def _words(segments) -> list[str]:
    return " ".join(s.text for s in segments).split()


def test_youtube_auto_vtt_rolling_lines_are_not_repeated():
    segments = parse_captions(YOUTUBE_AUTO_VTT, "vtt")
    assert [s.text for s in segments] == EXPECTED_SPEECH
    # Each line keeps the time it was first spoken, not the time it was re-shown.
    assert [(s.start, s.end) for s in segments] == [(0.16, 2.99), (3.0, 5.43), (8.07, 10.0)]
    assert all(s.speaker is None for s in segments)


def test_youtube_json3_joins_word_segs_and_makes_times_monotonic():
    segments = parse_captions(json.dumps(YOUTUBE_AUTO_JSON3).encode(), "json3")
    assert [s.text for s in segments] == EXPECTED_SPEECH
    # Overlapping auto-caption events end where the next line starts.
    assert [(s.start, s.end) for s in segments] == [(0.16, 3.0), (3.0, 5.44), (5.44, 10.0)]


def test_json3_append_event_with_text_continues_the_previous_line():
    doc = {"events": [
        {"tStartMs": 1000, "dDurationMs": 2000, "segs": [{"utf8": "Hello there,"}]},
        {"tStartMs": 2500, "dDurationMs": 1500, "aAppend": 1, "segs": [{"utf8": "general Kenobi"}]},
    ]}
    assert parse_captions(json.dumps(doc), "json3") == [Segment(1.0, 4.0, "Hello there, general Kenobi")]


def test_zoom_speaker_prefix_goes_to_speaker():
    segments = parse_captions(ZOOM_VTT.encode(), "vtt")
    assert [(s.speaker, s.text) for s in segments] == [
        ("Anthony Chaffee", "Welcome everyone to the call."),
        ("Jane O'Neil", "Thanks. Quick question: what about fiber?"),
        ("Anthony Chaffee", "Note: 5:30 is when we start."),
        (None, "Note: 5:30 sharp."),  # a label followed by a time names nobody
        ("Dr. Mary Ann Smith", "Sounds good & see you then."),
    ]
    assert segments[0].start == 1.0 and segments[-1].end == 14.0


def test_inline_labels_in_a_transcript_become_speakers_and_leave_the_text():
    srt = (
        "1\n00:00:01,000 --> 00:00:04,000\nHost: So what do you eat in a day?\n\n"
        "2\n00:00:04,000 --> 00:00:09,000\nChaffee: Just red meat and water, mostly.\n\n"
        "3\n00:00:09,000 --> 00:00:12,000\nand that has worked for years.\n\n"
        "4\n00:00:12,000 --> 00:00:16,000\nHost: Really?\nChaffee: Really, twenty years now.\n\n"
        "5\n00:00:16,000 --> 00:00:18,000\nNote: one more thing.\n\n"
        "6\n00:00:18,000 --> 00:00:20,000\nThanks for having me.\n"
    )
    segments = parse_captions(srt, "srt")
    assert [(s.speaker, s.text) for s in segments] == [
        ("Host", "So what do you eat in a day?"),
        ("Chaffee", "Just red meat and water, mostly."),
        (None, "and that has worked for years."),  # unlabelled: maybe the other person, so nobody
        ("Host", "Really?"),
        ("Chaffee", "Really, twenty years now."),
        (None, "Note: one more thing."),  # said once: a phrase, not a speaker
        (None, "Thanks for having me."),
    ]
    # A cue that changes speaker is split; its time is shared by length, in order.
    host, guest = segments[3], segments[4]
    assert host.start == 12.0 and host.end == guest.start and guest.end == 16.0 and host.end < 14.0


def test_colon_phrases_in_ordinary_captions_stay_text():
    vtt = """WEBVTT

00:00:01.000 --> 00:00:03.000
Note: 5:30 is the start time.

00:00:03.000 --> 00:00:05.000
We meet at 5:30 tomorrow.

00:00:05.000 --> 00:00:07.000
And that is the plan for everyone.
"""
    segments = parse_captions(vtt, "vtt")
    assert [s.speaker for s in segments] == [None, None, None]
    assert segments[0].text == "Note: 5:30 is the start time."


def test_webvtt_voice_span_names_the_speaker_and_markup_is_removed():
    vtt = "WEBVTT\n\n00:01.000 --> 00:04.000\n<v Roger Bingham><i>We are in New York City</i>\n"
    assert parse_captions(vtt, "vtt")[0][2:] == ("We are in New York City", "Roger Bingham")


def test_human_vtt_keeps_a_line_said_twice():
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nNo.\n\n00:00:02.000 --> 00:00:03.000\nNo.\n"
    assert [s.text for s in parse_captions(vtt, "vtt")] == ["No.", "No."]


def test_srt_with_markup_windows_line_ends_and_cp1252():
    srt = ("1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Café</i> talk\r\n\r\n"
           "2\r\n00:00:03,000 --> 00:00:04,000\r\n[Applause]\r\n\r\n"
           "3\r\n00:00:04,000 --> 00:00:06,000\r\nsecond line\r\ncontinues").encode("cp1252")
    segments = parse_captions(srt, "srt")
    assert [(s.start, s.end, s.text) for s in segments] == [(1.0, 2.5, "Café talk"), (4.0, 6.0, "second line continues")]


@pytest.mark.parametrize("name, cues, last_end", [("48fTLPbE5JA", 1201, 7183.03), ("RcBwvdVEAr8", 902, 4428.92)])
def test_real_srt_files(name, cues, last_end):
    path = shared_path("transcripts", f"{name}.srt")
    segments = parse_caption_file(path)
    assert len(segments) == cues
    assert segments[-1].end == pytest.approx(last_end)
    assert all(s.text.strip() for s in segments)
    assert all(a.start <= b.start for a, b in zip(segments, segments[1:]))
    assert all(s.end >= s.start for s in segments)
    # These files label the guest's lines "Chaffee: …": the label is the speaker, never a word.
    labelled = [s for s in segments if s.speaker is not None]
    assert labelled and {s.speaker for s in labelled} == {"Chaffee"}
    assert not any("Chaffee:" in s.text for s in segments)
    # Nothing lost: every word of every cue (timing and number lines aside) is in the segments.
    raw = path.read_text(encoding="utf-8").split("\n")
    payload = [ln.removeprefix("Chaffee: ") for i, ln in enumerate(raw) if ln.strip() and "-->" not in ln
               and not (ln.strip().isdigit() and i + 1 < len(raw) and "-->" in raw[i + 1])]
    assert _words(segments) == " ".join(payload).split()
    assert len(labelled) == sum(ln.startswith("Chaffee: ") for ln in raw)


def test_real_srt_files_cover_three_and_a_half_hours():
    total = sum(parse_caption_file(shared_path("transcripts", f"{n}.srt"))[-1].end
                for n in ("48fTLPbE5JA", "RcBwvdVEAr8"))
    assert 3.2 * 3600 < total < 3.5 * 3600


def test_caption_file_format_from_extension(tmp_path):
    (tmp_path / "abc.en.vtt").write_text(YOUTUBE_AUTO_VTT)
    (tmp_path / "abc.en.json3").write_text(json.dumps(YOUTUBE_AUTO_JSON3))
    assert [s.text for s in parse_caption_file(tmp_path / "abc.en.vtt")] == EXPECTED_SPEECH
    assert [s.text for s in parse_caption_file(tmp_path / "abc.en.json3")] == EXPECTED_SPEECH


@pytest.mark.parametrize("data, fmt, message", [
    (b"just some words", "vtt", "no WebVTT cues"),
    (b"1\nhello\n", "srt", "no SRT cues"),
    (b"{not json", "json3", "not json3"),
    (b'{"something": []}', "json3", "no 'events'"),
    (b"x", "ttml", "unknown caption format"),
])
def test_unparseable_input_raises_a_clear_value_error(data, fmt, message):
    with pytest.raises(ValueError, match=message):
        parse_captions(data, fmt)


def test_unknown_extension_and_empty_vtt(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt: unknown caption file type"):
        parse_caption_file(tmp_path / "notes.txt")
    assert parse_captions("WEBVTT\n\n", "vtt") == []
