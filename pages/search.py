"""Search page: read the widgets and the URL, call core.search, render.

The URL holds the whole search (?q=…&exact=1&sort=…&from=…&to=…&src=…&len=…&speaker=…&answer=1
&play=<item>&t=<second>), so a search — or a moment playing — is a shareable link. exact=1 is
the "Search instead for …" choice: the words as typed, without spelling correction.
"""
from __future__ import annotations

import html
import re
from datetime import date

import streamlit as st

from core import search_db
from core.search import QueryError, SearchFilters, answer, archive_is_empty, format_timestamp, popular_queries
from core.search.engine import player_item, speakers_list

SOURCES = {"youtube": "YouTube", "zoom": "Zoom", "upload": "Upload"}
LENGTHS = {
    "any": ("Any length", None, None),
    "short": ("Under 20 min", None, 20 * 60),
    "medium": ("20–60 min", 20 * 60, 60 * 60),
    "long": ("Over 1 hour", 60 * 60, None),
}
HELP_EMPTY = """**The archive is empty — nothing has been indexed yet.** Add content in any of these ways:

```
python -m core ingest "https://www.youtube.com/watch?v=VIDEO_ID"   # one video
python -m core ingest talk.mp4 --title "Q&A call"                 # a local audio/video file
python -m core sync-channel                                       # queue the whole channel
```

…or sign in and use the **admin** page. Search works as soon as the first item is indexed."""


# ---------------------------------------------------------------------------------------------
# Cached calls (expensive objects once per process). Reads go to the search replicas
# (core/search_db.py: SEARCH_DATABASE_URL, else the primary); results are cached there under the
# content version of the snapshot they were read in, never under a version read separately.
# ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the search model…")
def _embedder():
    from core.embeddings import get_embedder

    return get_embedder()


def _search(query: str, filters: SearchFilters, sort: str, include_hidden: bool, correct: bool = True):
    # search()'s own result cache is keyed by the content version of the snapshot it reads.
    return search_db.search(query, k=10, filters=filters, sort=sort, include_hidden=include_hidden,
                            embedder=_embedder(), log=False, correct=correct)


@st.cache_data(ttl=600, max_entries=128, show_spinner=False)
def _answer(version: tuple, query: str, filters: SearchFilters, sort: str, include_hidden: bool, correct: bool = True):
    # Cached like the results: a rerun (a vote, a play click) must not ask — and pay — the model again.
    # `version` (the response's own snapshot's) is the cache key. The clips are read on a replica;
    # the chat call's budget lock and ledger are writes that core.search.answers makes on the primary.
    response = _search(query, filters, sort, include_hidden, correct)
    return search_db.read(lambda s: answer(s, response, embedder=_embedder()))


def _suggestions(include_hidden: bool) -> list[str]:
    def build(s) -> list[str]:
        out = [x.text for x in popular_queries(s, limit=40, include_hidden=include_hidden)]
        from sqlalchemy import text

        hidden = "" if include_hidden else "WHERE visible"
        out += list(s.execute(text(f"SELECT title FROM media_items {hidden} ORDER BY published_at DESC NULLS LAST LIMIT 2000")).scalars())
        return list(dict.fromkeys(out))

    return search_db.read_cached(("page-suggestions", include_hidden), build, ttl_s=60)


def _trending(include_hidden: bool):
    return search_db.trending(limit=8, include_hidden=include_hidden)


def _speakers(include_hidden: bool) -> list[str]:
    return search_db.read_cached(("page-speakers", include_hidden),
                                 lambda s: speakers_list(s, include_hidden=include_hidden), ttl_s=300)


def _is_admin() -> bool:
    """Admins (signed in through the admin console) also see hidden items."""
    from pages._auth import current_admin  # the admin console's sign-in

    try:
        return current_admin() is not None
    except Exception:  # a sign-in backend that is misconfigured must not break viewers' search
        return False


# ---------------------------------------------------------------------------------------------
# URL ↔ widgets
# ---------------------------------------------------------------------------------------------


def _param_date(name: str) -> date | None:
    try:
        return date.fromisoformat(st.query_params.get(name, ""))
    except ValueError:
        return None


def _set_param(name: str, value) -> None:
    if value in (None, "", [], ()):
        st.query_params.pop(name, None)
    else:
        st.query_params[name] = str(value)


def _play(item_id: int, second: float) -> None:
    st.query_params["play"] = str(item_id)
    st.query_params["t"] = str(int(second))


def _search_exactly() -> None:
    """The "Search instead for …" button: the same query, spelling correction off (in the URL)."""
    st.query_params["exact"] = "1"
    st.query_params.pop("play", None)
    st.query_params.pop("t", None)


def _md_text(value: str) -> str:
    """User or transcript text shown inside markdown as plain text (markdown characters escaped)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|>~<])", r"\\\1", value)


def _title_matches(titles) -> None:
    """The short "Videos whose title matches" list: videos the moments do not already show, a
    not-yet-transcribed one with its status in words ("queued for transcription")."""
    extra = [t for t in titles if not t.has_moments]
    if not extra:
        return
    st.subheader("Videos whose title matches")
    lines = []
    for t in extra:
        status = "" if t.transcribed else f' <span class="title-status">· {html.escape(t.status.label)}</span>'
        lines.append(f'<li class="title-match"><a href="{html.escape(t.link)}" target="_blank">{html.escape(t.title)}</a>'
                     f"{status}</li>")
    st.markdown("<ul>" + "".join(lines) + "</ul>", unsafe_allow_html=True)


def _vote(query: str, chunk_id: int, key: str) -> None:
    value = st.session_state.get(key)  # st.feedback thumbs: 1 = up, 0 = down
    if value is None:
        return
    search_db.record_vote(query, chunk_id, 1 if value == 1 else -1)  # to the primary, queued if it is away
    st.toast("Thanks — your vote helps tune the search.")


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------

include_hidden = _is_admin()

# Typed words marked strongly, words only a synonym brought in marked lighter (shaping.highlight).
st.html("<style>mark{background:#ffd54f;padding:0 .1em}mark.syn{background:#fff6d0;color:inherit}"
        ".title-status{opacity:.75}</style>")
st.title("Chaffee Search")
st.caption("Search every talk and call by meaning or by word; each hit opens the video at the second it was said.")

query_in_url = st.query_params.get("q", "")
options = _suggestions(include_hidden)
if query_in_url and query_in_url not in options:
    options = [query_in_url, *options]
col_q, col_sort = st.columns([5, 1], vertical_alignment="bottom")
with col_q:
    typed = st.selectbox(
        "Search",
        options,
        index=options.index(query_in_url) if query_in_url in options else None,
        placeholder="Ask a question or type words, e.g. seed oils, LDL cholesterol, plant toxins…",
        accept_new_options=True,
        key="query_box",
        help="Suggestions come from video titles and popular searches; type anything and press Enter.",
    )
with col_sort:
    sort = st.segmented_control(
        "Sort", ["relevance", "date"], default=st.query_params.get("sort", "relevance")
        if st.query_params.get("sort") in ("relevance", "date") else "relevance", key="sort_box",
        format_func=str.capitalize,
    ) or "relevance"

with st.expander("Filters", expanded=any(p in st.query_params for p in ("from", "to", "src", "len", "speaker"))):
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        d_from = st.date_input("From", value=_param_date("from"), format="YYYY-MM-DD", key="f_from")
        d_to = st.date_input("To", value=_param_date("to"), format="YYYY-MM-DD", key="f_to")
    with c2:
        src_param = [s for s in st.query_params.get("src", "").split(",") if s in SOURCES]
        sources = st.multiselect("Source", list(SOURCES), default=src_param, format_func=SOURCES.get, key="f_src")
    with c3:
        length = st.radio(
            "Length", list(LENGTHS), format_func=lambda k: LENGTHS[k][0], key="f_len",
            index=list(LENGTHS).index(st.query_params.get("len", "any")) if st.query_params.get("len") in LENGTHS else 0,
        )
    with c4:
        speaker_opts = _speakers(include_hidden)
        speaker_param = st.query_params.get("speaker") or None
        speaker = st.selectbox(
            "Speaker (Zoom)", speaker_opts, placeholder="Anyone", key="f_speaker",
            index=speaker_opts.index(speaker_param) if speaker_param in speaker_opts else None,
            accept_new_options=True, disabled=not speaker_opts,
        )
    want_answer = st.toggle("Cited answer above the results", value=st.query_params.get("answer") == "1", key="f_answer")

# Keep the URL in step with the widgets: the URL is the search.
query = (typed or "").strip()
if query != query_in_url:
    # A new search: whatever was playing belongs to the old one.
    st.query_params.pop("play", None)
    st.query_params.pop("t", None)
    st.query_params.pop("exact", None)  # "search exactly as typed" was a choice for the old query
exact = st.query_params.get("exact") == "1"
_set_param("q", query)
_set_param("sort", None if sort == "relevance" else sort)
_set_param("from", d_from.isoformat() if isinstance(d_from, date) else None)
_set_param("to", d_to.isoformat() if isinstance(d_to, date) else None)
_set_param("src", ",".join(sources))
_set_param("len", None if length == "any" else length)
_set_param("speaker", speaker)
_set_param("answer", "1" if want_answer else None)

filters = SearchFilters(
    date_from=d_from if isinstance(d_from, date) else None,
    date_to=d_to if isinstance(d_to, date) else None,
    sources=tuple(sources),
    min_duration_s=LENGTHS[length][1],
    max_duration_s=LENGTHS[length][2],
    speaker=speaker or None,
)

# ---- the player (a chosen moment, or a local file's deep link) ------------------------------
play_id = st.query_params.get("play")
if play_id and play_id.isdigit():
    item = search_db.read(lambda s: player_item(s, int(play_id), include_hidden=include_hidden))
    start = int(float(st.query_params.get("t", "0") or 0))
    if item is None:
        st.warning("That recording is not available.")
    else:
        with st.container(border=True):
            st.markdown(f"**▶ {html.escape(item.title)}** · from {format_timestamp(start)}")
            if item.media_path and item.is_audio:
                st.audio(item.media_path, start_time=start)
            elif item.media_path and not item.youtube:
                st.video(item.media_path, start_time=start)
            else:
                st.video(item.url, start_time=start)

# ---- no query: help for a new archive, or what people search -------------------------------
if not query:
    empty = search_db.read(lambda s: archive_is_empty(s, include_hidden=include_hidden))
    if empty:
        st.info(HELP_EMPTY)
    else:
        trends = _trending(include_hidden)
        if trends:
            st.subheader("Trending searches")
            picked = st.pills("Trending", [t.query for t in trends], label_visibility="collapsed", key="trend_pick")
            if picked:
                st.query_params["q"] = picked
                st.session_state.pop("query_box", None)
                st.session_state.pop("trend_pick", None)
                st.rerun()
    st.stop()

# ---- results ---------------------------------------------------------------------------------
try:
    response = _search(query, filters, sort, include_hidden, not exact)
except QueryError as exc:
    st.error(str(exc))
    st.stop()

logged = st.session_state.setdefault("_logged_queries", set())
if not include_hidden and query.lower() not in logged:
    # Once per browser session and query: reruns (votes, filters) do not inflate trending.
    logged.add(query.lower())
    search_db.log_search(response)  # to the primary, queued while it is briefly away

if response.corrected_query:
    fixes = ", ".join(f"{html.escape(a)} → {html.escape(b)}" for a, b in response.prepared.corrections)
    st.markdown(f'<span class="searched-for">Searched for <b>{html.escape(response.corrected_query)}</b> ({fixes})</span>',
                unsafe_allow_html=True)
    # A button, not a link: it keeps this browser session (votes, logged queries); the URL it
    # leaves (?q=…&exact=1) is the shareable form.
    st.button(f"Search instead for “{_md_text(response.search_instead or query)}”", key="search_instead", type="tertiary",
              icon=":material/undo:", on_click=_search_exactly,
              help="Search the words exactly as you typed them, without spelling correction")
elif exact:
    st.caption(f"Searched exactly as typed: {_md_text(query)} (no spelling correction)")

verdict = response.verdict
answered = verdict is None or verdict.answered
# The message quotes the query: shown as plain text (markdown characters escaped), never as markup.
verdict_text = _md_text(verdict.message) if verdict else ""
if not response.groups:
    empty = search_db.read(lambda s: archive_is_empty(s, include_hidden=include_hidden))
    if empty and not response.titles:
        st.info(HELP_EMPTY)
    else:
        st.warning(verdict_text or "Nothing matches this query. Try other words, or fewer filters.")
        _title_matches(response.titles)
    st.stop()

if not answered:
    # The archive does not answer this: say so first, then videos whose title matches (one may
    # be queued for transcription), then at most a few related moments.
    st.warning(verdict_text)
    _title_matches(response.titles)
else:
    moments_n = sum(len(g.moments) for g in response.groups)
    st.caption(f"{len(response.groups)} videos · {moments_n} moments · {response.total_ms:.0f} ms server-side")

if want_answer and answered:
    with st.container(border=True):
        with st.spinner("Writing a cited answer…"):
            ans = _answer(response.content_version, query, filters, sort, include_hidden, not exact)
        if ans.sentences:
            label = "Answer" if ans.engine == "chat" else "From the clips"
            parts = [
                (f"<b>{html.escape(sent.speaker)}:</b> " if sent.speaker else "")
                + f'{html.escape(sent.text)} <a class="cite" href="{html.escape(sent.link)}" target="_blank" '
                f'title="{html.escape(ans.clips[sent.clip - 1].title)} at {format_timestamp(sent.start_s)}">[{sent.clip}]</a>'
                for sent in ans.sentences
            ]
            st.markdown(f"**{label}** — " + " ".join(parts), unsafe_allow_html=True)
            sources_md = " · ".join(
                f'<a href="{html.escape(c.link)}" target="_blank">[{c.number}] {html.escape(c.title)} {c.timestamp}'
                + (f" · {html.escape(c.speaker)}" if c.speaker else "") + "</a>"
                for c in ans.clips
            )
            st.caption(sources_md, unsafe_allow_html=True)
        for note in ans.notes:
            st.caption(note)

if not answered:
    st.subheader("Related, but not an answer")

for g_n, group in enumerate(response.groups):
    with st.container(border=True):
        meta = [group.published_at.date().isoformat() if group.published_at else "date unknown", SOURCES.get(group.source_kind, group.source_kind)]
        if group.duration_s:
            meta.append(format_timestamp(group.duration_s))
        if not group.visible:
            meta.append("hidden")
        if not answered:
            meta.append("related, not an answer")
        st.markdown(
            f'<div class="video-title"><b>{html.escape(group.title)}</b></div>'
            f'<div style="opacity:.7;font-size:.9em">{" · ".join(html.escape(m) for m in meta)}</div>',
            unsafe_allow_html=True,
        )
        for m_n, moment in enumerate(group.moments):
            c_play, c_text, c_vote = st.columns([1, 9, 1.4], vertical_alignment="top")
            with c_play:
                st.button(
                    f"▶ {moment.timestamp}", key=f"play-{moment.chunk_id}", on_click=_play,
                    args=(group.media_item_id, moment.start_s), help="Play here, from this second",
                )
            with c_text:
                who = f" · {html.escape(', '.join(moment.speakers))}" if moment.speakers else ""
                kind = "moment-link" if answered else "moment-link related"
                st.markdown(
                    f'<a class="{kind}" href="{html.escape(moment.link)}" target="_blank">{moment.timestamp}</a>'
                    f'{who} — {moment.snippet_html}',
                    unsafe_allow_html=True,
                )
            with c_vote:
                key = f"vote-{moment.chunk_id}"
                st.feedback("thumbs", key=key, on_change=_vote, args=(query, moment.chunk_id, key))

if answered:
    _title_matches(response.titles)
