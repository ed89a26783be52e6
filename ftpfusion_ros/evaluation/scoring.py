"""Frame-by-frame scoring of one sequence for several fused videos at once.

The sources (IR, visible) are shared: their optical flows are computed once per frame and handed to
every fused video's temporal stream, spatial metrics run per frame, and only a three-frame window is
kept in memory, so whole sequences of any length can be scored.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..metrics import METRICS, SPATIAL_METRICS, TEMPORAL_METRICS, TemporalStream, bgr_to_y, spatial_metrics


def split_metrics(names: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(spatial, temporal) metric names, validated; None -> all metrics."""
    if names is None:
        return list(SPATIAL_METRICS), list(TEMPORAL_METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; available: {', '.join(METRICS)}")
    return [n for n in names if METRICS[n].kind == "spatial"], [n for n in names if METRICS[n].kind == "temporal"]


class SequenceScorer:
    """Accumulates spatial and temporal metrics of several fused videos of one sequence.

    ``add(ir, vis, fused)`` per time step: ``ir`` (H,W) 8-bit-scale IR, ``vis`` BGR (H,W,3) or luminance
    (H,W), ``fused`` {label: BGR or luminance}. ``results()`` -> {label: {metric: value}} with spatial
    metrics averaged over the scored frames (every ``spatial_stride``-th) and temporal metrics over the clip.
    """

    def __init__(self, labels: Sequence[str], metrics: Sequence[str] | None = None, flow="dis_medium",
                 conventions: Mapping[str, Mapping[str, Any]] | None = None, spatial_stride: int = 1,
                 slice_column: float = 0.5) -> None:
        if spatial_stride < 1:
            raise ValueError("spatial_stride must be >= 1")
        self.labels = list(labels)
        self.spatial, self.temporal = split_metrics(metrics)
        self.conventions = dict(conventions or {})
        self.spatial_stride = spatial_stride
        self.slice_column = slice_column
        self.streams = {lab: TemporalStream(self.temporal, flow, self.conventions) for lab in self.labels}
        self._spatial: dict[str, list[dict[str, float]]] = {lab: [] for lab in self.labels}
        self._prev_sources: tuple[np.ndarray, np.ndarray] | None = None
        self.slices: dict[str, list[np.ndarray]] = {lab: [] for lab in ["ir", "visible", *self.labels]}
        self.frames = 0

    def _column(self, width: int) -> int:
        c = self.slice_column
        col = int(round(c * (width - 1))) if isinstance(c, float) and 0.0 <= c <= 1.0 else int(c)
        return min(max(col, 0), width - 1)

    def add(self, ir: np.ndarray, vis: np.ndarray, fused: Mapping[str, np.ndarray]) -> None:
        missing = set(self.labels) - set(fused)
        if missing:
            raise ValueError(f"no fused frame for {sorted(missing)}")
        a = np.asarray(ir, dtype=np.float32)
        b = bgr_to_y(vis)
        if a.shape != b.shape:
            raise ValueError(f"IR {a.shape} and visible {b.shape} frames differ in size (metrics need "
                             "registered frames of one size)")
        col = self._column(a.shape[1])
        self.slices["ir"].append(np.clip(np.rint(a[:, col]), 0, 255).astype(np.uint8))
        self.slices["visible"].append(np.clip(np.rint(b[:, col]), 0, 255).astype(np.uint8))
        shared = None
        if self._prev_sources is not None and self.labels:
            first = self.streams[self.labels[0]]
            if first.needs_flow:
                shared = first.source_flows(*self._prev_sources, a, b)  # computed once for all videos
        score_spatial = self.spatial and self.frames % self.spatial_stride == 0
        cache: dict = {}  # source features shared by all fused videos of this frame
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        for lab in self.labels:
            f = bgr_to_y(fused[lab])
            if f.shape != a.shape:
                raise ValueError(f"{lab}: fused frame {f.shape} differs in size from the sources {a.shape}")
            self.slices[lab].append(np.clip(np.rint(f[:, col]), 0, 255).astype(np.uint8))
            if score_spatial:
                self._spatial[lab].append(spatial_metrics(f, a64, b64, self.spatial, self.conventions, cache))
            self.streams[lab].push(f, a, b, shared)
        self._prev_sources = (a, b)
        self.frames += 1

    def results(self) -> dict[str, dict[str, float]]:
        out = {}
        for lab in self.labels:
            vals: dict[str, float] = {}
            rows = self._spatial[lab]
            for n in self.spatial:
                arr = np.asarray([r[n] for r in rows], dtype=np.float64)
                vals[n] = float(np.nanmean(arr)) if arr.size and np.isfinite(arr).any() else float("nan")
            vals.update(self.streams[lab].result())
            out[lab] = vals
        return out

    def slice_images(self) -> dict[str, np.ndarray]:
        """{label: (H, T) uint8} temporal slices: the chosen image column stacked over time."""
        return {k: np.stack(v, axis=1) for k, v in self.slices.items() if v}
