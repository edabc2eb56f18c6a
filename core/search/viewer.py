"""What the search page shows around the results, in plain words: the count line, thumbnails,
the player's source, and the page's state as it lives in the URL.

The URL is the whole view (?q=…&exact=1&sort=…&from=…&to=…&src=…&len=…&speaker=…&only=1&answer=1
&item=<id>&n=<videos>&play=<id>&t=<second>): every search is a browser history entry, so Back
and Forward move between searches, and any view is a shareable link. `ViewState` reads and
writes it; the page only renders.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from core.search.links import youtube_id
from core.search.records import SearchFilters, VideoGroup

PAGE_VIDEOS = 10  # videos per "page" of results; "Show more results" adds this many
MAX_VIDEOS = 100  # search() caps k here
ITEM_MOMENTS = 10  # moments shown for one video ("More from this video", "Search in this video")
SOURCES = {"youtube": "YouTube", "zoom": "Zoom", "upload": "Upload"}
LENGTHS = {
    "any": ("Any length", None, None),
    "short": ("Under 20 min", None, 20 * 60),
    "medium": ("20–60 min", 20 * 60, 60 * 60),
    "long": ("Over 1 hour", 60 * 60, None),
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def count_line(groups: Sequence[VideoGroup]) -> str:
    """ "7 moments in 3 videos" """
    moments = sum(len(g.moments) for g in groups)
    return f"{plural(moments, 'moment')} in {plural(len(groups), 'video')}"


def thumbnail_url(url: str | None) -> str | None:
    """YouTube's own still for a video (i.ytimg.com); None for anything else."""
    vid = youtube_id(url)
    return f"https://i.ytimg.com/vi/{vid}/mqdefault.jpg" if vid else None


class PlayerKind(StrEnum):
    YOUTUBE = "youtube"  # the YouTube iframe API
    AUDIO = "audio"  # the HTML audio element over a local file
    VIDEO = "video"  # the HTML video element over a local file


class Theme(StrEnum):
    """The viewer's choice; Streamlit keeps it in the browser (localStorage) under these names."""

    SYSTEM = "System"
    LIGHT = "Light"
    DARK = "Dark"

    @property
    def label(self) -> str:
        return {"System": "Follow my device", "Light": "Light", "Dark": "Dark"}[self.value]


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        return None


def _int(value: str | None, lo: int, hi: int) -> int | None:
    try:
        return max(lo, min(hi, int(float(value or ""))))
    except ValueError:
        return None


@dataclass(frozen=True)
class ViewState:
    """The page's state, exactly what the URL holds (see the module doc)."""

    q: str = ""
    exact: bool = False
    sort: str = "relevance"
    date_from: date | None = None
    date_to: date | None = None
    sources: tuple[str, ...] = ()
    length: str = "any"
    speaker: str | None = None
    speaker_only: bool = False  # only moments where that speaker alone speaks (speaker turns)
    answer: bool = False
    item: int | None = None  # narrowed to one video
    videos: int = PAGE_VIDEOS  # how many videos are shown ("Show more results")
    play: int | None = None
    t: int = 0
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ViewState:
        src = tuple(s for s in (params.get("src") or "").split(",") if s in SOURCES)
        sort, length = params.get("sort") or "relevance", params.get("len") or "any"
        return cls(
            q=(params.get("q") or "").strip(),
            exact=params.get("exact") == "1",
            sort=sort if sort in ("relevance", "date") else "relevance",
            date_from=_date(params.get("from")),
            date_to=_date(params.get("to")),
            sources=src,
            length=length if length in LENGTHS else "any",
            speaker=(params.get("speaker") or "").strip() or None,
            speaker_only=params.get("only") == "1" and bool((params.get("speaker") or "").strip()),
            answer=params.get("answer") == "1",
            item=_int(params.get("item"), 1, 2**62),
            videos=_int(params.get("n"), 1, MAX_VIDEOS) or PAGE_VIDEOS,
            play=_int(params.get("play"), 1, 2**62),
            t=_int(params.get("t"), 0, 10**7) or 0,
        )

    def to_params(self) -> dict[str, str]:
        out = {
            "q": self.q, "exact": "1" if self.exact else "", "sort": "" if self.sort == "relevance" else self.sort,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "", "src": ",".join(self.sources),
            "len": "" if self.length == "any" else self.length, "speaker": self.speaker or "",
            "only": "1" if self.speaker and self.speaker_only else "",
            "answer": "1" if self.answer else "", "item": str(self.item) if self.item else "",
            "n": "" if self.videos == PAGE_VIDEOS else str(self.videos),
            "play": str(self.play) if self.play else "", "t": str(self.t) if self.play else "",
        }
        return {k: v for k, v in out.items() if v}

    def filters(self) -> SearchFilters:
        _, lo, hi = LENGTHS[self.length]
        return SearchFilters(date_from=self.date_from, date_to=self.date_to, sources=self.sources,
                             min_duration_s=lo, max_duration_s=hi, speaker=self.speaker,
                             speaker_only=bool(self.speaker and self.speaker_only), media_item_id=self.item)

    def new_search(self, q: str) -> ViewState:
        """A new question: "exact", the page of results and the playing moment belonged to the old one."""
        return replace(self, q=q.strip(), exact=False, videos=PAGE_VIDEOS, play=None, t=0)

    def playing(self, item_id: int, second: float) -> ViewState:
        return replace(self, play=int(item_id), t=int(max(second, 0)))

    def closed(self) -> ViewState:
        return replace(self, play=None, t=0)

    def in_video(self, item_id: int | None) -> ViewState:
        return replace(self, item=item_id, videos=PAGE_VIDEOS)

    def more(self) -> ViewState:
        return replace(self, videos=min(MAX_VIDEOS, self.videos + PAGE_VIDEOS))
