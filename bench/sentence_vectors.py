"""What sentence vectors cost: embedding time per hour of audio at ingest, and the locator's
added time per search — side by side with the chunks' embedding and the words-only locator.

Over the real Chaffee transcripts (../shared/data/transcripts, ≈ 3.2 h):
  ingest   the sentences core/sentence_index.py embeds per hour of audio, and the seconds the
           configured embedder takes for them (timed here, never read from the bench cache),
           against the seconds it takes for the same hour's chunks;
  query    for each 100-set question: the windows search() shaped, located once by the query's
           words only and once with the query vector (the sentence-vector lookup added), each the
           median of 5 runs; p50/p95 over the questions.

    python bench/sentence_vectors.py [--query-only]
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402
import relevance  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def ingest_cost(embedder) -> None:
    from core.chunking import chunk_segments
    from core.search.moments import TimedLine
    from core.sentence_index import item_sentences
    from core.transcribe.captions import parse_caption_file

    hours = 0.0
    sentences, chunks = [], []
    for path in sorted(_corpus.require(_corpus.TRANSCRIPTS).glob("*.srt")):
        segs = parse_caption_file(path)
        hours += segs[-1].end / 3600
        sentences += [s.text for s in item_sentences([TimedLine(x.start, x.end, x.text, x.speaker) for x in segs])]
        chunks += [c.text for c in chunk_segments(segs)]
    timed = {}
    for name, texts in (("chunks", chunks), ("sentences", sentences)):
        t = time.perf_counter()
        for i in range(0, len(texts), 64):
            embedder.embed_documents(texts[i : i + 64])
        timed[name] = time.perf_counter() - t
    print(f"ingest, {hours:.2f} h of audio ({embedder.model}, load {os.getloadavg()[0]:.1f}):")
    for name, texts in (("chunks", chunks), ("sentences", sentences)):
        print(f"  {name:<10} {len(texts) / hours:6.0f} per hour of audio, {timed[name] / hours:6.1f} s embedding per hour "
              f"({len(texts) / timed[name]:.0f}/s)")
    print(f"  sentence vectors add {timed['sentences'] / hours:.1f} s of embedding per hour of audio "
          f"({timed['sentences'] / timed['chunks']:.1f}× the chunks')")


def query_cost(session, embedder) -> None:
    from core.search import search, shaping
    from core.search.engine import _embed_query, _space
    from core.search.moments import load_lines, load_similarities, locate

    item_to_video = relevance.load_chaffee(session, embedder, sentence_vectors=True)
    assert item_to_video
    space = _space(session, embedder)
    seen: list[tuple] = []
    original = shaping.locate

    def spy(session_, windows, weights, prefer=None, **kw):
        seen.append((list(windows), dict(weights), list(prefer or [])))
        return original(session_, windows, weights, prefer, **kw)

    shaping.locate = spy
    words_ms, meaning_ms, lookup_ms = [], [], []
    try:
        for _, q, _ in relevance.chaffee_labels():
            seen.clear()
            r = search(session, q, k=10, mode="hybrid", log=False, use_cache=False, embedder=embedder)
            windows, weights, prefer = seen[0]
            qvec = _embed_query(embedder, r.prepared.cleaned)
            for out, kw in ((words_ms, {}), (meaning_ms, {"query_vector": qvec, "space": space})):
                runs = []
                for _ in range(5):
                    t = time.perf_counter()
                    locate(session, windows, weights, prefer, **kw)
                    runs.append((time.perf_counter() - t) * 1000)
                out.append(statistics.median(runs))
            firsts = [ls[0].start_s if ls else w.start_s for ls, w in zip(load_lines(session, windows), windows)]
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                load_similarities(session, windows, firsts, qvec, space)
                runs.append((time.perf_counter() - t) * 1000)
            lookup_ms.append(statistics.median(runs))
    finally:
        shaping.locate = original
    session.rollback()
    print(f"query, 100-set questions ({len(words_ms)}), locator per search, load {os.getloadavg()[0]:.1f}:")
    print(f"  words only        p50 {statistics.median(words_ms):6.2f} ms  p95 {_pct(words_ms, 0.95):6.2f} ms")
    print(f"  + sentence vectors p50 {statistics.median(meaning_ms):6.2f} ms  p95 {_pct(meaning_ms, 0.95):6.2f} ms")
    print(f"  the vector lookup (one SQL statement) alone p50 {statistics.median(lookup_ms):6.2f} ms  "
          f"p95 {_pct(lookup_ms, 0.95):6.2f} ms")
    added = [m - w for m, w in zip(meaning_ms, words_ms)]
    print(f"  added             p50 {statistics.median(added):6.2f} ms  p95 {_pct(added, 0.95):6.2f} ms")


def main() -> int:
    _corpus.use_scratch_database()
    from core.db import session_scope
    from core.embeddings import get_embedder

    embedder = get_embedder()
    print(f"{os.cpu_count()} CPUs")
    if "--query-only" not in sys.argv[1:]:
        ingest_cost(embedder)
    with session_scope() as session:
        query_cost(session, embedder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
