"""YouTube source: parsing real yt-dlp output, and yt-dlp really running against a local server.

No YouTube here (offline): the far end is tests/fakes/youtube_http.py on 127.0.0.1, reached
through yt-dlp's own extractor, downloader and opener.
"""
from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime

import pytest

from core.backfill.failures import classify, label
from core.config import load_settings
from core.sources.base import (
    AgeRestricted,
    BadInput,
    MembersOnly,
    NotStartedYet,
    PrivateItem,
    RateLimited,
    RegionBlocked,
    SourceError,
    SourceRefused,
    SourceUnreachable,
    TransientSourceError,
    Unavailable,
)
from core.sources.youtube import (
    CaptionTrack,
    YouTubeSource,
    choose_caption_track,
    info_to_item,
    listing_urls,
    map_ytdlp_error,
    parse_channel_feed,
    parse_flat_entry,
    parse_video_url,
)
from core.states import FailureCause
from tests.conftest import require_binary, shared_path
from tests.fakes.youtube_http import FakeYouTube, Route, channel_feed

CHANNEL_ID = "UCzoOSJwe5fOEUGSkOEUsgCg"  # any well-formed id: the feed comes from our server


def _source(**settings) -> YouTubeSource:
    settings.setdefault("youtube_sleep_s", 0)
    return YouTubeSource(load_settings(**settings))


@pytest.fixture()
def fake():
    with FakeYouTube() as server:
        yield server


# ----------------------------------------------------------------- real listing and info files


def test_the_real_channel_listing_parses_completely():
    path = shared_path("youtube", "anthonychaffeemd_flat_playlist.jsonl")
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    items = [parse_flat_entry(e) for e in entries]

    assert len(items) == 572 and all(items)
    assert len({i.external_id for i in items}) == 572
    hours = sum(i.duration_s or 0 for i in items) / 3600
    assert hours == pytest.approx(514, abs=1)
    first = items[0]
    assert first.external_id == "E1Yk-o8xwjw"
    assert first.url == "https://www.youtube.com/watch?v=E1Yk-o8xwjw"
    assert first.title.startswith("My Role in Healing Humanity")
    assert first.view_count == 5897
    # Flat listings carry no upload date: unknown, not invented.
    assert all(i.published_at is None for i in items)


@pytest.mark.parametrize(
    "entry",
    [
        {"_type": "url", "ie_key": "YoutubeTab", "id": "UCzoOSJwe5fOEUGSkOEUsgCg", "title": "Shorts",
         "url": "https://www.youtube.com/@anthonychaffeemd/shorts"},
        {"_type": "playlist", "id": "PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs", "title": "A playlist"},
        {"_type": "url", "ie_key": "Youtube", "title": "no id at all"},
        {"_type": "url", "ie_key": "Youtube", "id": "dQw4w9WgXcQ", "title": "[Private video]", "duration": None},
        {"_type": "url", "ie_key": "Youtube", "id": "dQw4w9WgXcQ", "title": "Live Q&A", "live_status": "is_upcoming"},
    ],
    ids=["shorts-tab", "nested-playlist", "no-id", "private-placeholder", "upcoming-stream"],
)
def test_listing_entries_that_are_not_fetchable_videos_are_skipped(entry):
    assert parse_flat_entry(entry) is None


def test_a_short_in_a_listing_gets_a_normal_watch_url():
    item = parse_flat_entry({"_type": "url", "ie_key": "Youtube", "id": "abcdefghijk", "title": "Clip",
                             "url": "https://www.youtube.com/shorts/abcdefghijk", "duration": 42})
    assert item.url == "https://www.youtube.com/watch?v=abcdefghijk" and item.duration_s == 42


@pytest.mark.parametrize(
    "configured,listed",
    [
        ("https://www.youtube.com/@anthonychaffeemd", ["https://www.youtube.com/@anthonychaffeemd/videos",
                                                       "https://www.youtube.com/@anthonychaffeemd/streams"]),
        ("https://www.youtube.com/channel/UCzoOSJwe5fOEUGSkOEUsgCg/",
         ["https://www.youtube.com/channel/UCzoOSJwe5fOEUGSkOEUsgCg/videos",
          "https://www.youtube.com/channel/UCzoOSJwe5fOEUGSkOEUsgCg/streams"]),
        ("https://www.youtube.com/@anthonychaffeemd/videos", ["https://www.youtube.com/@anthonychaffeemd/videos"]),
        ("https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs",
         ["https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs"]),
    ],
)
def test_a_channel_is_listed_by_its_videos_and_live_tabs_a_playlist_as_given(configured, listed):
    assert listing_urls(configured) == listed


def test_the_real_info_dict_gives_full_metadata_with_upload_time():
    info = json.loads(shared_path("youtube", "PzyXGUCngoU.info.json").read_text())
    item = info_to_item(info)
    assert item.external_id == "PzyXGUCngoU"
    assert item.url == "https://www.youtube.com/watch?v=PzyXGUCngoU"
    assert "Crash Course Psychology #20" in item.title
    assert item.published_at == datetime(2014, 6, 23, 16, 0, tzinfo=UTC)
    assert item.duration_s == 614 and item.view_count == 3005596 and item.host == "CrashCourse"


def test_upload_date_alone_still_dates_the_video():
    item = info_to_item({"id": "PzyXGUCngoU", "title": "t", "upload_date": "20140623"})
    assert item.published_at == datetime(2014, 6, 23, tzinfo=UTC)
    assert info_to_item({"id": "PzyXGUCngoU", "title": "t"}).published_at is None


# ----------------------------------------------------------------- caption choice on the real info


def _real_info() -> dict:
    return json.loads(shared_path("youtube", "PzyXGUCngoU.info.json").read_text())


def test_uploaded_english_json3_is_chosen_from_the_real_info():
    track = choose_caption_track(_real_info())
    assert track == CaptionTrack(track.url, "json3", "en", "uploaded")
    assert track.url.startswith("https://www.youtube.com/api/timedtext?v=PzyXGUCngoU")


def test_without_uploaded_subtitles_the_original_automatic_track_is_used():
    info = _real_info()
    info["subtitles"] = {}
    track = choose_caption_track(info)
    assert (track.lang, track.kind, track.ext) == ("en-orig", "automatic", "json3")


def test_an_hls_caption_playlist_is_never_chosen_as_a_caption_file():
    # The real automatic "en" list starts with an m3u8 "vtt" (a playlist of fragments).
    info = _real_info()
    en = info["automatic_captions"]["en"]
    assert en[0]["protocol"] == "m3u8_native"
    info["subtitles"] = {}
    info["automatic_captions"] = {"en": [f for f in en if f["ext"] == "vtt"]}
    track = choose_caption_track(info)
    assert track.ext == "vtt" and "manifest" not in track.url and "timedtext" in track.url


def test_machine_translated_captions_are_refused():
    # The real video is English: its automatic "de" is a translation, not what was said.
    info = _real_info()
    assert "de" in info["automatic_captions"]
    assert choose_caption_track(info, langs=("de",)) is None


def test_only_unparseable_formats_means_no_track():
    info = {"id": "PzyXGUCngoU", "subtitles": {"en-GB": [{"ext": "srv3", "url": "http://x/a"},
                                                         {"ext": "ttml", "url": "http://x/b"}]}}
    assert choose_caption_track(info) is None
    info["subtitles"]["en-GB"].append({"ext": "srt", "url": "http://x/c"})
    assert choose_caption_track(info) == CaptionTrack("http://x/c", "srt", "en-GB", "uploaded")


# ----------------------------------------------------------------- URLs and ids


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=PzyXGUCngoU",
        "https://www.youtube.com/watch?feature=share&v=PzyXGUCngoU&t=42s",
        "https://m.youtube.com/watch?v=PzyXGUCngoU",
        "youtube.com/watch?v=PzyXGUCngoU",
        "https://youtu.be/PzyXGUCngoU?si=abc",
        "https://www.youtube.com/shorts/PzyXGUCngoU",
        "https://www.youtube.com/live/PzyXGUCngoU?feature=shared",
        "https://www.youtube-nocookie.com/embed/PzyXGUCngoU",
    ],
)
def test_video_urls_give_their_id(url):
    assert parse_video_url(url) == "PzyXGUCngoU"


@pytest.mark.parametrize(
    "url,says",
    [
        ("https://www.youtube.com/watch?v=", "no valid 11-character video id"),
        ("https://youtu.be/short", "no valid 11-character video id"),
        ("htps:/youtube", "not a YouTube video URL"),
        ("https://example.com/video", "not a YouTube video URL"),
        ("https://www.youtube.com/@anthonychaffeemd", "not a YouTube video URL"),
        ("ftp://youtube.com/watch?v=PzyXGUCngoU", "not a YouTube video URL"),
        ("   ", "empty YouTube URL"),
    ],
)
def test_malformed_urls_are_refused_with_a_clear_message(url, says):
    with pytest.raises(BadInput, match=says) as raised:
        parse_video_url(url)
    assert raised.value.code == "bad_input" and not raised.value.retryable


@pytest.mark.parametrize("bad_id", ["https://youtu.be/PzyXGUCngoU", "PzyXGUCngo", "../etc/passwd"])
def test_fetching_by_something_that_is_not_an_id_is_refused_before_any_request(bad_id, tmp_path):
    with pytest.raises(BadInput, match="not a YouTube video id"):
        _source().fetch_audio(bad_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- error mapping on real messages

_LOGIN_HINT = (" Use --cookies-from-browser or --cookies for the authentication. See  "
               "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually "
               "pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies"
               "  for tips on effectively exporting YouTube cookies")


@pytest.mark.parametrize(
    "message,kind,says",
    [
        ("ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access to this video."
         + _LOGIN_HINT, PrivateItem, "YouTube says this video is private"),
        ("ERROR: [youtube] abcdefghijk: Join this channel to get access to members-only content like this video, "
         "and other exclusive perks.", MembersOnly, "members only"),
        ("ERROR: [youtube] abcdefghijk: This video is available to this channel's members on level: Supporter "
         "(or any higher level). Join this channel to get access to members-only content and other exclusive perks.",
         MembersOnly, "members only"),
        ("ERROR: [youtube] abcdefghijk: Sign in to confirm your age. This video may be inappropriate for some users."
         + _LOGIN_HINT, AgeRestricted, "age-restricted"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. The uploader has not made this video available in your "
         "country", RegionBlocked, "blocked in our region"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader",
         Unavailable, "unavailable"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available because the YouTube "
         "account associated with this video has been terminated.", Unavailable, "unavailable"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable", Unavailable, "unavailable"),
        ("ERROR: [youtube:tab] @nobody: The channel/playlist does not exist and the URL redirected to youtube.com "
         "home page", Unavailable, "unavailable"),
        ("ERROR: [youtube] abcdefghijk: Sign in to confirm you\u2019re not a bot." + _LOGIN_HINT,
         RateLimited, "rate-limiting"),
        ("ERROR: [youtube] abcdefghijk: This content isn't available, try again later. The current session has "
         "been rate-limited by YouTube for up to an hour.", RateLimited, "rate-limiting"),
        ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", RateLimited, "rate-limiting"),
        ("ERROR: unable to download video data: HTTP Error 403: Forbidden", SourceRefused, "HTTP 403"),
        ("ERROR: [youtube] abcdefghijk: This live event will begin in 3 hours.", NotStartedYet, "not started"),
        ("ERROR: [youtube] abcdefghijk: Unable to download API page: <urlopen error [Errno -3] Temporary failure "
         "in name resolution> (caused by TransportError('<urlopen error [Errno -3] Temporary failure in name "
         "resolution>'))", SourceUnreachable, "network"),
        # What the outage of issue 14 looked like: the host name did not resolve.
        ("ERROR: [youtube] abcdefghijk: Unable to download webpage: HTTPSConnection(host='www.youtube.com', port=443): "
         "Failed to resolve 'www.youtube.com' ([Errno -2] Name or service not known) (caused by TransportError(...))",
         SourceUnreachable, "network"),
        ("ERROR: Unsupported URL: https://example.com/", BadInput, "not a video address"),
    ],
)
def test_real_ytdlp_messages_become_typed_errors_a_person_can_read(message, kind, says):
    error = map_ytdlp_error(message, external_id="abcdefghijk")
    assert type(error) is kind
    assert says in str(error) and error.external_id == "abcdefghijk"
    # yt-dlp's command-line advice means nothing to our users; the cookie setting does.
    assert "--cookies" not in str(error) and "ERROR:" not in str(error)
    if kind in (PrivateItem, MembersOnly, AgeRestricted) or "not a bot" in message:
        assert "YOUTUBE_COOKIES_FILE" in str(error)


@pytest.mark.parametrize(
    "message, cause, words",
    [
        ("ERROR: [youtube] abcdefghijk: Unable to download webpage: Failed to resolve 'www.youtube.com' ([Errno -2] "
         "Name or service not known)", FailureCause.SOURCE_UNREACHABLE, "YouTube could not be reached"),
        ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", FailureCause.RATE_LIMITED,
         "YouTube is rate-limiting us"),
        ("ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access to this video",
         FailureCause.PRIVATE, "Video is private"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader",
         FailureCause.REMOVED, "Video is removed"),
        ("ERROR: [youtube] abcdefghijk: This live event will begin in 3 hours.", FailureCause.NOT_STARTED,
         "Video is a live stream"),
    ],
)
def test_each_typed_error_is_stored_as_one_cause_with_plain_words(message, cause, words):
    """The dead letter groups by the cause decided from the error's type when it failed."""
    found = classify(map_ytdlp_error(message, external_id="abcdefghijk"))
    assert found is cause and label(found, "youtube").startswith(words)



def test_an_unknown_message_is_a_plain_non_retryable_error():
    error = map_ytdlp_error("ERROR: [youtube] abcdefghijk: Requested format is not available")
    assert type(error) is SourceError and not error.retryable
    assert "Requested format is not available" in str(error)


# ----------------------------------------------------------------- yt-dlp against the local server


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    require_binary("espeak-ng")
    path = tmp_path_factory.mktemp("audio") / "talk.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "Fasting and sleep, a question from a listener."], check=True)
    return path.read_bytes()


def test_audio_is_downloaded_by_ytdlp_into_the_destination(fake, speech_wav, tmp_path):
    url = fake.route("/media/talk.wav", Route(body=speech_wav, content_type="audio/x-wav"))
    path = _source().download_url_audio(url, tmp_path / "media")
    assert path == tmp_path / "media" / "talk.wav"  # `%(id)s.%(ext)s`, not the title
    assert path.read_bytes() == speech_wav
    assert any(r.path == "/media/talk.wav" for r in fake.requests)


def test_http_429_becomes_rate_limited_with_the_servers_retry_after(fake, tmp_path):
    url = fake.route("/media/busy.wav", Route(status=429, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimited) as raised:
        _source().download_url_audio(url, tmp_path, external_id="abcdefghijk")
    error = raised.value
    assert error.retryable and error.retry_after_s == 120 and error.external_id == "abcdefghijk"
    assert "429" in str(error) and "Traceback" not in str(error)
    assert list(tmp_path.iterdir()) == []


def test_http_404_becomes_unavailable(fake, tmp_path):
    with pytest.raises(Unavailable, match="does not exist") as raised:
        _source().download_url_audio(fake.url("/media/gone.wav"), tmp_path)
    assert not raised.value.retryable and "404" in str(raised.value)


def test_http_403_is_a_clear_retryable_error(fake, tmp_path):
    url = fake.route("/media/forbidden.wav", Route(status=403))
    with pytest.raises(TransientSourceError, match="refused the request .HTTP 403.") as raised:
        _source().download_url_audio(url, tmp_path)
    assert raised.value.retryable and "PO token" not in str(raised.value)  # YouTube advice only for YouTube


def test_a_download_refused_after_a_good_extraction_is_mapped_too(fake, speech_wav, tmp_path):
    # YouTube's usual failure: the page works, then the media link answers 403.
    url = fake.route("/media/expiring.wav", Route(body=speech_wav, content_type="audio/x-wav", times=1))
    with pytest.raises(TransientSourceError, match="HTTP 403"):
        _source().download_url_audio(url, tmp_path)
    assert fake.served["/media/expiring.wav"] >= 2  # extraction, then the download attempt
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".wav"]


# ----------------------------------------------------------------- channel feed


def test_recent_upload_dates_come_from_the_channel_feed(fake):
    fake.route("/feeds/videos.xml", Route(content_type="application/atom+xml", body=channel_feed(
        CHANNEL_ID,
        [("E1Yk-o8xwjw", "My Role in Healing Humanity", "2026-11-20T17:00:06+00:00"),
         ("PzyXGUCngoU", "Older talk", "2026-11-13T09:30:00-08:00")],
    )))
    dates = _source(youtube_base_url=fake.base_url).recent_upload_dates(CHANNEL_ID)
    assert dates == {
        "E1Yk-o8xwjw": datetime(2026, 11, 20, 17, 0, 6, tzinfo=UTC),
        "PzyXGUCngoU": datetime(2026, 11, 13, 17, 30, tzinfo=UTC),  # converted to UTC
    }
    assert fake.requests[-1].path == f"/feeds/videos.xml?channel_id={CHANNEL_ID}"


def test_the_cookies_file_and_request_pause_apply_to_our_own_requests(fake, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tSID\tsecret-session\n")
    fake.route("/feeds/videos.xml", Route(body=channel_feed(CHANNEL_ID, [])))
    source = _source(youtube_base_url=fake.base_url, youtube_cookies_file=cookies, youtube_sleep_s=0.3)
    started = time.monotonic()
    assert source.recent_upload_dates(CHANNEL_ID) == {}
    assert time.monotonic() - started >= 0.3
    assert "SID=secret-session" in fake.requests[-1].headers.get("Cookie", "")


def test_a_missing_channel_feed_is_unavailable_and_a_bad_channel_id_is_refused(fake):
    source = _source(youtube_base_url=fake.base_url)
    with pytest.raises(Unavailable):
        source.recent_upload_dates(CHANNEL_ID)  # our server has no feed route: 404
    with pytest.raises(BadInput, match="not a YouTube channel id"):
        source.recent_upload_dates("anthonychaffeemd")


def test_a_feed_that_is_not_xml_is_reported_not_misread():
    with pytest.raises(TransientSourceError, match="not valid XML"):
        parse_channel_feed(b"<html><body>Before you continue to YouTube")


# ----------------------------------------------------------------- caption download and parse

JSON3 = json.dumps({"wireMagic": "pb3", "events": [
    {"tStartMs": 0, "dDurationMs": 4000, "id": 1, "wpWinPosId": 1, "wsWinStyleId": 1},
    {"tStartMs": 1200, "dDurationMs": 3100, "segs": [{"utf8": "Welcome back to the channel."}]},
    {"tStartMs": 4300, "dDurationMs": 2900, "segs": [{"utf8": "Today: red meat and sleep."}]},
]}).encode()

ROLLING_VTT = b"""WEBVTT
Kind: captions
Language: en

00:00:01.000 --> 00:00:03.000 align:start position:0%
welcome<00:00:01.500><c> back</c><00:00:02.000><c> to</c><00:00:02.500><c> the</c><00:00:02.800><c> channel</c>

00:00:03.000 --> 00:00:05.000 align:start position:0%
welcome back to the channel
today<00:00:03.400><c> red</c><00:00:03.800><c> meat</c><00:00:04.200><c> and</c><00:00:04.600><c> sleep</c>
"""


def _info_with(fake: FakeYouTube, *, subtitles=None, automatic=None) -> dict:
    return {"id": "abcdefghijk", "subtitles": subtitles or {}, "automatic_captions": automatic or {}}


def test_uploaded_json3_captions_are_downloaded_and_parsed(fake):
    url = fake.route("/api/timedtext?v=abcdefghijk&fmt=json3", Route(body=JSON3, content_type="application/json"))
    info = _info_with(fake, subtitles={"en": [{"ext": "srv3", "url": url + "&x=srv3"}, {"ext": "json3", "url": url}]})
    transcript = _source().captions_from_info(info)
    assert transcript.engine == "captions" and transcript.model == "youtube:en (uploaded)"
    assert [(s.start, s.text) for s in transcript.segments] == [
        (1.2, "Welcome back to the channel."), (4.3, "Today: red meat and sleep.")]
    assert [r.path for r in fake.requests] == ["/api/timedtext?v=abcdefghijk&fmt=json3"]  # one request, json3


def test_automatic_vtt_captions_lose_their_rolling_repeats(fake):
    url = fake.route("/api/timedtext?v=abcdefghijk&fmt=vtt", Route(body=ROLLING_VTT, content_type="text/vtt"))
    info = _info_with(fake, automatic={"en-orig": [{"ext": "vtt", "url": url}]})
    transcript = _source().captions_from_info(info)
    assert transcript.model == "youtube:en-orig (automatic)"
    assert [s.text for s in transcript.segments] == ["welcome back to the channel", "today red meat and sleep"]


def test_no_usable_track_means_none_without_a_request(fake):
    assert _source().captions_from_info(_info_with(fake, automatic={"fr-orig": [{"ext": "json3", "url": fake.url("/x")}]})) is None
    assert fake.requests == []


def test_an_empty_caption_answer_falls_back_to_transcription(fake):
    url = fake.route("/api/timedtext?v=abcdefghijk&fmt=json3", Route(body=b""))
    assert _source().captions_from_info(_info_with(fake, subtitles={"en": [{"ext": "json3", "url": url}]})) is None


def test_a_rate_limited_caption_request_is_reported_as_such(fake):
    url = fake.route("/api/timedtext?v=abcdefghijk&fmt=json3", Route(status=429))
    with pytest.raises(RateLimited) as raised:
        _source().captions_from_info(_info_with(fake, subtitles={"en": [{"ext": "json3", "url": url}]}))
    assert raised.value.external_id == "abcdefghijk"
