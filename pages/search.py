"""Search page: read the URL (core.search.viewer.ViewState), call core.search_db, render.

The URL is the whole view, so every search is a browser history entry (Back and Forward move
between searches) and any view — a moment playing included — is a shareable link. Logic lives
in core/search (viewer, transcript, feedback, trending); the search box and the player are the
one custom component (pages/_components.py).

Every read goes through core/search_db.py, so with SEARCH_DATABASE_URL the page reads the
replicas (and answers with the primary stopped), caching each value under the content version
of the snapshot it was read in; the query log and votes go to the primary through its retried
write queue.
"""
from __future__ import annotations

import html
import json
import logging
import re

import streamlit as st

from core import search_db
from core.search import QueryError, SearchFilters, format_timestamp
from core.search.feedback import TabVotes, Vote
from core.search.links import youtube_id
from core.search.transcript import ExportFormat, answer_index, around, export, file_name
from core.search.viewer import (
    ITEM_MOMENTS,
    LENGTHS,
    SOURCES,
    PlayerKind,
    Theme,
    ViewState,
    count_line,
    thumbnail_url,
)
from pages._components import SEARCH_BOX_KEY, local_media_url, parse_submission, player, search_box

log = logging.getLogger(__name__)
MOMENTS_PER_VIDEO = 3
HELP_EMPTY = """**The archive is empty — nothing has been indexed yet.** Add content in any of these ways:

```
python -m core ingest "https://www.youtube.com/watch?v=VIDEO_ID"   # one video
python -m core ingest talk.mp4 --title "Q&A call"                 # a local audio/video file
python -m core sync-channel                                       # queue the whole channel
```

…or sign in and use the **admin** page. Search works as soon as the first item is indexed."""
UNAVAILABLE = "Search is not available right now. Please try again in a minute."


# ---------------------------------------------------------------------------------------------
# Reads (core/search_db.py: replicas when configured, values cached per content version)
# ---------------------------------------------------------------------------------------------

SUGGESTION_LABELS = {"query": "asked before", "title": "video"}


@st.cache_resource(show_spinner="Loading the search models…")
def _embedder():
    from core.embeddings import get_embedder
    from core.search.fusion import FusionConfig
    from core.search.rerank import RerankerUnavailable, get_cross_encoder

    default = FusionConfig()
    if default.rerank:  # loaded with the embedder, so the first viewer's search does not wait for it
        try:
            get_cross_encoder(default.reranker, default.rerank_tokens)
        except RerankerUnavailable:
            pass  # search then keeps the fused order and logs why
    return get_embedder()


def _search(query: str, filters: SearchFilters, sort: str, include_hidden: bool, correct: bool = True,
            k: int = 10, moments: int = MOMENTS_PER_VIDEO):
    # The result cache lives in core.search (keyed by the version read in the search's own
    # snapshot): a cache keyed here by a version read in another snapshot, maybe on another
    # replica, could file a lagging replica's results under a newer version.
    return search_db.search(query, k=k, filters=filters, sort=sort, include_hidden=include_hidden,
                            embedder=_embedder(), log=False, correct=correct, moments_per_video=moments)


def _suggestions(include_hidden: bool) -> list[tuple[str, str]]:
    return [(x.text, SUGGESTION_LABELS[x.kind]) for x in search_db.box_suggestions(include_hidden=include_hidden)]


def _is_admin() -> bool:
    """Admins (signed in through the admin console) also see hidden items."""
    from pages._auth import current_admin  # the admin console's sign-in

    try:
        return current_admin() is not None
    except Exception:  # a sign-in backend that is misconfigured must not break viewers' search
        return False


# ---------------------------------------------------------------------------------------------
# State: the URL, and this browser tab's session token
# ---------------------------------------------------------------------------------------------


def _go(view: ViewState) -> None:
    """Show another view: the URL changes (a browser history entry) and the page follows it."""
    st.query_params.from_dict(view.to_params())


def _viewer_session() -> str | None:
    return st.session_state.get("viewer_session")


def _tab_votes() -> TabVotes:
    return st.session_state.setdefault("_tab_votes", TabVotes())


def _vote(query: str, chunk_id: int, pressed: Vote) -> None:
    session_key = _viewer_session()
    if not session_key:
        st.toast("Your vote could not be saved. Please reload the page and try again.")
        return
    # The tab's own votes win over what a replica has replayed (it may lag, or the write may wait
    # for the primary in the queue): the thumb shows what was pressed, and the next press toggles it.
    vote = _tab_votes().press(query, chunk_id, pressed, search_db.session_votes(session_key, query))
    search_db.set_vote(query, chunk_id, session_key, vote)


def _set_theme(theme: Theme) -> None:
    st.session_state["_theme_request"] = theme.value


def _md_text(value: str) -> str:
    """User or transcript text shown inside markdown as plain text (markdown characters escaped)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|>~<])", r"\\\1", value)


# ---------------------------------------------------------------------------------------------
# Look: one style sheet, and the few scripts Streamlit has no API for
# ---------------------------------------------------------------------------------------------

STYLE = """<style>
mark{background:#ffd54f;color:#1b1b1b;padding:0 .1em}mark.syn{background:#fff6d0;color:inherit}
@media (prefers-color-scheme: dark){mark.syn{background:#5c5325}}
.title-status{opacity:.75}
[data-testid=stMainBlockContainer]{padding-top:3.6rem}
h1.page-title{font-size:1.6rem;margin:0;padding:0}
.video-head{display:flex;gap:.75rem;align-items:flex-start}
.video-head img.thumb{width:120px;aspect-ratio:16/9;object-fit:cover;border-radius:.35rem;flex:none;background:#8883}
.video-title{font-weight:600;line-height:1.3}
.video-meta{opacity:.7;font-size:.85em}
.moment-text{font-size:.95rem;line-height:1.45;margin-top:-.35rem}
/* One moment = its controls and its text; a rule between moments keeps them apart. */
[class*=st-key-moment-]{padding-bottom:.35rem;border-bottom:1px solid rgba(128,128,128,.18)}
a.copy-link{font-size:.85rem;text-decoration:none;white-space:nowrap}
a.copy-link.copied{font-weight:600}
.count-line{opacity:.8}
/* The player column: beside the results and pinned while they scroll on a wide screen. */
[data-testid=stColumn]:has(.st-key-player-panel){position:sticky;top:3.5rem;align-self:flex-start;z-index:5}
@media (max-width: 640px){
  h1.page-title{font-size:1.25rem}
  /* A phone's first screen is for results: Streamlit's empty top bar goes (the theme has its own control). */
  [data-testid=stHeader]{display:none}
  [data-testid=stMainBlockContainer]{padding:.75rem .75rem 3rem}
  .player-title{font-size:.85rem}
  .video-head img.thumb{width:88px}
  /* 3 lines of a moment's text on a phone: a moment stays ≤ 250 px. */
  .moment-text{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
  /* On a phone the player comes first and stays pinned at the top while the results scroll. */
  [data-testid=stColumn]:has(.st-key-player-panel){order:-1;top:0;background:var(--chaffee-bg, inherit)}
  [data-testid=stColumn]:has(.st-key-player-hint){display:none}
}
</style>"""

# Copy a moment's link (clipboard access needs the page's own document: no Streamlit API),
# keep the played moment in view below a pinned player, and apply a theme choice.
SCRIPT = """<script>
(() => {
  const doc = window.document;
  if (!window.chaffeeCopyInstalled) {
    window.chaffeeCopyInstalled = true;
    doc.addEventListener("click", (e) => {
      const a = e.target.closest && e.target.closest("a.copy-link");
      if (!a) return;
      e.preventDefault();
      const url = new URL(a.getAttribute("href"), window.location.origin).href;
      const done = () => { a.classList.add("copied"); a.dataset.label = a.textContent; a.textContent = "Link copied";
                           setTimeout(() => { a.textContent = a.dataset.label; a.classList.remove("copied"); }, 2000); };
      (navigator.clipboard ? navigator.clipboard.writeText(url) : Promise.reject()).then(done, () => {
        window.prompt("Copy this link:", url);
      });
    });
  }
  const bg = getComputedStyle(doc.querySelector("[data-testid=stApp]") || doc.body).backgroundColor;
  doc.documentElement.style.setProperty("--chaffee-bg", bg);
  const theme = __THEME__;
  if (theme) {
    localStorage.setItem("stActiveTheme-" + window.location.pathname + "-v2", JSON.stringify(theme));
    window.location.reload();
    return;
  }
  const playing = __PLAYING__;
  if (playing) {
    // After ▶ the page must not move away from the moment: while the player is laid out (its
    // frame grows when it loads), keep the moment just below it (phone: player pinned on top)
    // or on screen (wide: player beside the results).
    const scroller = () => {
      const main = doc.querySelector("[data-testid=stMain]");
      return main && main.scrollHeight > main.clientHeight + 1 ? main : doc.scrollingElement;
    };
    const started = Date.now();
    const place = () => {
      const m = doc.querySelector(".st-key-" + playing);
      const panel = doc.querySelector(".st-key-player-panel");
      if (m && panel) {
        const pinnedTop = getComputedStyle(panel.closest("[data-testid=stColumn]")).order === "-1";
        const below = pinnedTop ? panel.getBoundingClientRect().bottom : 0;
        const r = m.getBoundingClientRect();
        if (r.top < below + 4 || r.bottom > window.innerHeight) scroller().scrollBy({ top: r.top - below - 8 });
      }
      if (Date.now() - started < 2500) setTimeout(place, 120);
    };
    place();
  }
})();
</script>"""


def _page_script(playing_key: str | None) -> None:
    theme = st.session_state.pop("_theme_request", None)
    body = SCRIPT.replace("__THEME__", json.dumps(theme)).replace("__PLAYING__", json.dumps(playing_key))
    st.html(body, unsafe_allow_javascript=True)


# ---------------------------------------------------------------------------------------------
# Pieces of the page
# ---------------------------------------------------------------------------------------------


def _filters(view: ViewState, include_hidden: bool) -> ViewState:
    """Sort and filters, in one place (a popover, so a phone keeps its first screen for results).

    Widgets have no keys: their identity includes the URL's value, so Back/Forward and shared
    links always show what the URL says."""
    with st.popover("Filters & sort", icon=":material/tune:"):
        sort = st.segmented_control("Sort by", ["relevance", "date"], default=view.sort, format_func=str.capitalize)
        c1, c2 = st.columns(2)
        d_from = c1.date_input("From", value=view.date_from, format="YYYY-MM-DD")
        d_to = c2.date_input("To", value=view.date_to, format="YYYY-MM-DD")
        sources = st.multiselect("Source", list(SOURCES), default=list(view.sources), format_func=SOURCES.get)
        length = st.radio("Length", list(LENGTHS), index=list(LENGTHS).index(view.length),
                          format_func=lambda k: LENGTHS[k][0], horizontal=True)
        # ---- speaker filter: named speakers (Zoom, inline labels, enrolled voices) ----------------
        speaker_opts = search_db.speakers(include_hidden=include_hidden)
        speaker = st.selectbox(
            "Speaker", speaker_opts, placeholder="Anyone", accept_new_options=True, disabled=not speaker_opts,
            index=speaker_opts.index(view.speaker) if view.speaker in speaker_opts else None,
        )
        # Speaker turns (#15): moments where that speaker alone speaks, not a question put to them.
        speaker_only = st.checkbox("Only them speaking", value=view.speaker_only, disabled=not speaker)
        want_answer = st.toggle("Cited answer above the results", value=view.answer)
    from datetime import date

    return ViewState(
        q=view.q, exact=view.exact, sort=sort or "relevance",
        date_from=d_from if isinstance(d_from, date) else None, date_to=d_to if isinstance(d_to, date) else None,
        sources=tuple(sources), length=length, speaker=speaker or None,
        speaker_only=bool(speaker and speaker_only), answer=want_answer, item=view.item,
        videos=view.videos, play=view.play, t=view.t,
    )


def _theme_switch() -> None:
    with st.popover("Theme", icon=":material/contrast:"):
        for theme in Theme:
            st.button(theme.label, key=f"theme-{theme.value}", on_click=_set_theme, args=(theme,), type="tertiary")


def _title_matches(titles) -> None:
    """Videos whose title matches that the moments do not already show; one not transcribed yet
    says so in words ("queued for transcription")."""
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


def _video_head(group, answered: bool) -> str:
    meta = [group.published_at.date().isoformat() if group.published_at else "date unknown",
            SOURCES.get(group.source_kind, group.source_kind)]
    if group.duration_s:
        meta.append(format_timestamp(group.duration_s))
    if not group.visible:
        meta.append("hidden")
    if not answered:
        meta.append("related, not an answer")
    thumb = thumbnail_url(group.url)
    img = f'<img class="thumb" src="{html.escape(thumb)}" alt="" loading="lazy">' if thumb else ""
    return (f'<div class="video-head">{img}<div><div class="video-title">{html.escape(group.title)}</div>'
            f'<div class="video-meta">{" · ".join(html.escape(m) for m in meta)}</div></div></div>')


def _moment(view: ViewState, group, moment, votes: dict[int, Vote], query: str, answered: bool) -> None:
    cid = moment.chunk_id
    with st.container(key=f"moment-{cid}", gap="small"):
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            playing = view.play == group.media_item_id and view.t == int(moment.start_s)
            st.button(f"▶ {moment.timestamp}", key=f"play-{cid}", on_click=_go,
                      args=(view.playing(group.media_item_id, moment.start_s),),
                      type="primary" if playing else "secondary", help="Play here, with the transcript beside it")
            kind = "copy-link moment-link" + ("" if answered else " related")
            st.markdown(f'<a class="{kind}" href="{html.escape(moment.link)}" title="Copy a link that opens at '
                        f'{moment.timestamp}">🔗 Copy link</a>', unsafe_allow_html=True, width="content")
            mine = votes.get(cid, Vote.NONE)
            st.button("", icon=":material/thumb_up:", key=f"up-{cid}", on_click=_vote, args=(query, cid, Vote.UP),
                      type="primary" if mine is Vote.UP else "tertiary", help="This answers my question")
            st.button("", icon=":material/thumb_down:", key=f"down-{cid}", on_click=_vote,
                      args=(query, cid, Vote.DOWN), type="primary" if mine is Vote.DOWN else "tertiary",
                      help="This does not answer my question")
        who = f"<b>{html.escape(', '.join(moment.speakers))}:</b> " if moment.speakers else ""
        st.markdown(f'<div class="moment-text">{who}{moment.snippet_html}</div>', unsafe_allow_html=True)


def _player_panel(view: ViewState, include_hidden: bool) -> None:
    shown = search_db.player_panel(view.play, include_hidden=include_hidden) if view.play else None
    if shown is None:
        st.warning("That recording is not available.")
        return
    item, lines = shown
    near = around(lines, view.t)
    with st.container(horizontal=True, vertical_alignment="center", gap="small", wrap=False):
        st.markdown(f'<div class="video-title player-title">{html.escape(item.title)} · from '
                    f'{format_timestamp(view.t)}</div>', unsafe_allow_html=True, width="stretch")
        st.button("Close", icon=":material/close:", key="close-player", on_click=_go, args=(view.closed(),),
                  type="tertiary", help="Close the player")
    vid = youtube_id(item.url)
    if vid:
        player(PlayerKind.YOUTUBE, video_id=vid, start=view.t, lines=near, answer=answer_index(near, view.t),
               title=item.title)
    else:
        src = local_media_url(item.media_path, item.id) if item.media_path else None
        if src is None:
            st.info("This recording's file is not on the server, so it cannot play here. The transcript is below.")
        kind = PlayerKind.AUDIO if item.is_audio or not src else PlayerKind.VIDEO
        player(kind, src=src, start=view.t, lines=near, answer=answer_index(near, view.t), title=item.title)
    with st.container(horizontal=True, gap="small"):
        if view.q and view.item != item.id:
            st.button("Search in this video", icon=":material/manage_search:", key="search-in-video", on_click=_go,
                      args=(view.in_video(item.id),), type="secondary")
        if lines:
            with st.popover("Transcript", icon=":material/download:"):
                for fmt in ExportFormat:
                    st.download_button(f"Download {fmt.value.upper()}", export(lines, fmt, item.title),
                                       file_name=file_name(item.title, fmt), mime=fmt.mime, key=f"dl-{fmt.value}",
                                       on_click="ignore", type="tertiary")


def _home(include_hidden: bool) -> None:
    if search_db.archive_is_empty(include_hidden=include_hidden):
        st.info(HELP_EMPTY)
        return
    trends = search_db.trending(limit=8, include_hidden=include_hidden)
    if trends:
        st.subheader("Trending searches")
        picked = st.pills("Trending", [t.query for t in trends], label_visibility="collapsed", key="trend_pick")
        if picked:
            st.session_state.pop("trend_pick", None)
            _go(ViewState().new_search(picked))
            st.rerun()


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------

include_hidden = _is_admin()
try:
    suggestions = _suggestions(include_hidden)
except Exception:  # noqa: BLE001 - no database answers: a sentence for the viewer, the log gets the rest
    log.exception("search page: database unavailable")
    st.error(UNAVAILABLE)
    st.stop()
view = ViewState.from_params(st.query_params.to_dict())

st.html(STYLE)
with st.container(horizontal=True, vertical_alignment="center", horizontal_alignment="distribute"):
    st.markdown('<h1 class="page-title">Chaffee Search</h1>', unsafe_allow_html=True, width="content")
    _theme_switch()

# The box's last submission is applied before the box is drawn again, so it shows the new query.
submitted = parse_submission(st.session_state.get(SEARCH_BOX_KEY))
if submitted and submitted.session:
    st.session_state["viewer_session"] = submitted.session
if submitted and submitted.nonce and submitted.query is not None \
        and submitted.nonce != st.session_state.get("_applied_search"):
    st.session_state["_applied_search"] = submitted.nonce  # each submission once: Back/Forward win after it
    if submitted.query != view.q or view.exact or view.play:
        view = view.new_search(submitted.query)
search_box(view.q, suggestions, session=_viewer_session(),
           placeholder="Ask a question or type words, e.g. seed oils, LDL cholesterol, plant toxins…")

with st.container(horizontal=True, vertical_alignment="center", gap="small"):
    view = _filters(view, include_hidden)
    if view.item:
        only = search_db.player_item(view.item, include_hidden=include_hidden)
        st.button(f"Only in: {only.title if only else 'one video'}", icon=":material/close:", key="clear-item",
                  on_click=_go, args=(view.in_video(None),), type="tertiary", help="Search every video again")
if view.to_params() != st.query_params.to_dict():
    _go(view)  # the URL follows the box and the filters: one history entry per change

playing_key = None
if not view.q:
    if view.play:
        _player_panel(view, include_hidden)
    _home(include_hidden)
    _page_script(None)
    st.stop()

# ---- results ---------------------------------------------------------------------------------
moments_per_video = ITEM_MOMENTS if view.item else MOMENTS_PER_VIDEO
try:
    response = _search(view.q, view.filters(), view.sort, include_hidden, not view.exact, view.videos,
                       moments_per_video)
except QueryError as exc:
    st.error(str(exc))
    _page_script(None)
    st.stop()
except Exception:  # noqa: BLE001
    log.exception("search failed for %r", view.q)
    st.error(UNAVAILABLE)
    st.stop()

session_key = _viewer_session()
logged = st.session_state.setdefault("_logged_queries", set())
if not include_hidden and session_key and view.q.lower() not in logged:
    # Once per browser session and query: reruns (votes, filters, play) never count again, and
    # trending counts distinct sessions.
    logged.add(view.q.lower())
    search_db.log_search(response, session_key=session_key)  # to the primary, queued while it is away

if response.corrected_query:
    fixes = ", ".join(f"{html.escape(a)} → {html.escape(b)}" for a, b in response.prepared.corrections)
    st.markdown(f'<span class="searched-for">Searched for <b>{html.escape(response.corrected_query)}</b> ({fixes})</span>',
                unsafe_allow_html=True)
    st.button(f"Search instead for “{_md_text(response.search_instead or view.q)}”", key="search_instead",
              type="tertiary", icon=":material/undo:", on_click=_go,
              args=(ViewState.from_params({**view.to_params(), "exact": "1", "play": "", "t": ""}),),
              help="Search the words exactly as you typed them, without spelling correction")
elif view.exact:
    st.caption(f"Searched exactly as typed: {_md_text(view.q)} (no spelling correction)")

verdict = response.verdict
answered = verdict is None or verdict.answered
verdict_text = _md_text(verdict.message) if verdict else ""  # quotes the query: plain text, never markup
# The count line also marks which search the results below belong to (data-q: browser tests and
# bench/page_latency.py wait for it).
count = html.escape(count_line(response.groups)) if answered and response.groups else ""
st.markdown(f'<div class="count-line" data-q="{html.escape(view.q)}" data-n="{int(view.videos)}">{count}</div>',
            unsafe_allow_html=True)
if not response.groups:
    if search_db.archive_is_empty(include_hidden=include_hidden) and not response.titles:
        st.info(HELP_EMPTY)
    else:
        st.warning(verdict_text or "Nothing matches this query. Try other words, or fewer filters.")
        _title_matches(response.titles)
    if view.play:
        _player_panel(view, include_hidden)
    _page_script(None)
    st.stop()

if not answered:
    st.warning(verdict_text)
    _title_matches(response.titles)

col_results, col_player = st.columns([3, 2], gap="medium")
with col_player:
    if view.play:
        with st.container(key="player-panel"):
            _player_panel(view, include_hidden)
    else:
        with st.container(key="player-hint", border=True):
            st.caption("Press ▶ on a moment to play it here, with the transcript beside it.")

with col_results:
    if view.answer and answered:
        with st.container(border=True):
            with st.spinner("Writing a cited answer…"):
                ans = search_db.answer(response, embedder=_embedder())
            if ans.sentences:
                label = "Answer" if ans.engine == "chat" else "From the clips"
                parts = [
                    (f"<b>{html.escape(sent.speaker)}:</b> " if sent.speaker else "")
                    + f'{html.escape(sent.text)} <a class="cite" href="{html.escape(sent.link)}" target="_blank" '
                    f'title="{html.escape(ans.clips[sent.clip - 1].title)} at {format_timestamp(sent.start_s)}">'
                    f"[{sent.clip}]</a>"
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
    votes = _tab_votes().shown(view.q, search_db.session_votes(session_key, view.q))
    for group in response.groups:
        with st.container(border=True, key=f"video-{group.media_item_id}"):
            # Under an answered verdict, a video or moment that does not itself answer says so.
            st.markdown(_video_head(group, answered and group.answers), unsafe_allow_html=True)
            for moment in group.moments:
                if view.play == group.media_item_id and view.t == int(moment.start_s):
                    playing_key = f"moment-{moment.chunk_id}"
                _moment(view, group, moment, votes, view.q, answered and moment.answers)
            if answered and not view.item:
                st.button("More from this video", icon=":material/expand_more:", key=f"more-{group.media_item_id}",
                          on_click=_go, args=(view.in_video(group.media_item_id),), type="tertiary")
    if answered and len(response.groups) >= view.videos and view.videos < 100:
        st.button("Show more results", key="show-more", on_click=_go, args=(view.more(),), width="stretch")
    if answered:
        _title_matches(response.titles)

_page_script(playing_key)
