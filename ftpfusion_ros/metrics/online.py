"""A cheap online flicker score for the fusion node's diagnostics (microseconds per frame).

Idea: the fused frame's mean luminance is (close to) a convex mixture of the sources' means, so from one
frame to the next its change cannot exceed the larger of the two sources' changes. Any excess,
``max(0, |dF| - max(|dIR|, |dVIS|))`` in grey levels, is brightness change the fusion made up: flicker.
A video model that stabilises a flickering source even scores 0; a frame-wise model whose global
brightness jumps while the scene is steady scores high.

Usage (node)::

    from ftpfusion_ros.metrics.online import FlickerMonitor, luma_mean
    mon = FlickerMonitor()
    score = mon.update(luma_mean(res.fused_bgr), luma_mean(res.aligned_ir), luma_mean(res.aligned_vis_bgr))

Means must be on the 8-bit grey scale (0..255); the node's aligned frames are 8-bit already.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..bt601 import KB as _KB, KG as _KG, KR as _KR


def luma_mean(image: np.ndarray) -> float:
    """Mean BT.601 luminance of a BGR (H,W,3|4) or mono (H,W) image (Y is linear: Y of the channel means)."""
    m = cv2.mean(np.ascontiguousarray(image))
    if image.ndim == 2 or image.shape[2] == 1:
        return float(m[0])
    return _KB * m[0] + _KG * m[1] + _KR * m[2]


def excess_change(fused: float, ir: float, vis: float, prev: tuple[float, float, float]) -> float:
    """max(0, |dF| - max(|dIR|, |dVIS|)) between two frames' mean luminances, grey levels."""
    dfu, dir_, dvi = fused - prev[0], ir - prev[1], vis - prev[2]
    return max(0.0, abs(dfu) - max(abs(dir_), abs(dvi)))


class FlickerMonitor:
    """Exponential moving average of the excess brightness change of the fused stream.

    ``update(fused_y_mean, ir_mean, vis_mean) -> score`` (grey levels per frame, >= 0, 0 = no flicker
    beyond what the sources do). ``halflife`` is in frames (default 15 frames = 0.5 s at 30 fps).
    Also tracks the EMA of |dF| itself (:attr:`fused_change`) and of the larger source change
    (:attr:`source_change`) for context.
    """

    def __init__(self, halflife: float = 15.0) -> None:
        if halflife <= 0:
            raise ValueError("halflife must be > 0 frames")
        self.decay = math.exp(-math.log(2.0) / halflife)
        self.reset()

    def reset(self) -> None:
        self._prev: tuple[float, float, float] | None = None
        self.score = 0.0
        self.fused_change = 0.0
        self.source_change = 0.0
        self.frames = 0

    def update(self, fused_y_mean: float, ir_mean: float, vis_mean: float) -> float:
        cur = (float(fused_y_mean), float(ir_mean), float(vis_mean))
        if not all(math.isfinite(v) for v in cur):
            raise ValueError(f"non-finite mean luminance {cur}")
        if self._prev is not None:
            k = self.decay if self.frames > 1 else 0.0  # the first difference initialises the averages
            self.score = k * self.score + (1 - k) * excess_change(*cur, self._prev)
            self.fused_change = k * self.fused_change + (1 - k) * abs(cur[0] - self._prev[0])
            self.source_change = k * self.source_change + (1 - k) * max(abs(cur[1] - self._prev[1]),
                                                                          abs(cur[2] - self._prev[2]))
        self._prev = cur
        self.frames += 1
        return self.score


def clip_flicker(f: Sequence[np.ndarray] | np.ndarray, a: Sequence[np.ndarray] | np.ndarray,
                 b: Sequence[np.ndarray] | np.ndarray) -> float:
    """Offline version for evaluation: mean over the clip of the excess change (grey levels / frame).

    Inputs are luminance clips (T,H,W) on 0..255 (or lists of frames); NaN for fewer than 2 frames.
    """
    means = [(float(np.mean(x)), float(np.mean(y)), float(np.mean(z))) for x, y, z in zip(f, a, b)]
    if len(means) < 2:
        return float("nan")
    return float(np.mean([excess_change(*means[t], means[t - 1]) for t in range(1, len(means))]))


def clip_flicker_ratio(f: Sequence[np.ndarray] | np.ndarray, a: Sequence[np.ndarray] | np.ndarray,
                       b: Sequence[np.ndarray] | np.ndarray) -> float:
    """Share of the sources' global brightness change that reaches the fused video (evaluation).

    ``sum_t |dF| / sum_t max(|dIR|, |dVIS|)`` over the clip's frame-mean luminances: about 1 when the
    fusion passes the larger source change through (a max-like fusion of a flickering camera), about 0.5
    for an average of one flickering and one steady camera, near 0 when the fusion holds its brightness
    while a camera flickers. Unlike :func:`clip_flicker` it ranks fusions that only mix their sources
    (every classical one scores ~0 excess). NaN for fewer than 2 frames or sources that never change.
    """
    means = np.array([(float(np.mean(x)), float(np.mean(y)), float(np.mean(z))) for x, y, z in zip(f, a, b)])
    if len(means) < 2:
        return float("nan")
    d = np.abs(np.diff(means, axis=0))
    source = float(np.maximum(d[:, 1], d[:, 2]).sum())
    return float(d[:, 0].sum() / source) if source > 0 else float("nan")
