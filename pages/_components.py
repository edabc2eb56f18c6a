"""The viewer page's one custom component (pages/components/viewer: plain HTML/JS, no build).

Streamlit cannot do two things the page needs: a text box that shows suggestions while the
viewer types (its widgets report only on Enter), and a player whose current time the
transcript follows. Both live in one small component; this module is its Python side.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any, NamedTuple

import streamlit.components.v1 as components

from core.search.transcript import TranscriptLine
from core.search.viewer import PlayerKind

_viewer = components.declare_component("chaffee_viewer", path=str(Path(__file__).parent / "components" / "viewer"))


class Submitted(NamedTuple):
    query: str | None  # None: nothing was submitted, the value only reports the session
    nonce: str | None  # one per submission: the page applies each once
    session: str | None  # this browser tab's token (sessionStorage)


SEARCH_BOX_KEY = "search_box"


def search_box(value: str, suggestions: list[tuple[str, str]], *, session: str | None, placeholder: str,
               key: str = SEARCH_BOX_KEY) -> Submitted | None:
    """The box showing `value`; returns its last submission (also in st.session_state[key])."""
    return parse_submission(_viewer(kind="search", value=value, suggestions=suggestions, session=session,
                                    placeholder=placeholder, key=key, default=None))


def parse_submission(raw: Any) -> Submitted | None:
    if not isinstance(raw, dict):
        return None
    q = raw.get("q")
    return Submitted(q if isinstance(q, str) else None, raw.get("nonce") or None, raw.get("session") or None)


def local_media_url(path: str, item_id: int) -> str | None:
    """A URL the browser can play a local file from: Streamlit's own media file manager, as
    st.audio/st.video use it (an internal API: another Streamlit version may move it). None when
    the file is missing here."""
    if not Path(path).is_file():
        return None
    from streamlit.runtime import get_instance

    mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return get_instance().media_file_mgr.add(path, mime, f"chaffee-player-{item_id}")


def player(kind: PlayerKind, *, start: int, lines: list[TranscriptLine], answer: int | None, title: str,
           video_id: str | None = None, src: str | None = None, key: str = "player") -> None:
    _viewer(kind="player", player=kind.value, video_id=video_id, src=src, start=int(start), title_attr=title,
            lines=[[ln.start_s, ln.end_s, ln.text, ln.speaker] for ln in lines], answer=answer, key=key,
            default=None)
