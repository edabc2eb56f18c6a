"""Source kind → source object, so the pipeline never names a particular source."""
from __future__ import annotations

from core.config import get_settings
from core.models import Source
from core.sources.base import MediaSource


def source_for(source: Source) -> MediaSource:
    settings = get_settings()
    if source.kind == "youtube":
        from core.sources.youtube import YouTubeSource

        return YouTubeSource(settings, channel_url=source.url)
    if source.kind == "zoom":
        from core.zoom.source import ZoomSource

        return ZoomSource(settings)
    from core.sources.files import FileSource

    return FileSource()
