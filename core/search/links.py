"""Deep links: a URL that opens a media item at a given second.

YouTube items open on youtube.com at the second (`&t=123s`); local files (uploads, Zoom
downloads) have no public URL, so they open in the app's own player: the search page
reads `?play=<item id>&t=<second>` and starts st.video/st.audio there.
"""
from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlencode

from core.sources.base import BadInput
from core.sources.youtube import parse_video_url

_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
APP_BASE = "/"  # where the search page is served (streamlit_app makes it the default page)


def youtube_id(url: str | None) -> str | None:
    """The video id of a bare id or any YouTube URL form the source accepts, or None."""
    if not url:
        return None
    return _youtube_id(url)


@lru_cache(maxsize=8192)
def _youtube_id(url: str) -> str | None:
    # Cached: search builds a link for every moment it shows (~20 a query), each parsing its
    # item's URL again; the answer depends on the URL alone.
    if _YOUTUBE_ID.match(url):
        return url
    try:
        return parse_video_url(url)
    except BadInput:  # a Zoom share link, a file:// URL …: not a YouTube video
        return None


def is_local(item) -> bool:
    """Plays in the app's own player: it has a local file and no YouTube URL."""
    return bool(getattr(item, "media_path", None)) and youtube_id(getattr(item, "url", None)) is None


def app_player_link(item_id: int, start_s: float, base: str = APP_BASE) -> str:
    return f"{base}?{urlencode({'play': int(item_id), 't': int(max(start_s, 0))})}"


def deep_link(item, start_s: float, *, base: str = APP_BASE) -> str:
    """Link that opens `item` (a MediaItem or anything with id/url/media_path) at start_s."""
    second = int(max(start_s or 0, 0))
    vid = youtube_id(getattr(item, "url", None))
    if vid:
        return f"https://www.youtube.com/watch?v={vid}&t={second}s"
    if getattr(item, "media_path", None) or not getattr(item, "url", None):
        return app_player_link(item.id, second, base)
    # Some other web page (e.g. a Zoom share link): the best we can do is the page itself.
    return item.url
