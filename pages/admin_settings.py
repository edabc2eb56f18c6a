"""Settings: how search ranks, the synonym groups that widen searches, and the prices the budget charges."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import admin_actions, engines
from core.backfill import budget
from core.db import session_scope
from core.search.fusion import fusion_config
from core.search.preprocess import get_synonyms
from pages._auth import require_admin
from pages._speakers_admin import render as render_speakers
from pages._ui import page_header, run_action, show_flash

actor = require_admin()
page_header("Settings", "How search ranks, words that mean the same thing to this archive's viewers, what each paid "
            "engine costs, and who speaks.")
show_flash()

with session_scope() as s:
    synonyms = get_synonyms(s)
    prices = budget.get_prices(s)
    ranking = fusion_config(s)

st.subheader("Search ranking")
st.caption("Each passage scores on meaning (the embedding model) and on the query's exact words (full text). "
           "More weight on exact words favours rare terms, names and drugs; more on meaning favours questions "
           "phrased in other words. The default (0.60) scored best on the relevance benchmark.")
with st.form("ranking"):
    alpha = st.slider("Weight on meaning (the rest goes to exact words)", min_value=0.0, max_value=1.0,
                      value=float(ranking.alpha), step=0.05, format="%.2f")
    rerank = st.toggle(f"Rerank the top {ranking.rerank_top} passages with the cross-encoder (more accurate on "
                       "the labelled questions, about 0.1 s more per search on 2 CPU cores)", value=bool(ranking.rerank))
    st.markdown("**When does the archive answer a question?** Every search says *answered*, *related only* or "
                "*nothing*. A top passage answers when its answer score reaches the threshold: its closeness in "
                "meaning (cosine, 0–1), plus the weight below × the share of the question's words it holds "
                "(rarer words count more), minus the penalty when a word of the question occurs nowhere in the "
                "archive. The defaults were fitted by `bench/verdict.py` for the default embedding model: "
                "re-run it after changing the model.")
    v1, v2, v3 = st.columns(3)
    verdict = {
        "verdict_min_score": v1.number_input("Answer score needed", 0.0, 2.0, float(ranking.verdict_min_score), 0.01,
                                             format="%.3f"),
        "verdict_coverage_weight": v2.number_input("Weight of the question's words", 0.0, 2.0,
                                                   float(ranking.verdict_coverage_weight), 0.05, format="%.2f"),
        "verdict_absent_penalty": v3.number_input("Penalty for a term (name, drug, disease) nowhere in the archive", 0.0, 1.0,
                                                  float(ranking.verdict_absent_penalty), 0.01, format="%.2f"),
        "verdict_related_cosine": v1.number_input("Closeness of a passage shown as related", 0.0, 1.0,
                                                  float(ranking.verdict_related_cosine), 0.01, format="%.3f"),
        "verdict_related_moments": int(v2.number_input("Related passages shown when nothing answers", 0, 10,
                                                       int(ranking.verdict_related_moments), 1)),
    }
    if st.form_submit_button("Save ranking"):
        unchanged = all(getattr(ranking, k) == v for k, v in verdict.items())
        if (alpha, rerank) == (float(ranking.alpha), bool(ranking.rerank)) and unchanged:
            st.info("Nothing to save: the ranking is unchanged.")
        elif run_action(admin_actions.set_search_ranking, actor, alpha=alpha, rerank=rerank, verdict=verdict,
                        success="Search ranking saved; new searches use it at once."):
            st.rerun()

st.subheader("Synonyms")
st.caption("A search for a term also finds its alternatives (e.g. *LDL* finds *cholesterol*). One group per row; "
           "separate alternatives with commas. Delete a row to drop the group.")
edited = st.data_editor(
    pd.DataFrame([{"Term": k, "Also finds": ", ".join(v)} for k, v in sorted(synonyms.items())],
                 columns=["Term", "Also finds"]),
    num_rows="dynamic", hide_index=True, width="stretch", key="synonyms_editor", height=38 + 35 * (len(synonyms) + 1),
    column_config={"Term": st.column_config.TextColumn(width="medium", required=True),
                   "Also finds": st.column_config.TextColumn(width="large")},
)
if st.button("Save synonyms", type="primary"):
    mapping = {str(r["Term"]).strip(): str(r["Also finds"] or "") for _, r in edited.iterrows()
               if isinstance(r["Term"], str) and r["Term"].strip()}
    if run_action(admin_actions.set_synonyms, actor, mapping, success=f"{len(mapping)} synonym groups saved."):
        st.rerun()

st.subheader("Prices")
st.caption("What the budget charges for each paid engine. Change them when the provider changes theirs; "
           "estimates, reservations and the backlog projection use them at once.")
# Engines that can cost money (core.engines), and any other name someone gave a price.
paid = {name: p for name, p in prices.items() if engines.engine(name).paid or not p.free}
with st.form("prices"):
    values: dict[str, tuple[float, float, float]] = {}
    for name, price in paid.items():
        c0, c1, c2, c3 = st.columns([2, 2, 2, 2])
        c0.markdown(f"**{name}**")
        values[name] = (
            c1.number_input("USD per audio minute", min_value=0.0, value=price.per_audio_minute, step=0.001,
                            format="%.4f", key=f"price_min_{name}"),
            c2.number_input("USD per million tokens", min_value=0.0, value=price.per_million_tokens, step=0.01,
                            format="%.4f", key=f"price_tok_{name}"),
            c3.number_input("USD per GPU hour", min_value=0.0, value=price.per_hour, step=0.1, format="%.2f",
                            key=f"price_hour_{name}"),
        )
    if st.form_submit_button("Save prices"):
        changed = {n: v for n, v in values.items() if v != tuple(paid[n])}
        ok = True
        for name, (per_min, per_tok, per_hour) in changed.items():
            ok = ok and run_action(admin_actions.set_price, actor, name, per_audio_minute=per_min,
                                   per_million_tokens=per_tok, per_hour=per_hour, success="Prices saved.")
        if not changed:
            st.info("Nothing to save: the prices are unchanged.")
        elif ok:
            st.rerun()

render_speakers(actor)  # Speakers: enrolment, renames, captioned audio (pages/_speakers_admin.py)
