"""What a viewer waits for: Enter in the search box → the first result on screen, in Chromium.

The archive is bench/search_latency.py's: NFCorpus abstracts cut into 50-word windows (one media
item per abstract, timed transcript lines for the sentence locator), loaded by its own loader
with the vectors it cached (~/.cache/chaffee-search/bench, "nfcorpus-latency-100k"). Nothing is
embedded here: when that cache is still being filled, the archive is the chunks whose vectors
are cached so far, and the line printed says how many.

Then a real `streamlit run` of pages/search.py on that database, and headless Chromium at
1400×1000: for each of the NFCorpus dev questions (20 by default, each new to the page's cache),
type it into the box, press Enter, and stop the clock when the first result of *that* search is
on screen (the count line carries the query; the first video's title is no longer stale). The
first search after start-up (model, plans and buffers cold) is printed apart.

    python bench/page_latency.py [--queries 20] [--chunks 100000]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus  # noqa: E402
import search_latency  # noqa: E402  (its archive loader)

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent


def cached_vectors(embedder, chunks) -> tuple[np.ndarray, str]:
    """The latency archive's vectors as far as they are cached (never computed here)."""
    import hashlib

    digest = hashlib.sha256("\x1e".join(c.text for c in chunks).encode()).hexdigest()[:16]
    final = _corpus.CACHE_DIR / f"nfcorpus-latency-100k-{_corpus.embedder_key(embedder)}-d-{digest}.npy"
    for path, state in ((final, "complete"), (final.with_suffix(".partial.npy"), "partial")):
        if path.exists():
            return np.load(path), state
    sys.exit(f"no cached vectors at {final} (run bench/search_latency.py first); nothing to measure")


def build_archive(embedder, limit: int) -> tuple[int, str]:
    from sqlalchemy import text

    from core.db import session_scope
    from core.embeddings import ensure_space

    docs, chunks = _corpus.latency_chunks(100_000)
    vectors, state = cached_vectors(embedder, chunks)
    n = min(limit, len(vectors))
    with session_scope() as session:
        ids, _ = search_latency.load_items(session, docs)
        search_latency.copy_segments(session, ids, _corpus.latency_segments(docs))
        space = ensure_space(session, embedder)
        session.commit()
        search_latency.drop_indexes(session, space.id)
        pace = _corpus.SPEECH_WORDS_PER_S
        rows = [(ids[c.doc], c.idx, c.idx * 6 / pace, (c.idx * 6 + 50) / pace, c.text, vectors[i])
                for i, c in enumerate(chunks[:n])]
        search_latency.copy_chunks(session, rows, space.id)
        search_latency.build_indexes(session, embedder)
        session.commit()
        loaded = session.execute(text("SELECT count(*) FROM chunks")).scalar_one()
    return int(loaded), state


def start_ui() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Path(tempfile.mkdtemp(prefix="chaffee-page-bench-")) / "app.py"
    app.write_text(
        "import streamlit as st\n"
        "st.set_page_config(page_title='Chaffee Search', layout='wide')\n"
        f"st.navigation([st.Page({str(ROOT / 'pages' / 'search.py')!r}, title='Search', default=True)]).run()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.ui_server", "run", str(app), "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("the UI did not start")


FIRST_RESULT = """q => {
  const marker = [...document.querySelectorAll('.count-line')].find(e => e.dataset.q === q);
  if (!marker || marker.closest('[data-stale=true]')) return false;
  const first = document.querySelector('[class*=st-key-video-] .video-title');
  const alert = document.querySelector('[data-testid=stAlert]');
  return (first && !first.closest('[data-stale=true]')) || (alert && !alert.closest('[data-stale=true]'));
}"""


def timed_search(page, box, query: str) -> float:
    box.click()
    box.press("Control+a")
    box.type(query)
    t = time.perf_counter()
    box.press("Enter")
    try:
        page.wait_for_function(FIRST_RESULT, arg=query, timeout=120_000, polling="raf")
    except Exception:
        shot = Path(tempfile.gettempdir()) / "page_latency_timeout.png"
        page.screenshot(path=str(shot))
        sys.exit(f"no result on screen for {query!r} after 120 s (screenshot: {shot})")
    ms = (time.perf_counter() - t) * 1000
    page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=120_000)
    return ms


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--chunks", type=int, default=100_000, help="at most this many chunks (as many as are cached)")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _corpus.use_scratch_database()
    from core.embeddings import get_embedder

    embedder = get_embedder()
    t = time.perf_counter()
    chunks, state = build_archive(embedder, args.chunks)
    print(f"archive: {chunks:,} chunks ({state} vector cache), built in {time.perf_counter() - t:.0f} s", flush=True)
    qtexts, _ = _corpus.nfcorpus_queries("dev")
    questions = [qtexts[k] for k in sorted(qtexts)]
    warm, queries = questions[0], questions[1 : 1 + args.queries]

    proc, url = start_ui()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(url)
            box = page.frame_locator("iframe[title*=chaffee_viewer]").first.locator("form.sb input")
            box.wait_for(timeout=120_000)
            cold = timed_search(page, box, warm)
            times = [timed_search(page, box, q) for q in queries]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs · load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} · Chromium 1400×1000 · "
          f"embedder {embedder.model}")
    print(f"first search after start-up (cold): {cold:.0f} ms")
    print(f"Enter → first result visible, {len(times)} NFCorpus dev questions on {chunks:,} chunks: "
          f"p50 {statistics.median(times):.0f} ms · p95 {pct(times, 0.95):.0f} ms · max {max(times):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
