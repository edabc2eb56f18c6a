"""YouTube as a MediaSource, through yt-dlp's Python API.

Pure functions (`parse_flat_entry`, `info_to_item`, `choose_caption_track`, `parse_video_url`,
`parse_channel_feed`, `map_ytdlp_error`) hold the decisions and are tested on real yt-dlp
output; `YouTubeSource` only wires them to `yt_dlp.YoutubeDL` calls. Every network request
goes through one YoutubeDL, so the cookies file, the pause between requests and any proxy
apply to listings, captions, feeds and audio alike.
"""
from __future__ import annotations

import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeGuard
from urllib.parse import parse_qs, quote, urlsplit

from yt_dlp import YoutubeDL
from yt_dlp.networking import Request
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import GeoRestrictedError

from core.config import Settings
from core.records import ItemInfo, Transcript
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

log = logging.getLogger(__name__)

WATCH_URL = "https://www.youtube.com/watch?v={}"
YOUTUBE_BASE_URL = "https://www.youtube.com"
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
# A channel's home URL without a tab: listing it gives nested tab playlists, not videos.
_CHANNEL_HOME = re.compile(
    r"^https?://(?:www\.|m\.)?youtube\.com/(?:@[^/?#]+|channel/UC[\w-]+|c/[^/?#]+|user/[^/?#]+)/?$"
)
# Talks are uploads and recorded livestreams; Shorts are clips of them, not worth indexing twice.
CHANNEL_TABS = ("videos", "streams")
# Caption formats we can parse, best first: json3 has exact per-line timings, vtt/srt are fine.
CAPTION_FORMATS = ("json3", "vtt", "srt")


class CaptionTrack(NamedTuple):
    url: str
    ext: str  # "json3" | "vtt" | "srt"
    lang: str  # the track's key, e.g. "en", "en-US", "en-orig"
    kind: Literal["uploaded", "automatic"]


# --------------------------------------------------------------------------- pure parsing


def _is_video_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(_VIDEO_ID.match(value))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_flat_entry(entry: dict) -> ItemInfo | None:
    """One entry of a flat listing (`yt-dlp --flat-playlist -j`) → ItemInfo, or None to skip it.

    Skipped: nested playlists/tabs (no 11-character video id), placeholders for private or
    deleted videos (they can never be fetched), and streams that are live or not started yet
    (there is nothing to transcribe until they end; the next listing picks them up).
    """
    if entry.get("_type") == "playlist" or entry.get("ie_key") not in (None, "Youtube"):
        return None
    video_id = entry.get("id")
    if not _is_video_id(video_id):
        return None
    title = entry.get("title") or ""
    if title in ("[Private video]", "[Deleted video]"):
        return None
    if entry.get("live_status") in ("is_live", "is_upcoming"):
        return None
    return ItemInfo(
        external_id=video_id,
        title=title or video_id,
        url=WATCH_URL.format(video_id),
        description=entry.get("description") or None,
        published_at=_published_at(entry),  # flat listings normally carry none → None
        duration_s=_num(entry.get("duration")),
        view_count=_int(entry.get("view_count")),
        host=entry.get("channel") or entry.get("uploader") or None,
    )


def _published_at(info: dict) -> datetime | None:
    """Upload time in UTC, or None when yt-dlp did not say.

    `release_timestamp` first: for livestreams and premieres it is when the talk actually went
    out (what YouTube shows as "Streamed live on"), while `timestamp` may be the scheduling time.
    """
    for key in ("release_timestamp", "timestamp"):
        value = info.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    upload_date = info.get("upload_date")
    if isinstance(upload_date, str) and re.fullmatch(r"\d{8}", upload_date):
        return datetime.strptime(upload_date, "%Y%m%d").replace(tzinfo=UTC)
    return None


def info_to_item(info: dict) -> ItemInfo:
    """A full yt-dlp info dict (`yt-dlp -J`) → ItemInfo with the upload date."""
    video_id = info.get("id")
    if not _is_video_id(video_id):
        raise BadInput(f"yt-dlp returned no YouTube video id (got {video_id!r})")
    return ItemInfo(
        external_id=video_id,
        title=info.get("title") or video_id,
        url=WATCH_URL.format(video_id),
        description=info.get("description") or None,
        published_at=_published_at(info),
        duration_s=_num(info.get("duration")),
        view_count=_int(info.get("view_count")),
        host=info.get("channel") or info.get("uploader") or None,
    )


def _english_keys(tracks: dict, langs: tuple[str, ...]) -> list[str]:
    """Track keys matching `langs` (with regional/-orig variants), the plain code first."""
    wanted = []
    for lang in langs:
        exact = [k for k in tracks if k == lang]
        variants = sorted(k for k in tracks if k.startswith(lang + "-") and k not in exact)
        wanted += exact + [k for k in variants if k not in wanted]
    return wanted


def _best_format(formats: list[dict]) -> dict | None:
    """The best parseable format of one track. HLS entries (protocol m3u8*) are playlists of
    caption fragments, not a caption file: downloading one would give us a playlist, so skip."""
    usable = [
        f for f in formats or []
        if f.get("ext") in CAPTION_FORMATS and f.get("url") and not str(f.get("protocol", "")).startswith("m3u8")
    ]
    usable.sort(key=lambda f: CAPTION_FORMATS.index(f["ext"]))
    return usable[0] if usable else None


def choose_caption_track(info: dict, langs: tuple[str, ...] = ("en",)) -> CaptionTrack | None:
    """The caption track worth using as a transcript, or None.

    Uploaded subtitles (written by the creator) beat automatic ones (speech recognition).
    Among automatic tracks, YouTube offers the original-language recognition as `<lang>-orig`
    and machine *translations* into every other language under plain codes: when the talk was
    in another language (some other `*-orig` exists) a plain "en" track is a translation, which
    we refuse rather than index as if it were what was said.
    """
    uploaded = info.get("subtitles") or {}
    for key in _english_keys(uploaded, langs):
        fmt = _best_format(uploaded[key])
        if fmt:
            return CaptionTrack(fmt["url"], fmt["ext"], key, "uploaded")

    automatic = info.get("automatic_captions") or {}
    # Languages the speech was recognised in ("en-orig" → "en"); empty for old info dicts.
    spoken = {k.removesuffix("-orig").split("-")[0] for k in automatic if k.endswith("-orig")}
    keys = _english_keys(automatic, langs)
    keys.sort(key=lambda k: not k.endswith("-orig"))  # the untranslated track first
    for key in keys:
        if not key.endswith("-orig") and spoken and key.split("-")[0] not in spoken:
            continue  # a machine translation of a talk given in another language
        fmt = _best_format(automatic[key])
        if fmt:
            return CaptionTrack(fmt["url"], fmt["ext"], key, "automatic")
    return None


def parse_video_url(url: str) -> str:
    """The 11-character video id in a YouTube video URL; BadInput for anything else.

    Accepts watch?v=, youtu.be/, /shorts/, /live/, /embed/ and /v/ forms, with or without
    the scheme, on www., m., music. and youtube-nocookie.com hosts.
    """
    expected = "expected youtube.com/watch?v=ID, youtu.be/ID, youtube.com/shorts/ID, /live/ID or /embed/ID"
    text = (url or "").strip()
    if not text:
        raise BadInput(f"empty YouTube URL ({expected})")
    if "://" not in text and not text.startswith("//"):
        text = "https://" + text  # people paste "youtu.be/…" without the scheme
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
    except ValueError:  # e.g. an unbalanced "[" in the host
        raise BadInput(f"not a YouTube video URL: {url!r} ({expected})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadInput(f"not a YouTube video URL: {url!r} ({expected})")
    host = host.removeprefix("www.").removeprefix("m.").removeprefix("music.")
    candidate: str | None = None
    segments = [s for s in parts.path.split("/") if s]
    if host == "youtu.be":
        candidate = segments[0] if segments else None
    elif host in ("youtube.com", "youtube-nocookie.com"):
        if segments[:1] == ["watch"]:
            values = parse_qs(parts.query).get("v")
            candidate = values[0] if values else None
        elif len(segments) >= 2 and segments[0] in ("shorts", "live", "embed", "v"):
            candidate = segments[1]
        else:
            raise BadInput(f"not a YouTube video URL: {url!r} ({expected})")
    else:
        raise BadInput(f"not a YouTube video URL: {url!r} ({expected})")
    if not _is_video_id(candidate):
        raise BadInput(f"YouTube URL has no valid 11-character video id: {url!r}")
    return candidate


def listing_urls(channel_url: str) -> list[str]:
    """What to list for the configured URL: a channel's Videos and Live tabs, else the URL itself.

    A bare channel URL would make yt-dlp return one nested playlist per tab instead of videos.
    """
    url = channel_url.strip()
    if _CHANNEL_HOME.match(url):
        return [f"{url.rstrip('/')}/{tab}" for tab in CHANNEL_TABS]
    return [url]  # a playlist or an explicit tab: list it as given


_ATOM = "{http://www.w3.org/2005/Atom}"
_YT = "{http://www.youtube.com/xml/schemas/2015}"


def parse_channel_feed(xml: bytes | str) -> dict[str, datetime]:
    """A channel's Atom feed (`/feeds/videos.xml?channel_id=…`) → {video id: published, UTC}.

    The feed lists only the newest ~15 uploads, but it is one cheap request with real dates,
    where a full metadata call per video would cost one request each.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise TransientSourceError(f"YouTube's channel feed was not valid XML ({error})") from None
    dates: dict[str, datetime] = {}
    for entry in root.iter(f"{_ATOM}entry"):
        video_id = (entry.findtext(f"{_YT}videoId") or "").strip()
        published = (entry.findtext(f"{_ATOM}published") or "").strip()
        if not _is_video_id(video_id) or not published:
            continue
        try:
            stamp = datetime.fromisoformat(published)
        except ValueError:
            continue  # an unknown date stays unknown rather than wrong
        dates[video_id] = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC)
    return dates


# --------------------------------------------------------------------------- errors

_COOKIE_HINT = "set YOUTUBE_COOKIES_FILE to a cookies.txt of an account that may watch it"
_HINTS: dict[type[SourceError], str] = {
    PrivateItem: _COOKIE_HINT,
    MembersOnly: _COOKIE_HINT,
    AgeRestricted: "set YOUTUBE_COOKIES_FILE to a cookies.txt of an age-verified account",
    RateLimited: "raise YOUTUBE_SLEEP_S, or set YOUTUBE_COOKIES_FILE to a logged-in cookies.txt",
}
_PO_TOKEN_HINT = (
    "usually an expired download link or a missing PO token, so try again later, "
    "and update yt-dlp if it keeps happening"
)
# (pattern, error class, what we tell the user). First match wins, so the order matters:
# "Private video. Sign in if you've been granted access" must not read as a bot wall.
_MESSAGE_RULES: list[tuple[re.Pattern[str], type[SourceError], str]] = [
    (re.compile(r"private video|video is private|playlist is private|this video has been made private", re.I),
     PrivateItem, "this video is private"),
    (re.compile(r"members-only|members only|join this channel|available to this channel's members", re.I),
     MembersOnly, "this video is for channel members only"),
    (re.compile(r"confirm your age|age-restricted|age restricted|inappropriate for some users|age.verification", re.I),
     AgeRestricted, "this video is age-restricted"),
    (re.compile(r"not a bot|too many requests|http error 429|rate-limited|try again later|captcha", re.I),
     RateLimited, "it is rate-limiting us"),
    (re.compile(r"not available in your country|not made this video available in your country"
                r"|from your location|geo.restrict|blocked it in your country", re.I),
     RegionBlocked, "this video is blocked in our region"),
    (re.compile(r"video unavailable|has been removed|been deleted|does not exist|no longer available"
                r"|account associated with this video has been terminated|http error 404|http error 410", re.I),
     Unavailable, "this video is unavailable (deleted, removed or never existed)"),
    (re.compile(r"live event will begin|premieres in|premiere will begin|is_upcoming", re.I),
     NotStartedYet, "this stream or premiere has not started yet"),
    (re.compile(r"unsupported url|incomplete youtube id|is not a valid url", re.I),
     BadInput, "this is not a video address it understands"),
    (re.compile(r"http error 403", re.I),
     SourceRefused, f"it refused the request (HTTP 403); {_PO_TOKEN_HINT}"),
    (re.compile(r"http error 5\d\d|timed out|connection (?:reset|refused|aborted)|temporary failure"
                r"|name resolution|failed to resolve|name or service not known|network is unreachable"
                r"|incomplete ?read|remote end closed|unable to download", re.I),
     SourceUnreachable, "the request failed on the network"),
]


def _clean(message: str) -> str:
    """yt-dlp's message without its CLI advice (flags our users cannot pass) and prefixes."""
    text = message.replace("\u2019", "'").strip()
    text = re.sub(r"^ERROR:\s*", "", text)
    text = re.sub(r"^\[[\w:]+\]\s*(?:[^\s:]+:\s+)?", "", text)  # "[youtube] <id>: "
    text = re.split(r"\.?\s*Use --cookies|\.?\s*Also see\s|;\s*please report this issue", text)[0]
    text = re.sub(r"\s*\(caused by <[^>]*>\)\s*$", "", text)
    return text.strip().rstrip(".")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: DownloadError.exc_info, ExtractorError.cause, __cause__."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        exc_info = getattr(current, "exc_info", None)
        todo += [
            exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None,
            getattr(current, "cause", None) if isinstance(getattr(current, "cause", None), BaseException) else None,
            current.__cause__,
            current.__context__,
        ]


def _retry_after(error: HTTPError) -> float | None:
    try:
        value = error.response.headers.get("Retry-After")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None  # an HTTP date or no header: the caller uses its own back-off


def map_ytdlp_error(
    exc_or_message: BaseException | str, *, external_id: str | None = None, site: str = "YouTube"
) -> SourceError:
    """A yt-dlp DownloadError/ExtractorError/HTTPError (or its text) → one of our typed errors.

    The HTTP status found in the exception chain wins over text matching; the text rules use
    the wording YouTube and yt-dlp really produce (see the youtube extractor).
    """
    if isinstance(exc_or_message, SourceError):
        return exc_or_message
    message = str(exc_or_message)
    clean = _clean(message) or type(exc_or_message).__name__
    who = f"{site} says"

    if isinstance(exc_or_message, BaseException):
        for cause in _causes(exc_or_message):
            if isinstance(cause, GeoRestrictedError):
                return RegionBlocked(f"{who} this video is blocked in our region: {clean}", external_id=external_id)
            if isinstance(cause, HTTPError):
                status = cause.status
                if status == 429:
                    return RateLimited(
                        f"{who} we are sending too many requests (HTTP 429); slowing down: {clean}",
                        external_id=external_id, retry_after_s=_retry_after(cause),
                    )
                if status in (404, 410):
                    return Unavailable(
                        f"{who} this does not exist (HTTP {status}): {clean}", external_id=external_id
                    )
                if status == 403 and site != "YouTube":
                    # The PO-token advice of the text rule is YouTube's; elsewhere just say it.
                    return SourceRefused(
                        f"{who} it refused the request (HTTP 403): {clean}", external_id=external_id
                    )
                break  # other statuses: the text rules below say it best

    for pattern, kind, what in _MESSAGE_RULES:
        if pattern.search(message.replace("\u2019", "'")):
            hint = f" ({_HINTS[kind]})" if kind in _HINTS and site == "YouTube" else ""
            return kind(f"{who} {what}: {clean}{hint}", external_id=external_id)

    if isinstance(exc_or_message, BaseException) and any(
        isinstance(c, (TransportError, OSError)) for c in _causes(exc_or_message)
    ):
        return SourceUnreachable(f"network error talking to {site}: {clean}", external_id=external_id)
    # Unknown: usually yt-dlp out of date with the site; retrying soon will not help.
    return SourceError(f"{site} download failed: {clean}", external_id=external_id)


# --------------------------------------------------------------------------- yt-dlp wiring


class _QuietLogger:
    """yt-dlp's chatter goes to our log at debug level; warnings stay warnings; no progress bars."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        # The same text reaches the caller as an exception, mapped to a typed error.
        log.debug("yt-dlp: %s", msg)


def _host_of(url: str) -> str:
    host = (urlsplit(url).netloc or url).lower()
    return "YouTube" if host.removeprefix("www.").endswith(("youtube.com", "youtu.be")) else host


def _require_video_id(video_id: str) -> str:
    if not _is_video_id(video_id):
        raise BadInput(
            f"not a YouTube video id: {video_id!r} (11 characters such as 'PzyXGUCngoU'; "
            "for a full URL use parse_video_url)"
        )
    return video_id


class YouTubeSource:
    """The YouTube channel (or playlist) of the archive, behind the MediaSource protocol."""

    kind = "youtube"

    def __init__(self, settings: Settings, channel_url: str | None = None):
        self.settings = settings
        self.channel_url = (channel_url or settings.channel_url).strip()
        self.channel_id: str | None = None  # learnt from the first listing; see resolve_channel_id

    # -- options ----------------------------------------------------------------

    def _params(self, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "quiet": True,
            "noprogress": True,
            "logger": _QuietLogger(),
            # Politeness: YouTube answers fast request bursts with 429s and bot walls.
            "sleep_interval_requests": self.settings.youtube_sleep_s,
            "retries": 3,
            "fragment_retries": 3,
            "extractor_retries": 2,
            "retry_sleep_functions": {"http": lambda n: min(2.0**n, 30.0)},
            "noplaylist": True,
        }
        if self.settings.youtube_cookies_file:
            params["cookiefile"] = str(self.settings.youtube_cookies_file)
        params.update(extra)
        return params

    def _extract(self, url: str, *, external_id: str | None = None, **extra: Any) -> dict:
        try:
            with YoutubeDL(self._params(**extra)) as ydl:
                return ydl.extract_info(url, download=False)
        except Exception as error:  # yt-dlp raises DownloadError wrapping anything
            raise map_ytdlp_error(error, external_id=external_id, site=_host_of(url)) from error

    # -- listing ----------------------------------------------------------------

    def list_items(self) -> Iterator[ItemInfo]:
        """Every video of the channel's Videos and Live tabs (or of the playlist), newest first.

        Flat extraction: one request per page of ~30 videos, no per-video calls, so no upload
        dates (see recent_upload_dates / fetch_metadata for those).
        """
        seen: set[str] = set()
        urls = listing_urls(self.channel_url)
        for url in urls:
            try:
                listing = self._extract(url, extract_flat="in_playlist", noplaylist=False)
            except SourceError as error:
                # A channel without livestreams has no Live tab: that is not a failure.
                if len(urls) > 1 and re.search(r"does not have an? \w+ tab", str(error)):
                    log.info("%s: %s", url, error)
                    continue
                raise
            self.channel_id = self.channel_id or listing.get("channel_id")
            for entry in listing.get("entries") or []:
                item = parse_flat_entry(entry) if isinstance(entry, dict) else None
                if item and item.external_id not in seen:
                    seen.add(item.external_id)
                    yield item

    def resolve_channel_id(self) -> str | None:
        """The channel's UC… id: from the URL when it has one, else from one listing page."""
        if self.channel_id:
            return self.channel_id
        match = re.search(r"/channel/(UC[\w-]{22})", self.channel_url)
        if match:
            self.channel_id = match.group(1)
            return self.channel_id
        url = listing_urls(self.channel_url)[0]
        listing = self._extract(url, extract_flat="in_playlist", noplaylist=False, playlist_items="1")
        self.channel_id = listing.get("channel_id")
        return self.channel_id

    def recent_upload_dates(self, channel_id: str | None = None) -> dict[str, datetime]:
        """{video id: upload time (UTC)} for the newest ~15 uploads, from the channel's Atom feed.

        Videos not in the feed are absent: their date stays unknown (None) until fetch_metadata.
        """
        channel_id = channel_id or self.resolve_channel_id()
        if not channel_id or not _CHANNEL_ID.match(channel_id):
            raise BadInput(f"not a YouTube channel id: {channel_id!r} (expected 'UC' + 22 characters)")
        base = (self.settings.youtube_base_url or YOUTUBE_BASE_URL).rstrip("/")
        return parse_channel_feed(self._download(f"{base}/feeds/videos.xml?channel_id={quote(channel_id)}"))

    def _download(self, url: str, *, external_id: str | None = None) -> bytes:
        """GET through yt-dlp's opener, so cookies and proxy settings apply."""
        # urlopen does not honour sleep_interval_requests (only extractors do): pause ourselves.
        if self.settings.youtube_sleep_s:
            time.sleep(self.settings.youtube_sleep_s)
        try:
            with YoutubeDL(self._params()) as ydl, ydl.urlopen(Request(url)) as response:
                return response.read()
        except Exception as error:
            raise map_ytdlp_error(error, external_id=external_id, site=_host_of(url)) from error

    # -- one video ----------------------------------------------------------------

    def _watch_url(self, video_id: str) -> str:
        """Where a video's page is fetched: YouTube, or the test server standing in for it."""
        if self.settings.youtube_base_url:
            return f"{self.settings.youtube_base_url.rstrip('/')}/watch?v={video_id}"
        return WATCH_URL.format(video_id)

    def fetch_info(self, video_id: str) -> dict:
        """yt-dlp's full info dict for one video (one player request)."""
        _require_video_id(video_id)
        return self._extract(self._watch_url(video_id), external_id=video_id)

    def fetch_metadata(self, external_id: str) -> ItemInfo:
        return info_to_item(self.fetch_info(external_id))

    def fetch_captions(self, external_id: str) -> Transcript | None:
        return self.captions_from_info(self.fetch_info(external_id))

    def captions_from_info(self, info: dict, langs: tuple[str, ...] = ("en",)) -> Transcript | None:
        """Download and parse the best caption track named in `info`; None when there is none."""
        track = choose_caption_track(info, langs)
        if track is None:
            return None
        # Imported here: the captions parser is its own module, and listing/audio do not need it.
        from core.transcribe.captions import parse_captions

        data = self._download(track.url, external_id=info.get("id"))
        try:
            segments = parse_captions(data, track.ext)
        except ValueError as error:
            # YouTube sometimes answers 200 with an empty body (e.g. when it wants a PO token):
            # no captions today is not a failure, speech recognition can do the job.
            log.warning("%s: unusable %s captions (%s); falling back to transcription", info.get("id"), track.ext, error)
            return None
        if not segments:
            return None  # an empty track is no transcript: let speech recognition do it
        return Transcript(segments, engine="captions", model=f"youtube:{track.lang} ({track.kind})")

    def fetch_audio(self, external_id: str, dest_dir: Path) -> Path:
        _require_video_id(external_id)
        return self.download_url_audio(self._watch_url(external_id), dest_dir, external_id=external_id)

    def download_url_audio(self, url: str, dest_dir: Path, *, external_id: str | None = None) -> Path:
        """Best audio of any URL yt-dlp understands (a YouTube video, a direct media link …).

        Audio-only formats are preferred and nothing is re-encoded, so ffmpeg is not needed;
        faster-whisper decodes m4a/webm/wav itself. The file is named `<id>.<ext>` (titles
        would need sanitising and can change).
        """
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        params = self._params(
            format="bestaudio/best",
            paths={"home": str(dest_dir)},
            outtmpl={"default": "%(id)s.%(ext)s"},
            postprocessors=[],
        )
        site = _host_of(url)
        try:
            with YoutubeDL(params) as ydl:
                info = ydl.extract_info(url, download=False)
                if info.get("live_status") in ("is_live", "is_upcoming"):
                    # Downloading a live stream would run until the stream ends.
                    raise NotStartedYet(
                        f"{url} is live or has not started yet; its recording can be fetched after it ends",
                        external_id=external_id,
                    )
                info = ydl.process_ie_result(info, download=True)
        except SourceError:
            raise
        except Exception as error:
            raise map_ytdlp_error(error, external_id=external_id, site=site) from error
        downloads = info.get("requested_downloads") or []
        path = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
        if path is None or not path.is_file():
            raise TransientSourceError(f"yt-dlp reported no downloaded file for {url}", external_id=external_id)
        return path
