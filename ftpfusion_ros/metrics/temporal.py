"""Temporal (per-clip) fusion metrics: BiSWE, MS2R, flowD, mmci_approx, tcpe_approx. Lower is better.

Inputs: ``f`` fused, ``a`` infrared, ``b`` visible luminance clips, (T,H,W) arrays (or lists of 2-D
frames) on the 8-bit grey scale 0..255.

Optical flow: every flow-based metric takes ``flow`` (an estimator name from :mod:`.flow`, default
OpenCV DIS "medium", or an estimator object) and optionally ``flows``, precomputed
:class:`~.flow.VideoFlows` keyed ``"fused"``, ``"ir"``, ``"vis"`` (the evaluation runner computes the
source flows once per clip and shares them between models). Values depend on the flow estimator: a run
records which one it used, and numbers are comparable only between runs with the same flow.

``mmci_approx`` and ``tcpe_approx`` implement FTPFusion's MMCI / TCPE (sec. 4.1.2, app. A.5) from the
paper's prose (its equations are lost in our copy): the structure follows the text, the constants are
our choices (documented per function and in docs/metrics.md); they are not the paper's numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import cv2
import numpy as np

from .common import box_mean, check_clips
from .flow import DEFAULT_FLOW, FlowEstimator, VideoFlows, consistency_mask, get_flow, warp
from .online import excess_change

Flows = Mapping[str, VideoFlows]


@dataclass
class PairFlows:
    """Flows between frames t-1 and t of one video: ``fwd = flow(t-1 -> t)``, ``bwd = flow(t -> t-1)``."""

    fwd: np.ndarray
    bwd: np.ndarray | None = None
    _masks: dict = field(default_factory=dict, repr=False, compare=False)

    def reliable(self, direction: str, threshold: float = 1.0) -> np.ndarray:
        """Forward-backward consistency mask of ``fwd`` ("fwd") or ``bwd`` ("bwd"), memoised: source
        flows are shared by every fused video scored against them."""
        key = (direction, threshold)
        if key not in self._masks:
            o, back = (self.fwd, self.bwd) if direction == "fwd" else (self.bwd, self.fwd)
            self._masks[key] = consistency_mask(o, back, threshold)
        return self._masks[key]


def pair_flows(prev: np.ndarray, cur: np.ndarray, estimator: FlowEstimator, backward: bool = True) -> PairFlows:
    return PairFlows(estimator(prev, cur), estimator(cur, prev) if backward else None)


def _estimator(flow: str | FlowEstimator) -> FlowEstimator:
    return get_flow(flow) if isinstance(flow, str) else flow


def flow_label(flow: str | FlowEstimator = DEFAULT_FLOW) -> str:
    """The label recorded with results computed with `flow`."""
    return _estimator(flow).label


# Streaming accumulators: every temporal metric is computed frame by frame with at most three frames
# (and two frame pairs' flows) in memory, so whole sequences and several models can be scored in one
# pass; the clip functions below feed a clip through the same accumulators (one implementation).
Frames = tuple[np.ndarray, np.ndarray, np.ndarray]  # (fused, ir, visible) of one time step


class _Accumulator:
    needs_flow = False
    needs_backward = False

    def update(self, cur: Frames, prev: Frames | None, flows: Mapping[str, PairFlows] | None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError


def _nanmean(vals: list[float]) -> float:
    arr = np.asarray(vals, dtype=np.float64)
    return float(np.nanmean(arr)) if arr.size and np.isfinite(arr).any() else float("nan")


class _BiSWE(_Accumulator):
    needs_flow = True
    needs_backward = True

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self._last: tuple[np.ndarray, Mapping[str, PairFlows]] | None = None  # (F_t-2, flows(t-2, t-1))
        self.values: list[float] = []

    def _direction(self, centre: np.ndarray, other: np.ndarray, o_f: np.ndarray,
                   src: list[tuple[PairFlows, str]]) -> float:
        mask = None
        for pf, direction in src:
            m = pf.reliable(direction, self.threshold)
            mask = m if mask is None else mask & m
        n = int(mask.sum())
        if n == 0:  # no reliable pixel: this direction carries no information
            return float("nan")
        return float(np.abs(centre - warp(other, o_f))[mask].sum()) / n

    def update(self, cur, prev, flows):
        if prev is None:
            return
        if self._last is not None:
            f_before, fl_before = self._last  # frame t-2 and the flows between t-2 and t-1
            centre = prev[0]
            e_back = self._direction(centre, f_before, fl_before["fused"].bwd,
                                     [(fl_before[k], "bwd") for k in ("ir", "vis")])
            e_fwd = self._direction(centre, cur[0], flows["fused"].fwd, [(flows[k], "fwd") for k in ("ir", "vis")])
            self.values.append(e_back + e_fwd)
        self._last = (prev[0], flows)

    def result(self) -> float:
        return _nanmean(self.values)


class _MS2R(_Accumulator):
    needs_flow = True

    def __init__(self) -> None:
        self._last: Mapping[str, PairFlows] | None = None
        self.values: dict[str, list[float]] = {"ir": [], "vis": []}

    def update(self, cur, prev, flows):
        if prev is None:
            return
        if self._last is not None:
            dfused = flows["fused"].fwd - self._last["fused"].fwd
            for k in ("ir", "vis"):
                d = (dfused - (flows[k].fwd - self._last[k].fwd)).astype(np.float64)
                self.values[k].append(float(np.sqrt((d * d).sum(axis=-1)).mean()))
        self._last = flows

    def result(self) -> float:
        if not self.values["ir"]:
            return float("nan")
        return float(np.mean([np.mean(self.values["ir"]), np.mean(self.values["vis"])]))


class _FlowD(_Accumulator):
    needs_flow = True
    needs_backward = True

    def __init__(self) -> None:
        self.values: list[float] = []

    def update(self, cur, prev, flows):
        if prev is not None:
            self.values.append(float(np.abs(cur[0] - warp(prev[0], flows["vis"].bwd)).mean()))

    def result(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")


# ---------------------------------------------------------------------------------------------- BiSWE
def biswe(f, a, b, flows: Flows | None = None, flow: str | FlowEstimator = DEFAULT_FLOW,
          threshold: float = 1.0) -> float:
    """BiSWE (VF-Bench): bidirectional self-warping error of the fused video, grey levels.

    For each frame t with both neighbours (t = 1..T-2) and s in {t-1, t+1}: warp F_s onto F_t with the
    flow of the fused video, keep pixels where the forward-backward flow check of BOTH source videos
    passes (|O + warp(O_back, O)| < ``threshold`` px), E(s) = masked mean |F_t - warped F_s|;
    BiSWE = mean over t of E(t-1) + E(t+1). NaN for clips shorter than 3 frames.
    """
    return _run_clip("biswe", f, a, b, flows, flow, threshold=threshold)


# ----------------------------------------------------------------------------------------------- MS2R
def ms2r(f, a, b, flows: Flows | None = None, flow: str | FlowEstimator = DEFAULT_FLOW) -> float:
    """MS2R (VF-Bench, as its code computes it): motion-change residual of fused vs sources, pixels.

    D_k(t) = [flow(F_t -> F_t+1) - flow(F_t-1 -> F_t)] - [flow(S_t -> S_t+1) - flow(S_t-1 -> S_t)] for
    each source S_k; |D| is the per-pixel Euclidean norm of the 2-vector, averaged over pixels and over
    t = 1..T-2; MS2R = mean(|D_IR|, |D_VIS|). NaN for clips shorter than 3 frames.
    """
    return _run_clip("ms2r", f, a, b, flows, flow)


# ---------------------------------------------------------------------------------------------- flowD
def flowd(f, a, b, flows: Flows | None = None, flow: str | FlowEstimator = DEFAULT_FLOW) -> float:
    """flowD (TemCoCo-style): F_t-1 warped by the visible video's motion vs F_t, grey levels.

    F_t-1 is brought onto frame t's grid by backward warping with flow(V_t -> V_t-1); the per-pixel L2
    difference (over channels; |.| on luminance) to F_t is averaged over pixels and t = 1..T-1.
    NaN for clips shorter than 2 frames.
    """
    return _run_clip("flowd", f, a, b, flows, flow)


# ----------------------------------------------------------------------------------------------- MMCI
def _smooth(frame: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(frame.astype(np.float64), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def mixing_coefficient(f: np.ndarray, a: np.ndarray, b: np.ndarray, window: int = 7,
                       contrast: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Local mixing coefficient alpha (F ~ alpha A + (1 - alpha) B in a window) and its reliability.

    alpha = clip(sum((F-B)(A-B)) / sum((A-B)^2), 0, 1) over ``window`` x ``window`` (least squares);
    reliability w = m / (m + contrast^2) with m the local mean of (A-B)^2: where the sources agree the
    mixture is not identifiable and w -> 0.
    """
    dab = a - b
    m = box_mean(dab * dab, window)
    num = box_mean((f - b) * dab, window)
    alpha = np.clip(num / (m + 1e-6), 0.0, 1.0)
    return alpha, m / (m + contrast * contrast)


class _MMCI(_Accumulator):
    def __init__(self, window: int = 7, sigma: float = 1.0, beta: float = 1.0, kappa: float = 10.0,
                 contrast: float = 4.0) -> None:
        self.window, self.sigma, self.beta, self.kappa, self.contrast = window, sigma, beta, kappa, contrast
        self._last = None
        self.cont: list[float] = []
        self.resid: list[float] = []

    def update(self, cur, prev, flows):
        fs, as_, bs = (_smooth(x, self.sigma) for x in cur)
        alpha, w = mixing_coefficient(fs, as_, bs, self.window, self.contrast)
        if self._last is not None:
            pf, pa, pb, palpha, pw = self._last
            wt = np.minimum(w, pw)
            sw = float(wt.sum())
            self.cont.append(float((wt * np.abs(alpha - palpha)).sum()) / sw if sw > 1e-9 else 0.0)
            am = 0.5 * (alpha + palpha)
            r = (fs - pf) - (am * (as_ - pa) + (1.0 - am) * (bs - pb))
            self.resid.append(float(np.abs(r).mean()))
        self._last = (fs, as_, bs, alpha, w)

    def result(self) -> float:
        if not self.cont:
            return float("nan")
        r_term = float(np.mean([1.0 - math.exp(-r / self.kappa) for r in self.resid]))
        return float(np.mean(self.cont)) + self.beta * r_term


def mmci_approx(f, a, b, window: int = 7, sigma: float = 1.0, beta: float = 1.0, kappa: float = 10.0,
                contrast: float = 4.0) -> float:
    """Modal Mixing Continuity Index, approximated from FTPFusion's prose; unitless, >= 0, 0 is best.

    On Gaussian-smoothed frames (``sigma`` px): alpha_t = local mixing coefficient
    (:func:`mixing_coefficient`, ``window`` px); continuity C_t = reliability-weighted mean of
    |alpha_t - alpha_t-1|; dynamic residual R_t = mean |dF_t - (a dA_t + (1 - a) dB_t)| (grey levels),
    a = (alpha_t + alpha_t-1) / 2 and d the frame difference: the part of the fused change that the
    sources' changes do not explain (flicker, drift). MMCI = mean C + ``beta`` * mean(1 - exp(-R / ``kappa``)).
    NaN for clips shorter than 2 frames.
    """
    return _run_clip("mmci_approx", f, a, b, None, DEFAULT_FLOW, window=window, sigma=sigma, beta=beta,
                     kappa=kappa, contrast=contrast)


# ----------------------------------------------------------------------------------------------- TCPE
def _patch_view(x: np.ndarray, patch: int) -> np.ndarray:
    h, w = x.shape
    hp, wp = h // patch, w // patch
    return x[: hp * patch, : wp * patch].reshape(hp, patch, wp, patch)


def _contrast(frame: np.ndarray, patch: int) -> np.ndarray:
    """(P,) local contrast (block standard deviation) of one frame."""
    return _patch_view(frame.astype(np.float64), patch).std(axis=(1, 3)).ravel()


def _gradient(frame: np.ndarray, patch: int) -> np.ndarray:
    """(P,) block mean of the 3x3 Sobel gradient magnitude / 8 of one frame."""
    fr = frame.astype(np.float32)
    gx = cv2.Sobel(fr, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(fr, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    mag = np.sqrt(gx * gx + gy * gy).astype(np.float64) / 8.0
    return _patch_view(mag, patch).mean(axis=(1, 3)).ravel()


def _temporal_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-column Pearson correlation over time of (W, P) trajectories; 0 where y is constant."""
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    den = np.sqrt((xc * xc).sum(axis=0) * (yc * yc).sum(axis=0))
    return np.where(den > 1e-12, (xc * yc).sum(axis=0) / np.maximum(den, 1e-12), 0.0)


class _TCPE(_Accumulator):
    def __init__(self, window: int = 8, stride: int | None = None, patch: int = 16) -> None:
        self.window, self.stride, self.patch = window, stride, patch
        self.desc: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, cur, prev, flows):
        f, a, b = cur
        if min(f.shape) < self.patch:
            return
        self.desc.append((_contrast(a, self.patch), _contrast(f, self.patch),
                          _gradient(b, self.patch), _gradient(f, self.patch)))

    def result(self) -> float:
        t_len = len(self.desc)
        if t_len < 3:
            return float("nan")
        ca, cf, gb, gf = (np.stack(x) for x in zip(*self.desc))
        window = min(self.window, t_len)
        stride = self.stride or max(1, window // 2)
        errors = []
        for s in range(0, t_len - window + 1, stride):
            sl = slice(s, s + window)
            s_a = ca[sl].std(axis=0) / (ca[sl].mean(axis=0) + 1.0)
            s_b = gb[sl].std(axis=0) / (gb[sl].mean(axis=0) + 1.0)
            d_a = (1.0 - _temporal_corr(ca[sl], cf[sl])) / 2.0
            d_b = (1.0 - _temporal_corr(gb[sl], gf[sl])) / 2.0
            weight = s_a + s_b
            sw = float(weight.sum())
            if sw <= 1e-12:
                continue  # nothing changes in this window: no trend to preserve
            omega = s_a / np.maximum(weight, 1e-12)
            errors.append(float((weight * (omega * d_a + (1.0 - omega) * d_b)).sum()) / sw)
        return float(np.mean(errors)) if errors else float("nan")


def tcpe_approx(f, a, b, window: int = 8, stride: int | None = None, patch: int = 16) -> float:
    """Temporal Correlation Preservation Error, approximated from FTPFusion's prose; 0..1, 0 is best.

    Per ``patch`` x ``patch`` block and frame: IR and fused local contrast (block std), visible and fused
    gradient (block mean Sobel magnitude). In each temporal window of ``window`` frames (``stride``
    window // 2; one window when the clip is shorter): Pearson correlation over time of the IR/fused
    contrast trajectories (rho_A) and of the visible/fused gradient trajectories (rho_B); distortions
    d = (1 - rho) / 2; adaptive weight omega = s_A / (s_A + s_B) with s the relative temporal variation
    (std / (mean + 1)) of each source trajectory; block error omega d_A + (1 - omega) d_B, averaged with
    weights s_A + s_B (blocks whose sources do not change carry no trend). TCPE = mean over windows.
    NaN for clips shorter than 3 frames or smaller than one block.
    """
    return _run_clip("tcpe_approx", f, a, b, None, DEFAULT_FLOW, window=window, stride=stride, patch=patch)


# ------------------------------------------------------------------------------------------- flicker
class _Flicker(_Accumulator):
    def __init__(self) -> None:
        self.values: list[float] = []
        self._last: tuple[float, float, float] | None = None

    def update(self, cur, prev, flows):
        means = tuple(float(x.mean(dtype=np.float64)) for x in cur)
        if self._last is not None:
            self.values.append(excess_change(*means, self._last))
        self._last = means

    def result(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")


class _FlickerRatio(_Accumulator):
    def __init__(self) -> None:
        self.fused = self.source = 0.0
        self._last: tuple[float, float, float] | None = None

    def update(self, cur, prev, flows):
        means = tuple(float(x.mean(dtype=np.float64)) for x in cur)
        if self._last is not None:
            d = [abs(m - p) for m, p in zip(means, self._last)]
            self.fused += d[0]
            self.source += max(d[1], d[2])
        self._last = means

    def result(self) -> float:
        return self.fused / self.source if self.source > 0 else float("nan")


# ------------------------------------------------------------------------------------------- streams
_ACCUMULATORS: dict[str, Callable[..., _Accumulator]] = {
    "biswe": _BiSWE, "ms2r": _MS2R, "flowd": _FlowD, "mmci_approx": _MMCI, "tcpe_approx": _TCPE,
    "flicker": _Flicker, "flicker_ratio": _FlickerRatio,
}
STREAM_METRICS = tuple(_ACCUMULATORS)


class TemporalStream:
    """Scores one fused video (with its sources) frame by frame for the chosen temporal metrics.

    ``push(f, a, b, flows=None)`` takes one time step's luminance frames; ``flows`` may carry the
    :class:`PairFlows` between the previous and this frame for ``"ir"``, ``"vis"`` and/or ``"fused"``
    (the runner computes the source flows once per frame and shares them between models); missing
    ones are computed with the stream's estimator. ``result()`` -> {metric: value}.
    """

    def __init__(self, names=None, flow: str | FlowEstimator = DEFAULT_FLOW,
                 conventions: Mapping[str, Mapping] | None = None) -> None:
        names = STREAM_METRICS if names is None else tuple(names)
        unknown = [n for n in names if n not in _ACCUMULATORS]
        if unknown:
            raise ValueError(f"unknown temporal metrics {unknown}; known: {', '.join(STREAM_METRICS)}")
        self.accs = {n: _ACCUMULATORS[n](**dict((conventions or {}).get(n, {}))) for n in names}
        self.needs_flow = any(acc.needs_flow for acc in self.accs.values())
        self.needs_backward = any(acc.needs_backward for acc in self.accs.values())
        self.estimator = _estimator(flow) if self.needs_flow else None
        self._prev: Frames | None = None
        self.frames = 0

    def source_flows(self, prev_a: np.ndarray, prev_b: np.ndarray, a: np.ndarray, b: np.ndarray
                     ) -> dict[str, PairFlows]:
        """The source flows this stream needs between two time steps (to share between streams)."""
        if not self.needs_flow:
            return {}
        return {"ir": pair_flows(prev_a, a, self.estimator, self.needs_backward),
                "vis": pair_flows(prev_b, b, self.estimator, self.needs_backward)}

    def push(self, f: np.ndarray, a: np.ndarray, b: np.ndarray,
             flows: Mapping[str, PairFlows] | None = None) -> None:
        cur = (np.asarray(f, dtype=np.float32), np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32))
        if not (cur[0].ndim == 2 and cur[0].shape == cur[1].shape == cur[2].shape):
            raise ValueError(f"fused {cur[0].shape}, ir {cur[1].shape} and visible {cur[2].shape} must be "
                             "2-D frames of one size")
        if self._prev is not None and cur[0].shape != self._prev[0].shape:
            raise ValueError(f"frame size changed within a clip: {self._prev[0].shape} -> {cur[0].shape}")
        step_flows = None
        if self._prev is not None and self.needs_flow:
            step_flows = dict(flows or {})
            for key, i in (("fused", 0), ("ir", 1), ("vis", 2)):
                pf = step_flows.get(key)
                if pf is None or (self.needs_backward and pf.bwd is None):
                    step_flows[key] = pair_flows(self._prev[i], cur[i], self.estimator, self.needs_backward)
        for acc in self.accs.values():
            acc.update(cur, self._prev, step_flows)
        self._prev = cur
        self.frames += 1

    def result(self) -> dict[str, float]:
        return {n: acc.result() for n, acc in self.accs.items()}


def score_clip(f, a, b, names=None, flows: Flows | None = None, flow: str | FlowEstimator = DEFAULT_FLOW,
               conventions: Mapping[str, Mapping] | None = None) -> dict[str, float]:
    """Temporal metrics `names` (default all) of one clip through one :class:`TemporalStream`.

    ``flows``: optional precomputed :class:`~.flow.VideoFlows` keyed "fused" / "ir" / "vis".
    """
    f, a, b = check_clips(f, a, b)
    stream = TemporalStream(names, flow, conventions)
    for key, vf in (flows or {}).items():
        if len(vf) != f.shape[0] - 1:
            raise ValueError(f"precomputed {key!r} flows cover {len(vf)} frame pairs, the clip has {f.shape[0] - 1}")
    for t in range(f.shape[0]):
        step = None
        if flows and t > 0:
            step = {key: PairFlows(vf.fwd[t - 1], vf.bwd[t - 1] if vf.bwd else None) for key, vf in flows.items()}
        stream.push(f[t], a[t], b[t], step)
    return stream.result()


def _run_clip(name: str, f, a, b, flows: Flows | None, flow, **kwargs) -> float:
    return score_clip(f, a, b, [name], flows, flow, {name: kwargs})[name]
