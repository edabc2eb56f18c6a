"""Where search()'s time goes at 100k chunks, and whether a change kept every result — one tool.

The same archive as bench/search_latency.py (100k real NFCorpus windows, MiniLM vectors from the
bench cache, 55k timed lines), but kept in a database folder of its own (`--home`), so that a
profile or a before/after comparison costs seconds, not the ~2 minutes of loading and indexing.
With `--sentence-vectors` every sentence of those lines also gets a stored vector (a stand-in:
the vector of the chunk whose window starts nearest it; their meaning is not the point, their
cost is: the locator reads them and chooses by meaning, as on an archive that has them).

    python bench/search_profile.py --home /tmp/prof [--sentence-vectors] --queries 100 \
        [--dump before.json] [--compare before.json] [--profile] [--explain]

Printed: search() total and stage p50/p95 on a first pass (after a fresh server start: plans and
the driver's prepared statements cold, the OS page cache whatever it is) and on a second, warm
pass, with the load average, and the CPU time a search costs (this process's and its server
process's, from /proc: far steadier than wall-clock figures on a shared machine); --profile adds cProfile's top functions over a third pass; --explain
EXPLAIN (ANALYZE, BUFFERS) of the locator's, verdict's and titles' SQL for one query.

--dump writes what a viewer sees for every query (videos, moments with their links, snippets and
sentences, the verdict and its message, title matches); --compare reads such a file and prints
each query whose results differ (exit status 1 when any does): "identical" is the check that a
speed-up changed nothing.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402

SIZE = 100_000


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def use_home(home: Path) -> bool:
    """Point the app at the database under `home` (created on first use); True when it is loaded."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    models = _corpus.CACHE_DIR / "models"
    models.mkdir(parents=True, exist_ok=True)
    link = home / "data" / "models"
    if not link.exists():
        link.symlink_to(models, target_is_directory=True)
    os.environ["DATA_DIR"] = str(home / "data")
    os.environ["CHAFFEE_SECRETS_FILE"] = str(home / "no-secrets.toml")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return (home / "loaded").exists()


def build(home: Path, embedder, sentence_vectors: bool) -> None:
    """Load the archive as search_latency.py loads its 100k size (same rows, same indexes)."""
    import search_latency as sl

    from core.db import session_scope
    from core.embeddings import ensure_space

    docs, chunks = _corpus.latency_chunks(SIZE)
    vectors = _corpus.embed_cached(embedder, [c.text for c in chunks], "nfcorpus-latency-100k")
    pace, (width, stride) = _corpus.SPEECH_WORDS_PER_S, (50, 6)
    with session_scope() as session:
        ids, _ = sl.load_items(session, docs)
        segments = _corpus.latency_segments(docs)
        sl.copy_segments(session, ids, segments)
        space = ensure_space(session, embedder)
        session.commit()
        sl.drop_indexes(session, space.id)
        take = np.sort(np.random.default_rng(7).permutation(len(chunks))[:SIZE])
        rows = [(ids[chunks[i].doc], chunks[i].idx, chunks[i].idx * stride / pace,
                 (chunks[i].idx * stride + width) / pace, chunks[i].text, vectors[i]) for i in take]
        sl.copy_chunks(session, iter(rows), space.id)
        sl.build_indexes(session, embedder)
        if sentence_vectors:
            n = sl.copy_sentence_vectors(session, ids, segments, rows, space.id)
            print(f"{n:,} stand-in sentence vectors stored", flush=True)
        session.commit()
    (home / "loaded").write_text("sentence vectors\n" if sentence_vectors else "no sentence vectors\n")


def seen(response) -> dict:
    """What a viewer sees of one response, as plain JSON."""
    v = response.verdict
    return {
        "groups": [{
            "item": g.media_item_id, "title": g.title, "score": round(g.score, 9),
            "moments": [{"chunk": m.chunk_id, "start_s": m.start_s, "end_s": m.end_s, "link": m.link,
                         "snippet": m.snippet_html, "sentence": m.sentence, "sentence_start_s": m.sentence_start_s,
                         "window_start_s": m.window_start_s, "answers": m.answers, "score": round(m.score, 9),
                         "speakers": list(m.speakers)} for m in g.moments],
        } for g in response.groups],
        "verdict": None if v is None else {
            "verdict": v.verdict.value, "message": v.message, "key_terms": list(v.key_terms),
            "missing_terms": list(v.missing_terms), "cosine": v.cosine, "coverage": v.coverage,
            "evidence": [[e.chunk_id, e.cosine, e.coverage, e.score, e.answers] for e in v.evidence],
        },
        "titles": [[t.media_item_id, t.link, t.status.value, t.score, t.has_moments] for t in response.titles],
        "search_instead": response.prepared.search_instead if hasattr(response.prepared, "search_instead") else None,
    }


def _backend_cpu_s(session) -> float | None:
    """CPU seconds (user + system) the server process of this session has used: with the client's
    own CPU time it says what a search costs in work, which the machine's load barely changes
    (wall-clock latency on a shared 2-core machine moves with every other process)."""
    from sqlalchemy import text

    pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_pass(session, embedder, queries, cfg) -> tuple[list[float], dict[str, list[float]], list]:
    from core.search import search

    totals, stages, responses = [], {}, []
    cpu0, server0 = time.process_time(), _backend_cpu_s(session)
    for q in queries:
        t = time.perf_counter()
        r = search(session, q, log=False, use_cache=False, embedder=embedder, config=cfg)
        totals.append((time.perf_counter() - t) * 1000)
        for stage, ms in r.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
        responses.append(r)
        session.rollback()
    server1 = _backend_cpu_s(session)
    stages["cpu: client"] = [(time.process_time() - cpu0) * 1000 / len(queries)]
    if server0 is not None and server1 is not None:
        stages["cpu: server"] = [(server1 - server0) * 1000 / len(queries)]
    return totals, stages, responses


def report(label: str, totals: list[float], stages: dict[str, list[float]], responses=(), slowest: int = 0) -> None:
    print(f"{label}: search() p50 {statistics.median(totals):.1f} / p95 {pct(totals, 0.95):.1f} ms · "
          f"load {os.getloadavg()[0]:.1f}")
    print("   stages p50/p95 ms: " + " · ".join(f"{k} {statistics.median(v):.1f}/{pct(v, 0.95):.1f}"
                                                for k, v in stages.items() if not k.startswith("cpu")))
    print("   CPU per search (mean ms, the pass's total over its queries): " + " · ".join(
        f"{k[5:]} {v[0]:.1f}" for k, v in stages.items() if k.startswith("cpu")), flush=True)
    for i in sorted(range(len(totals)), key=lambda i: -totals[i])[:slowest]:
        r = responses[i]
        print(f"   slow: {totals[i]:.1f} ms {r.query[:50]!r} ({r.verdict.verdict.value if r.verdict else '-'}, "
              f"{sum(len(g.moments) for g in r.groups)} moments): "
              + " ".join(f"{k} {v:.1f}" for k, v in r.timings_ms.items()))


def compare(before: list[dict], after: list[dict], queries: list[str]) -> int:
    diffs = 0
    for q, b, a in zip(queries, before, after):
        if b != a:
            diffs += 1
            for key in b:
                if b[key] != a.get(key):
                    print(f"  DIFFERS {q!r}: {key}\n    before {json.dumps(b[key])[:400]}\n    after  {json.dumps(a.get(key))[:400]}")
    print(f"compare: {len(queries) - diffs}/{len(queries)} queries identical (videos, moments, links, snippets, "
          f"sentences, verdict, message, titles)")
    return diffs


def explain(session, embedder, query: str, cfg) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement one search() issues (warm)."""
    from sqlalchemy import event

    from core.search import search

    statements: list[tuple[str, object]] = []
    engine = session.get_bind()

    def grab(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        search(session, query, log=False, use_cache=False, embedder=embedder, config=cfg)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    session.rollback()
    dbapi = session.connection().connection.dbapi_connection
    for sql, params in statements:
        with dbapi.cursor() as cur:
            if sql.lstrip().upper().startswith(("SET", "SELECT SET_CONFIG")):
                cur.execute(sql, params)  # the settings the next statement runs under (ef_search …)
                continue
            t = time.perf_counter()
            cur.execute(sql, params)
            ms = (time.perf_counter() - t) * 1000
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n      ".join(re.sub(r"'\[[-0-9.e,]+\]'", "'[…]'", r[0]) for r in cur.fetchall())
        print(f"\n-- {ms:.2f} ms: {' '.join(sql.split())[:160]}\n      {plan}")
    dbapi.rollback()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="folder of the bench database (kept between runs)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--sentence-vectors", action="store_true", help="when building: store stand-in sentence vectors")
    ap.add_argument("--dump", type=Path, help="write what every query shows (JSON)")
    ap.add_argument("--compare", type=Path, help="a --dump file to compare this run's results with")
    ap.add_argument("--profile", action="store_true", help="cProfile one more pass")
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE every statement of one search")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--slowest", type=int, default=0, help="print the stages of the N slowest queries of each pass")
    args = ap.parse_args(argv)

    loaded = use_home(args.home.resolve())
    from core.db import session_scope
    from core.embeddings import get_embedder
    from core.search import cache
    from core.search.engine import _embed_query
    from core.search.fusion import FusionConfig

    embedder = get_embedder()
    if not loaded:
        t = time.perf_counter()
        build(args.home.resolve(), embedder, args.sentence_vectors)
        print(f"built the 100k archive in {time.perf_counter() - t:.0f} s", flush=True)
    print(f"archive: {(args.home / 'loaded').read_text().strip()}")
    qtexts, _ = _corpus.nfcorpus_queries("dev")
    queries = [qtexts[k] for k in sorted(qtexts)][: args.queries]
    for q in queries:
        _embed_query(embedder, q)  # the model's cost is not search()'s (the bench caches it too)
    cfg = FusionConfig()
    with session_scope() as session:
        from core.search.preprocess import vocabulary
        from core.search.retrieval import keyword_stats

        version = cache.content_version(session)
        vocabulary(session, version)
        keyword_stats(session, version)
        responses = None
        for p in range(args.passes):
            totals, stages, got = run_pass(session, embedder, queries, cfg)
            report("first pass (cold)" if p == 0 else f"pass {p + 1} (warm)", totals, stages, got, args.slowest)
            responses = responses or got
        views = [seen(r) for r in responses]
        if args.dump:
            args.dump.write_text(json.dumps({"queries": queries, "results": views}, indent=0))
            print(f"wrote {args.dump}")
        status = 0
        if args.compare:
            before = json.loads(args.compare.read_text())
            assert before["queries"] == queries, "the dump holds other queries"
            status = 1 if compare(before["results"], views, queries) else 0
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run_pass(session, embedder, queries, cfg)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        if args.explain:
            explain(session, embedder, queries[3], cfg)
    return status


if __name__ == "__main__":
    sys.exit(main())
