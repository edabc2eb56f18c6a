"""Window voice vectors → speaker turns: who speaks when, speakers numbered 0, 1, … per recording.

1. Agglomerative clustering of the windows' vectors (cosine, average linkage) cut at a
   distance: the number of speakers is not known in advance. The cut is measured by
   bench/speakers.py on recordings of 2–5 real speakers, with and without pauses.
2. Clusters too small to be a speaker (a cough, a laugh, a window straddling two voices) are
   folded into the nearest real one, then every window is moved to its nearest centroid once.
3. Each voiced 10 ms frame takes the speaker of the nearest window centre, so a change falls
   halfway between the last window of one voice and the first of the next (within half a hop
   when windows straddling the change are ambiguous), and a change across a pause falls in
   the pause. Runs of one speaker are the turns; a turn shorter than MIN_TURN_S is merged
   into its neighbour.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.speakers.voice import FRAME_S, Windows

CUT_DISTANCE = 0.40  # cosine distance at which clusters stop merging (bench/speakers.py)
MIN_CLUSTER_WINDOWS = 4  # fewer windows than this (≈ 2.4 s of speech at the default hop): not a speaker
MIN_TURN_S = 0.8
BRIDGE_S = 1.5  # one speaker's runs separated by a shorter pause are one turn


class Turn(NamedTuple):
    start: float
    end: float
    speaker: int  # 0, 1, … in order of first appearance


class Diarization(NamedTuple):
    turns: list[Turn]
    centroids: np.ndarray  # (speakers, 256) unit vectors, row i = speaker i

    @property
    def speakers(self) -> int:
        return len(self.centroids)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def cluster(vectors: np.ndarray, *, cut: float = CUT_DISTANCE, min_windows: int = MIN_CLUSTER_WINDOWS) -> np.ndarray:
    """A speaker label per window (0…k-1, not yet in time order)."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(vectors)
    if n < 2:
        return np.zeros(n, dtype=int)
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=cut, metric="cosine", linkage="average"
    ).fit_predict(vectors)
    sizes = np.bincount(labels)
    keep = np.flatnonzero(sizes >= min(min_windows, sizes.max()))
    centroids = _unit(np.stack([vectors[labels == k].mean(axis=0) for k in keep]))
    # Fold small clusters in and move each window to its nearest centroid (one k-means step).
    labels = np.argmax(vectors @ centroids.T, axis=1)
    present = np.unique(labels)
    centroids = _unit(np.stack([vectors[labels == k].mean(axis=0) for k in present]))
    return np.argmax(vectors @ centroids.T, axis=1)


def diarize(windows: Windows, *, cut: float = CUT_DISTANCE) -> Diarization:
    """Speaker turns over the voiced parts of one recording."""
    if len(windows.vectors) == 0:
        return Diarization([], np.zeros((0, 256), np.float32))
    labels = cluster(windows.vectors, cut=cut)
    centers = windows.centers
    frames = _voiced_frame_times(windows)
    if len(frames) == 0:
        return Diarization([], np.zeros((0, 256), np.float32))
    nearest = np.clip(np.searchsorted(centers, frames), 1, len(centers) - 1) if len(centers) > 1 else None
    if nearest is None:
        frame_labels = np.full(len(frames), labels[0])
    else:
        left, right = centers[nearest - 1], centers[nearest]
        pick = np.where(frames - left <= right - frames, nearest - 1, nearest)
        frame_labels = labels[pick]
    turns = _runs(frames, frame_labels)
    turns = _merge_short(turns)
    # Number speakers by first appearance; centroids follow the same numbering.
    order: dict[int, int] = {}
    for t in turns:
        order.setdefault(t.speaker, len(order))
    renamed = [Turn(t.start, t.end, order[t.speaker]) for t in turns]
    centroids = _unit(np.stack([windows.vectors[labels == old].mean(axis=0) for old in order]))
    return Diarization(_join(renamed), centroids.astype(np.float32))


def _voiced_frame_times(windows: Windows) -> np.ndarray:
    """Centre times of the voiced 10 ms frames."""
    parts = [np.arange(a, b, FRAME_S) + FRAME_S / 2 for a, b in windows.speech if b > a]
    return np.concatenate(parts) if parts else np.zeros(0)


def _runs(frames: np.ndarray, labels: np.ndarray) -> list[Turn]:
    turns: list[Turn] = []
    start = prev = float(frames[0])
    cur = int(labels[0])
    for t, lab in zip(frames[1:], labels[1:]):
        t = float(t)
        if int(lab) != cur or t - prev > BRIDGE_S:
            turns.append(Turn(start - FRAME_S / 2, prev + FRAME_S / 2, cur))
            start, cur = t, int(lab)
        prev = t
    turns.append(Turn(start - FRAME_S / 2, prev + FRAME_S / 2, cur))
    return turns


def _merge_short(turns: list[Turn]) -> list[Turn]:
    """A turn shorter than MIN_TURN_S takes the speaker of the longer adjacent turn."""
    out = list(turns)
    for i, t in enumerate(out):
        if t.end - t.start >= MIN_TURN_S or len(out) == 1:
            continue
        neighbours = [out[j] for j in (i - 1, i + 1) if 0 <= j < len(out)]
        best = max(neighbours, key=lambda n: n.end - n.start)
        out[i] = Turn(t.start, t.end, best.speaker)
    return out


def _join(turns: list[Turn]) -> list[Turn]:
    """Adjacent turns of one speaker (across a pause shorter than BRIDGE_S) as one."""
    out: list[Turn] = []
    for t in turns:
        if out and out[-1].speaker == t.speaker and t.start - out[-1].end <= BRIDGE_S:
            out[-1] = Turn(out[-1].start, t.end, t.speaker)
        else:
            out.append(t)
    return out
