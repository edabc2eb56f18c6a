"""Other HNSW build settings on a million-chunk database that bench/search_latency.py left behind:
rebuild the index with m / ef_construction, then recall@10, vector SQL and hybrid search()
latency per ef_search, side by side — without loading the million again.

The exact top 10 comes from numpy over every stored vector (as in search_latency.py).

    DATA_DIR=/tmp/chaffee-bench-XXXX/data nice -n 10 python bench/hnsw_settings.py \
        --m 16 --ef-construction 128 --queries 100 --ef-sweep 400,800,1000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402
import search_latency as sl  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", type=int, default=0, help="rebuild with this m (0: keep the index as it is)")
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ef-sweep", default="400,800,1000")
    ap.add_argument("--maintenance-work-mem", default="3GB")
    args = ap.parse_args(argv)
    if not os.environ.get("DATA_DIR"):
        sys.exit("set DATA_DIR to the data folder of a database search_latency.py built (printed nowhere else: /tmp/chaffee-bench-*/data)")
    os.environ.pop("DATABASE_URL", None)
    from pgvector.psycopg import register_vector
    from sqlalchemy import text

    from core.db import session_scope
    from core.embeddings import get_embedder
    from core.search import search
    from core.search.engine import _embed_query, _space
    from core.search.fusion import FusionConfig

    emb = get_embedder()
    qtexts, _ = _corpus.nfcorpus_queries("dev")
    queries = [qtexts[k] for k in sorted(qtexts)][: args.queries]
    qvecs = np.stack([_embed_query(emb, q) for q in queries])
    with session_scope() as s:
        sid, d = _space(s, emb)
        dbapi = s.connection().connection.dbapi_connection
        register_vector(dbapi)
        t = time.perf_counter()
        exact = sl.ExactTop10()
        with dbapi.cursor() as cur:
            cur.execute(f"SELECT id, embedding::vector({d}) FROM chunks ORDER BY id")
            rows = cur.fetchall()
        exact.add(np.array([r[0] for r in rows]), np.stack([r[1].to_numpy() for r in rows]).astype(np.float32))
        del rows
        truths = [{c.chunk_id for c in exact.top10(q)} for q in qvecs]
        print(f"{len(exact.ids):,} chunks; exact top 10 of {len(queries)} queries in {time.perf_counter() - t:.0f} s", flush=True)
        s.commit()
        if args.m:
            s.execute(text(f"DROP INDEX IF EXISTS ix_chunks_hnsw_space_{sid}"))
            s.execute(text(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'"))
            mem = sl.ServerMemory()
            mem.start()
            t = time.perf_counter()
            s.execute(text(f"CREATE INDEX ix_chunks_hnsw_space_{sid} ON chunks USING hnsw ((embedding::vector({d})) "
                           f"vector_cosine_ops) WITH (m = {args.m}, ef_construction = {args.ef_construction}) "
                           f"WHERE embedding_space_id = {sid}"))
            build = time.perf_counter() - t
            mem.stop()
            s.commit()
            size = s.execute(text(f"SELECT pg_relation_size('ix_chunks_hnsw_space_{sid}')")).scalar_one()
            print(f"HNSW m={args.m}, ef_construction={args.ef_construction}: build {build:.0f} s · server memory peak "
                  f"{mem.peak_mb:,.0f} MB · index {size / 2**20:,.0f} MB · load {os.getloadavg()[0]:.1f}", flush=True)
        for q in queries[:10]:  # warm-up, as search_latency.py does
            search(s, q, log=False, use_cache=False, embedder=emb)
        s.rollback()
        efs = [int(e) for e in args.ef_sweep.split(",") if e.strip()]
        for ef, (rec, lat, hyb) in sl.sweep_ef(s, emb, queries, qvecs, (sid, d), truths, efs, FusionConfig()).items():
            print(f"  → ef_search {ef}: recall@10 {rec:.3f} · vector SQL p50 {statistics.median(lat):.1f} / "
                  f"p95 {sl.pct(lat, 0.95):.1f} ms · hybrid p50 {statistics.median(hyb):.1f} / p95 {sl.pct(hyb, 0.95):.1f} ms · "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
