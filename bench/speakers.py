"""Speaker turns and host identification on real speakers' voices, figures side by side.

    .venv-speakers/bin/python bench/speakers.py              # needs `make install-speakers`
    .venv-speakers/bin/python bench/speakers.py --cuts 0.3,0.4,0.5 --thresholds 0.7,0.75,0.8,0.85

Fixtures (tests/conversations.py): jfk and the FLEURS clips of ../shared/data/audio joined into
conversations of 2–5 distinct voices (the clips hold five; FLEURS clips of one voice are
treated as one speaker), each with pauses between turns and without any.

Per fixture, with the app's own functions (core.speakers.voice.embed_windows →
core.speakers.turns.diarize):
  * speakers found against the true number;
  * speaker-change precision and recall: a reference change (a new voice starts) is found when a
    hypothesis change lies within ±1 s; each hypothesis change matches one reference at most;
  * DER (pyannote.metrics, no collar, overlap scored; these fixtures have none) and its
    confusion part (speech given to the wrong speaker): DER also counts the short pauses
    inside a clip that the voice detector leaves out as "missed";
  * speed: audio seconds / wall seconds of embedding + clustering (× real time), encoder loaded.
Host identification: a profile enrolled from one part of a voice (the first half of jfk; one
FLEURS clip of a voice that has several) is matched against a conversation holding another part
of that voice among three other voices; a turn is right when it is called the host exactly
when it is the host's. Accuracy over all such turns, per match threshold.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import speakers  # noqa: E402

SHARED_AUDIO = Path(os.environ.get("CHAFFEE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "audio"
TOLERANCE_S = 1.0


def change_scores(ref: list[float], hyp: list[float], tol: float = TOLERANCE_S) -> tuple[int, int, int]:
    """(matched, reference count, hypothesis count), one-to-one matching within ±tol, greedy by distance."""
    pairs = sorted((abs(r - h), i, j) for i, r in enumerate(ref) for j, h in enumerate(hyp) if abs(r - h) <= tol)
    used_r: set[int] = set()
    used_h: set[int] = set()
    for _, i, j in pairs:
        if i not in used_r and j not in used_h:
            used_r.add(i)
            used_h.add(j)
    return len(used_r), len(ref), len(hyp)


def hyp_changes(turns) -> list[float]:
    return [b.start for a, b in zip(turns, turns[1:]) if a.speaker != b.speaker]


def der(conv, turns, collar: float = 0.0) -> tuple[float, float]:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for t in conv.turns:
        ref[Segment(t.start, t.end)] = t.voice
    for i, t in enumerate(turns):
        hyp[Segment(t.start, t.end), i] = f"s{t.speaker}"
    detail = DiarizationErrorRate(collar=collar)(ref, hyp, detailed=True)
    total = detail["total"] or 1.0
    return detail["diarization error rate"], detail["confusion"] / total


def host_trials(audio_dir: Path, dest: Path):
    """(host voice, enrolment audio, conversation) for each voice that has two parts."""
    import numpy as np

    from tests import conversations as cv

    def clip(name: str):
        v = cv.voice_of(name)
        return v, name, cv.load_clip(audio_dir, name, gain_db=cv.GAINS_DB[v])

    jfk = clip("jfk")[2]
    half = len(jfk) // 2
    trials = []
    # A: jfk, enrolled on its first half, heard again in its second half.
    others = [clip("fleurs-en-001"), clip("fleurs-en-000"), clip("fleurs-en-002")]
    trials.append(("A", jfk[:half], [others[0], ("A", "jfk (2nd half)", jfk[half:]), others[1], others[2]]))
    # C: enrolled on fleurs-en-001, heard in fleurs-en-005.
    trials.append(("C", clip("fleurs-en-001")[2],
                   [clip("jfk"), clip("fleurs-en-005"), clip("fleurs-en-006"), clip("fleurs-en-002")]))
    # D: enrolled on fleurs-en-002, heard in -003 and -004.
    trials.append(("D", clip("fleurs-en-002")[2],
                   [clip("fleurs-en-003"), clip("fleurs-en-000"), clip("fleurs-en-004"), clip("fleurs-en-001"),
                    clip("fleurs-en-006")]))
    out = []
    for voice, enrol, pieces in trials:
        conv = cv.join(dest, f"host {voice}", [(v, n, np.asarray(a)) for v, n, a in pieces], pauses=True)
        out.append((voice, enrol, conv))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", default="0.30,0.40,0.50", help="clustering cut distances to compare")
    parser.add_argument("--thresholds", default="0.70,0.75,0.80,0.85", help="profile match thresholds to compare")
    args = parser.parse_args(argv)
    if not speakers.available():
        print(f"needs the speakers extra ({speakers.INSTALL_HINT}); missing: {', '.join(speakers.missing())}")
        return 2
    if not (SHARED_AUDIO / "jfk.flac").exists():
        print(f"needs {SHARED_AUDIO}/jfk.flac and fleurs_en/*.ogg")
        return 2
    import torch

    from core.speakers import naming, turns, voice
    from tests import conversations as cv

    warnings.filterwarnings("ignore")  # pyannote.metrics warns about unlabelled UEMs on every call
    cuts = [float(c) for c in args.cuts.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    dest = Path(tempfile.mkdtemp(prefix="speakers-bench-"))
    convs = cv.build_all(SHARED_AUDIO, dest)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    t0 = time.perf_counter()
    voice.encoder()
    print(f"voice encoder {voice.ENCODER} on {'cuda' if torch.cuda.is_available() else 'cpu'}, loaded in "
          f"{time.perf_counter() - t0:.1f} s · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.1f} "
          f"before the run · window {voice.WINDOW_S} s, hop {voice.HOP_S} s")
    voice.embed_windows(voice.load_audio(convs[0].path))  # warm-up

    default_cut = turns.CUT_DISTANCE
    print(f"\nSpeaker turns (±{TOLERANCE_S:.0f} s change tolerance; * = the app's default cut {default_cut})")
    head = f"{'fixture':26s} {'audio':>6s} {'× rt':>5s} " + " ".join(
        f"| cut {c:.2f}{'*' if c == default_cut else ' '} spk  P    R    DER  conf" for c in cuts)
    print(head)
    totals = {c: [0, 0, 0, 0.0, 0.0, 0] for c in cuts}
    audio_s = wall_s = cpu_s = 0.0
    for conv in convs:
        wav = voice.load_audio(conv.path)
        t, c0 = time.perf_counter(), time.process_time()
        windows = voice.embed_windows(wav)
        embed_s = time.perf_counter() - t
        cpu_s += time.process_time() - c0
        cells = []
        cluster_s = 0.0
        for c in cuts:
            t = time.perf_counter()
            d = turns.diarize(windows, cut=c)
            if c == default_cut:
                cluster_s = time.perf_counter() - t
            m, nr, nh = change_scores(conv.changes, hyp_changes(d.turns))
            e, conf = der(conv, d.turns)
            tot = totals[c]
            tot[0] += m
            tot[1] += nr
            tot[2] += nh
            tot[3] += e * conv.duration_s
            tot[4] += conf * conv.duration_s
            tot[5] += int(d.speakers == len(conv.voices))
            cells.append(f"| {d.speakers:>2d}/{len(conv.voices)}      {m / max(nh, 1):4.2f} {m / max(nr, 1):4.2f} "
                         f"{e:5.1%} {conf:5.1%}")
        audio_s += conv.duration_s
        wall_s += embed_s + cluster_s
        print(f"{conv.name:26s} {conv.duration_s:5.1f}s {conv.duration_s / (embed_s + cluster_s):5.1f} " + " ".join(cells))
    cells = []
    for c in cuts:
        m, nr, nh, e, conf, right = totals[c]
        p, r = m / max(nh, 1), m / max(nr, 1)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        cells.append(f"| right {right}/{len(convs)} F1 {f1:4.2f} DER {e / audio_s:5.1%} conf {conf / audio_s:5.1%}")
    print(f"{'all (time-weighted DER)':26s} {audio_s:5.0f}s {audio_s / wall_s:5.1f} " + " ".join(cells))
    print(f"speed: {audio_s / wall_s:.1f}× real time wall clock, {audio_s / cpu_s:.1f}× per CPU-second of embedding "
          f"(the process's CPU time over {os.cpu_count()} cores; the wall figure moves with the machine's load)")

    print("\nHost identification (profile from one part of a voice; another part among 3–4 other voices)")
    trials = host_trials(SHARED_AUDIO, dest)
    counts = {th: [0, 0] for th in thresholds}
    for host, enrol, conv in trials:
        prof = voice.profile(enrol)
        d = turns.diarize(voice.embed_windows(voice.load_audio(conv.path)))
        sims = d.centroids @ prof.vector
        host_turns = [t for t in conv.turns if t.voice == host]
        # Which hypothesis speaker holds most of each reference turn.
        def who(ref_turn) -> int | None:
            overlap: dict[int, float] = {}
            for h in d.turns:
                o = min(ref_turn.end, h.end) - max(ref_turn.start, h.start)
                if o > 0:
                    overlap[h.speaker] = overlap.get(h.speaker, 0.0) + o
            return max(overlap, key=lambda k: overlap[k]) if overlap else None
        host_sims = sorted({round(float(sims[w]), 3) for t in host_turns if (w := who(t)) is not None})
        other_sims = sorted({round(float(sims[w]), 3) for t in conv.turns if t.voice != host and (w := who(t)) is not None})
        for th in thresholds:
            names = naming.name_speakers(d, [naming.NamedProfile("host", prof.vector)], threshold=th)
            for t in conv.turns:
                w = who(t)
                called_host = w is not None and names[w].name == "host"
                counts[th][0] += int(called_host == (t.voice == host))
                counts[th][1] += 1
        print(f"  voice {host}: profile {prof.seconds:.1f} s of speech · host's cluster similarity {host_sims} · "
              f"other voices' {other_sims}")
    print("  " + " · ".join(f"threshold {th:.2f}{'*' if th == naming.MATCH_THRESHOLD else ''}: "
                            f"{ok}/{n} turns right ({ok / max(n, 1):.0%})" for th, (ok, n) in counts.items()))
    gpu = "measured above (cuda)" if torch.cuda.is_available() else "not measured (no GPU on this machine)"
    print(f"\nGPU row: {gpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
