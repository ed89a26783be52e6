"""IR -> visible registration estimated from the cameras' own frames (`ftpfusion calibrate`).

Two routes, one result (:class:`Registration`, a 3x3 IR pixel -> visible pixel homography):

* **Ordinary scenes** (:func:`estimate_from_scenes`). Thermal and visible intensities are unrelated and
  often inverted (a person is bright in IR, dark in visible), but both cameras see the same *edges*.
  Each frame is turned into a normalised gradient-magnitude image, which is blind to the sign of the
  contrast, and the frames' edge maps are averaged per camera: for a fixed mapping, warping commutes
  with averaging, so every frame votes at the cost of one alignment, and moving objects blur out.

  1. coarse search at ~160 px width: a grid over scale and rotation, the shift of each candidate found by
     masked normalised cross-correlation (cv2.matchTemplate);
  2. coarse-to-fine refinement of the best few candidates as a similarity (rotation, isotropic scale,
     shift: ECC's MOTION_EUCLIDEAN inside a bounded scalar search over the scale), at image scales
     matched between the cameras; among about equally good ones the alignment that frame subsets find
     again wins, and two different stable ones are refused as ambiguous;
  3. the model's further freedom (affine: shear and unequal scales; homography: perspective) is fitted
     with cv2.findTransformECC and kept only when it clearly improves the edge correlation: edges
     constrain those terms poorly, and on real pairs they absorb parallax and lens differences;
  4. consistency: the refinement is repeated on disjoint subsets of the frames; their spread at the IR
     image corners is the reported residual, and a mapping whose subsets disagree is refused (the next
     simpler model is tried first).

  Measured on real 640x480 M3SVD clips with IR warped by known similarities (scale 0.8-1.25, +-5 deg,
  +-40 px, IR also at 320x256 and 640x512): mean corner error 0.5-1.5 px (docs/calibration.md).

* **Heated calibration target** (:func:`estimate_from_target`): chessboard corners or circle centres
  found in both modalities (IR inverted when the target is warm on a cold background), matched point by
  point over all frames and fitted with cv2.findHomography (RANSAC) or cv2.estimateAffine2D.

Degenerate input (no texture, one modality blank, nothing found, non-convergence, frames that disagree,
a mapping that would not overlap the visible image) raises :class:`CalibrationError` with a one-line
reason: a wrong matrix must never be written silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

MODELS = ("homography", "affine")
TARGET_KINDS = ("checkerboard", "circles")

#: width of the coarse-search level in pixels (enough structure to match, cheap to search exhaustively)
COARSE_WIDTH = 160
#: widest pyramid level refined by ECC; larger visible images are refined at this width and the result
#: scaled up (sub-pixel at this width is a few pixels at 4K, within what fusion tolerates)
FINE_MAX_WIDTH = 1280
#: narrowest finest level (visible pixels): precision floor for low-resolution IR cameras
MIN_FINE_WIDTH = 320
#: relative scale range searched around the "same field of view" guess (IR resized to the visible size)
SCALE_RANGE = (0.7, 1.45)
#: rotation range searched, degrees
ROTATION_RANGE = 7.0
#: shift range searched, as a fraction of the visible width
SHIFT_RANGE = 0.14
#: a frame whose normalised edge density is below this in either modality carries no usable structure
MIN_TEXTURE = 0.02
#: fewest usable frames (after texture checks and after consensus) for a multi-frame estimate
MIN_FRAMES = 3
#: best coarse cross-correlation below this means the two streams do not show the same scene
MIN_COARSE_SCORE = 0.12
#: kept frames must agree within this RMS corner spread, as a fraction of the visible diagonal
MAX_SPREAD = 0.006
#: below this edge correlation the subsets must agree within WEAK_MAX_SPREAD (fraction of the diagonal)
WEAK_SCORE = 0.35
WEAK_MAX_SPREAD = 0.002
#: the aligned edge maps must correlate at least this much at full resolution (ECC's coefficient)
MIN_FINE_SCORE = 0.2
#: disjoint frame subsets refined separately for the consistency check
GROUPS = 4
#: keep a model's further degrees of freedom (affine over similarity, perspective over affine) when they
#: remove this fraction of the remaining misfit (1 - edge correlation); below it they mostly fit
#: parallax, lens differences and chance, not the cameras' geometry
EXTRA_DOF_GAIN = 0.03
#: candidates of the coarse search refined to full resolution
COARSE_CANDIDATES = 6
#: refined coarse candidates whose edge correlation is within this of the best are told apart by their
#: stability over frame subsets rather than by the correlation
CANDIDATE_TOLERANCE = 0.02
#: ECC iterations per pyramid level
ECC_ITERATIONS = 60
#: edge-map smoothing (pixels of the level it is computed at) and robust-scale percentile
EDGE_SIGMA = 1.0
EDGE_PERCENTILE = 75


class CalibrationError(ValueError):
    """The inputs cannot give a trustworthy registration (message: one line, says why)."""


@dataclass
class Registration:
    """An estimated IR -> visible mapping and how it was obtained."""

    homography: np.ndarray          # 3x3, IR pixel -> visible pixel, normalised so that h[2, 2] == 1
    model: str                      # homography | affine
    ir_size: tuple[int, int]        # (W, H) of the IR frames it was estimated on
    vis_size: tuple[int, int]       # (W, H) of the visible frames
    residual_px: float              # RMS distance of the kept frames' corner estimates from the result
    score: float                    # mean ECC correlation of the edge maps (scenes) / -1 (target)
    frames_used: list[str] = field(default_factory=list)
    frames_considered: int = 0
    method: str = ""

    def to_dict(self) -> dict:
        """Plain YAML-able mapping (see runtime.registration.load_registration for the reader)."""
        return {
            "homography": [[float(v) for v in row] for row in self.homography],
            "model": self.model,
            "direction": "IR pixel -> visible pixel",
            "ir_size": [int(v) for v in self.ir_size],
            "vis_size": [int(v) for v in self.vis_size],
            "residual_px": round(float(self.residual_px), 4),
            "score": round(float(self.score), 4),
            "frames_used": len(self.frames_used),
            "frames_considered": int(self.frames_considered),
            "frames": list(self.frames_used),
            "method": self.method,
        }


# ------------------------------------------------------------------------------------------ helpers
def to_grey_float(img: np.ndarray) -> np.ndarray:
    """Grey float32 in [0, 1] from an 8/16-bit mono or BGR image.

    16-bit thermal counts are stretched between robust percentiles: only edges matter here, and a raw
    14-bit range would leave them far below the 8-bit visible edges.
    """
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        else:
            img = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if img.dtype == np.uint8:
        return img.astype(np.float32) * (1.0 / 255.0)
    f = img.astype(np.float32)
    lo, hi = np.percentile(f, (0.5, 99.5))
    if hi <= lo:
        return np.zeros_like(f)
    return np.clip((f - lo) / (hi - lo), 0.0, 1.0)


def valid_mask(ir_frames: Sequence[np.ndarray], margin: int = 3) -> np.ndarray:
    """uint8 mask (255 = image content) of the IR frames, excluding constant fill at the borders.

    IR frames that were warped or letterboxed have a constant fill (usually black) around the image;
    its boundary is a strong edge with no visible counterpart and would pull the alignment. A pixel is
    fill when it has the same value in every frame as the border fill and connects to the image border.
    """
    stack = np.stack(ir_frames)
    const = np.all(stack == stack[:1], axis=0)
    h, w = const.shape
    mask = np.full((h, w), 255, np.uint8)
    first = stack[0]
    border_values = np.unique(np.concatenate([first[0], first[-1], first[:, 0], first[:, -1]]))
    for v in border_values[:4]:  # fill is one value (or a few); more means a real image border
        cand = (const & (first == v)).astype(np.uint8)
        n, labels = cv2.connectedComponents(cand, connectivity=4)
        touching = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
        for lab in touching:
            mask[labels == lab] = 0
    if margin > 0 and mask.min() == 0:
        mask = cv2.erode(mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return mask


def edge_map(grey: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Contrast-sign-invariant, contrast-normalised edge strength in [0, 1).

    The gradient magnitude ignores the sign of an edge (thermal/visible inversions); dividing by a
    robust scale and saturating (m / (m + k)) keeps a hot person's IR outline from dwarfing the
    weaker edges that the visible image shares with it.
    """
    g = cv2.GaussianBlur(grey, (0, 0), EDGE_SIGMA)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    vals = mag[mask > 0] if mask is not None else mag.ravel()
    k = float(np.percentile(vals, EDGE_PERCENTILE)) if vals.size else 0.0
    k = max(k, 1e-3)
    return mag / (mag + k)


def texture(grey: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of pixels on a clear edge (gradient above 2 % of full range per pixel)."""
    g = cv2.GaussianBlur(grey, (0, 0), 1.0)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    edges = mag > 0.08  # Sobel 3x3 gain is 4 (x2 for the smoothing): ~2 % grey step per pixel
    if mask is not None:
        m = mask > 0
        return float(edges[m].mean()) if m.any() else 0.0
    return float(edges.mean())


def _scale_h(h: np.ndarray, a_vis: float, a_ir: float) -> np.ndarray:
    """The IR->visible homography between images resized by a_ir (IR) and a_vis (visible)."""
    return np.diag([a_vis, a_vis, 1.0]) @ h @ np.diag([1.0 / a_ir, 1.0 / a_ir, 1.0])


def _normalise(h: np.ndarray) -> np.ndarray:
    return h / h[2, 2]


def corners(size_wh: tuple[int, int]) -> np.ndarray:
    w, h = size_wh
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)


def map_points(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:3]


def _fit(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray:
    """Least-squares mapping src -> dst of the given model (all points trusted)."""
    if model == "affine":
        a, _ = cv2.estimateAffine2D(src.astype(np.float32), dst.astype(np.float32), method=0)
        if a is None:
            raise CalibrationError("could not fit an affine mapping to the consensus corners")
        return np.vstack([a, [0.0, 0.0, 1.0]])
    h, _ = cv2.findHomography(src.astype(np.float32), dst.astype(np.float32), 0)
    if h is None:
        raise CalibrationError("could not fit a homography to the consensus corners")
    return _normalise(h)


def _sane(h: np.ndarray, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> str | None:
    """Why a mapping cannot be a camera registration (None when it can)."""
    if not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
        return "the estimated mapping is singular"
    c = map_points(h, corners(ir_size))
    # the IR corners must keep their order (no fold-over) and stay in front of the camera (w > 0)
    w = np.c_[corners(ir_size), np.ones(4)] @ h[2]
    if np.any(w <= 0):
        return "the estimated mapping folds the IR image over (points behind the camera)"
    def cross(u: np.ndarray, v: np.ndarray) -> float:
        return float(u[0] * v[1] - u[1] * v[0])

    signs = [cross(c[(i + 1) % 4] - c[i], c[(i + 2) % 4] - c[(i + 1) % 4]) for i in range(4)]
    if not (all(s > 0 for s in signs) or all(s < 0 for s in signs)):
        return "the estimated mapping folds the IR image over"
    vw, vh = vis_size
    quad = c.astype(np.float32)
    area_ir = cv2.contourArea(quad)
    box = corners(vis_size).astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(quad, box)
    if inter < 0.1 * min(area_ir, vw * vh):
        return "the estimated mapping barely overlaps the visible image"
    return None


# ----------------------------------------------------------------------------------- scene route
@dataclass
class _Level:
    a_vis: float
    a_ir: float
    vis: list[np.ndarray]    # edge maps, one per frame
    ir: list[np.ndarray]
    ir_mask: np.ndarray      # uint8
    vis_mean: np.ndarray = None  # mean edge map over frames
    ir_mean: np.ndarray = None


def _resize(img: np.ndarray, a: float) -> np.ndarray:
    if abs(a - 1.0) < 1e-9:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * a)), max(1, round(h * a)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if a < 1 else cv2.INTER_CUBIC)


def _pyramid(ir_grey: list[np.ndarray], vis_grey: list[np.ndarray], mask: np.ndarray, s0: float) -> list[_Level]:
    """Levels from ~COARSE_WIDTH to the visible width (capped), IR resized to the same pixel scale."""
    vw = vis_grey[0].shape[1]
    # no finer than the IR camera resolves: finer visible edges would have no IR counterpart
    # but never below MIN_FINE_WIDTH: a low-resolution IR camera is upsampled rather than the alignment
    # done at its few pixels
    top = min(1.0, FINE_MAX_WIDTH / vw, max(1.0 / s0, MIN_FINE_WIDTH / vw))
    scales = [top]
    # at least two levels (the coarse search, then refinement) when the images allow it
    while vw * scales[-1] / 2 >= COARSE_WIDTH * 0.99 or (len(scales) < 2 and vw * scales[-1] / 2 >= 64):
        scales.append(scales[-1] / 2)
    levels = []
    for a_vis in reversed(scales):
        a_ir = a_vis * s0  # the IR map at the visible level's pixel scale: edge widths then match
        m = _resize(mask, a_ir)
        m = np.where(m >= 255, 255, 0).astype(np.uint8)
        lev = _Level(a_vis, a_ir, [edge_map(_resize(v, a_vis)) for v in vis_grey],
                     [edge_map(_resize(i, a_ir), m) for i in ir_grey], m)
        lev.vis_mean = np.mean(lev.vis, axis=0).astype(np.float32)
        lev.ir_mean = np.mean(lev.ir, axis=0).astype(np.float32)
        levels.append(lev)
    return levels


def _similarity(scale: float, angle_deg: float, c_ir: np.ndarray, c_vis: np.ndarray) -> np.ndarray:
    """IR -> visible: rotate and scale about the IR centre, put it on the visible centre."""
    a = math.radians(angle_deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    h = np.eye(3)
    h[:2, :2] = r
    h[:2, 2] = c_vis - r @ c_ir
    return h


def _coarse_search(level: _Level, s0: float, n_best: int = COARSE_CANDIDATES) -> list[tuple[float, np.ndarray]]:
    """The best distinct similarities (IR -> visible at this level) over a scale x rotation grid.

    Each candidate's shift comes from masked normalised cross-correlation of the frames' mean edge maps
    (cv2.matchTemplate). Averaging the edge maps over frames before correlating is exact for a fixed
    mapping (warping is linear) and lets every frame vote at the cost of one correlation. Returns up to
    `n_best` (score, mapping) pairs, best first, that differ by more than a few pixels.
    """
    vh, vw = level.vis_mean.shape
    ih, iw = level.ir_mean.shape
    c_vis = np.array([(vw - 1) / 2, (vh - 1) / 2])
    c_ir = np.array([(iw - 1) / 2, (ih - 1) / 2])
    base = s0 * level.a_vis / level.a_ir  # same field of view, in this level's pixels
    m = max(2, round(SHIFT_RANGE * vw))
    # steps: a scale or angle error of half a step moves the frame's edge by < ~1 coarse pixel
    step = 1.2 / (vw / 2)
    n_scale = max(2, math.ceil(math.log(SCALE_RANGE[1] / SCALE_RANGE[0]) / step) + 1)
    scales = base * np.geomspace(SCALE_RANGE[0], SCALE_RANGE[1], n_scale)
    angles = np.arange(-ROTATION_RANGE, ROTATION_RANGE + 1e-9, math.degrees(step))
    found: list[tuple[float, np.ndarray]] = []
    for s in scales:
        for ang in angles:
            h = _similarity(s, ang, c_ir, c_vis)
            a = h[:2]
            tmask = cv2.warpAffine(level.ir_mask, a, (vw, vh), flags=cv2.INTER_NEAREST)[m:vh - m, m:vw - m]
            if np.count_nonzero(tmask) < 0.2 * tmask.size:
                continue
            templ = cv2.warpAffine(level.ir_mean, a, (vw, vh), flags=cv2.INTER_LINEAR)[m:vh - m, m:vw - m]
            r = cv2.matchTemplate(level.vis_mean, templ, cv2.TM_CCOEFF_NORMED, mask=tmask)
            r = np.nan_to_num(r, nan=-1.0, posinf=-1.0, neginf=-1.0)
            _, score, _, loc = cv2.minMaxLoc(r)
            t = np.eye(3)
            t[:2, 2] = (loc[0] - m, loc[1] - m)
            found.append((float(score), t @ h))
    found.sort(key=lambda x: -x[0])
    best: list[tuple[float, np.ndarray]] = []
    ref = corners((iw, ih))
    for score, h in found:
        p = map_points(h, ref)
        if all(np.abs(p - map_points(hb, ref)).max() > 3.0 for _, hb in best):
            best.append((score, h))
            if len(best) == n_best:
                break
    return best


def _ecc(vis_e: np.ndarray, ir_e: np.ndarray, mask: np.ndarray, h: np.ndarray, motion: int, iters: int
         ) -> tuple[np.ndarray, float]:
    """Refine an IR -> visible mapping on one pair of edge maps with ECC; raises cv2.error on failure."""
    # ECC warps the input (IR) onto the template (visible): its matrix maps visible -> IR pixels.
    w = np.linalg.inv(h)
    w = (w / w[2, 2]).astype(np.float32)
    if motion == cv2.MOTION_AFFINE:
        w = w[:2].copy()
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iters, 1e-5)
    rho, w = cv2.findTransformECC(vis_e, ir_e, w, motion, crit, mask, 1)
    if w.shape[0] == 2:
        w = np.vstack([w, [0.0, 0.0, 1.0]])
    return _normalise(np.linalg.inv(w.astype(np.float64))), float(rho)


#: pseudo motion type: rotation, isotropic scale and shift (ECC has no such mode; see _ecc_similarity)
MOTION_SIMILARITY = -1


def _ecc_similarity(vis_e: np.ndarray, ir_e: np.ndarray, mask: np.ndarray, h: np.ndarray, iters: int,
                    span: float) -> tuple[np.ndarray, float]:
    """Refine an IR -> visible similarity (rotation, isotropic scale, shift) on one pair of edge maps.

    ECC has rigid (MOTION_EUCLIDEAN) but no similarity mode: the scale is searched by a bounded scalar
    optimiser (scipy's minimize_scalar) within +-span of the current one, each trial resizing the IR map
    by the scale and fitting rotation and shift with ECC. Four parameters instead of six keep the
    alignment from trading real structure for an anisotropic stretch onto whatever edges correlate best.
    """
    from scipy.optimize import minimize_scalar  # a dependency of scikit-image

    a = h[:2, :2]
    s0 = math.sqrt(abs(np.linalg.det(a)))
    u, _, vt = np.linalg.svd(a / s0)
    rot = u @ vt  # nearest rotation
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iters, 1e-5)
    results: dict[float, tuple[float, np.ndarray]] = {}

    def trial(scale: float) -> float:
        ir_s = cv2.resize(ir_e, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        m_s = cv2.resize(mask, (ir_s.shape[1], ir_s.shape[0]), interpolation=cv2.INTER_NEAREST)
        # IR_s -> visible is the rotation and the shift; ECC wants its inverse (visible -> IR_s)
        h_s = np.eye(3)
        h_s[:2, :2] = rot * (s0 / scale)
        h_s[:2, 2] = h[:2, 2]
        w = np.linalg.inv(h_s)[:2].astype(np.float32)
        try:
            rho, w = cv2.findTransformECC(vis_e, ir_s, w, cv2.MOTION_EUCLIDEAN, crit, m_s, 1)
        except cv2.error:
            return 1.0
        w3 = np.vstack([w.astype(np.float64), [0.0, 0.0, 1.0]])
        results[scale] = (float(rho), np.linalg.inv(w3) @ np.diag([scale, scale, 1.0]))
        return -float(rho)

    minimize_scalar(trial, bounds=(s0 * (1 - span), s0 * (1 + span)), method="bounded",
                    options={"xatol": s0 * 2e-4})
    if not results:
        raise cv2.error("similarity refinement did not converge")
    rho, h_best = max(results.values(), key=lambda r: r[0])
    return _normalise(h_best), rho


def _score(vis_e: np.ndarray, ir_e: np.ndarray, mask: np.ndarray, h: np.ndarray) -> float:
    """Normalised cross-correlation of the visible edge map and the IR edge map warped by h, over the
    IR image's valid area: one yardstick for mappings of every model."""
    vh, vw = vis_e.shape
    warped = cv2.warpPerspective(ir_e, h, (vw, vh), flags=cv2.INTER_LINEAR)
    valid = cv2.warpPerspective(mask, h, (vw, vh), flags=cv2.INTER_NEAREST) > 0
    if np.count_nonzero(valid) < 100:
        return -1.0
    x = warped[valid] - warped[valid].mean()
    y = vis_e[valid] - vis_e[valid].mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else -1.0


def _refine(levels: list[_Level], h: np.ndarray, motion: int, first: int = 0,
            frames: Sequence[int] | None = None) -> tuple[np.ndarray, float]:
    """Coarse-to-fine refinement from level `first`, on the mean edge maps of `frames` (default: all).

    Returns the full-resolution IR -> visible mapping and its edge correlation (_score) at the finest
    level. Raises cv2.error when ECC fails.
    """
    vis_e = ir_e = None
    lev = levels[-1]
    for li in range(first, len(levels)):
        lev = levels[li]
        if frames is None:
            vis_e, ir_e = lev.vis_mean, lev.ir_mean
        else:
            vis_e = np.mean([lev.vis[i] for i in frames], axis=0).astype(np.float32)
            ir_e = np.mean([lev.ir[i] for i in frames], axis=0).astype(np.float32)
        hl = _scale_h(h, lev.a_vis, lev.a_ir)
        if motion == MOTION_SIMILARITY:
            # the search span shrinks with the level: each level starts within a pixel or two
            hl, _ = _ecc_similarity(vis_e, ir_e, lev.ir_mask, hl, ECC_ITERATIONS, 0.04 if li <= 1 else 0.015)
        else:
            hl, _ = _ecc(vis_e, ir_e, lev.ir_mask, hl, motion, ECC_ITERATIONS)
        h = _scale_h(hl, 1.0 / lev.a_vis, 1.0 / lev.a_ir)
    return h, _score(vis_e, ir_e, lev.ir_mask, _scale_h(h, lev.a_vis, lev.a_ir))


def _subset_spread(levels: list[_Level], h: np.ndarray, motion: int, n_frames: int,
                   ir_size: tuple[int, int], vis_size: tuple[int, int]) -> tuple[float, int, int]:
    """(RMS spread px, subsets converged, subsets): the finest-level refinement repeated from `h` on
    disjoint subsets of the frames, measured at the IR image corners. A true alignment is a stable
    optimum that every subset finds again; a chance one is not."""
    n_groups = min(GROUPS, n_frames)
    ref = corners(ir_size)
    pts = []
    for g in range(n_groups):
        try:
            hg, _ = _refine(levels, h, motion, first=len(levels) - 1, frames=range(g, n_frames, n_groups))
        except cv2.error:
            continue
        if _sane(hg, ir_size, vis_size) is None:
            pts.append(map_points(hg, ref))
    if not pts:
        return math.inf, 0, n_groups
    return float(np.sqrt(((np.stack(pts) - map_points(h, ref)) ** 2).sum(-1).mean())), len(pts), n_groups


def _select_frames(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], mask: np.ndarray
                   ) -> tuple[list[int], list[np.ndarray], list[np.ndarray], list[str]]:
    """Frames with usable structure in both modalities, and the reasons for those rejected."""
    keep, irs, viss, notes = [], [], [], []
    for k, (name, ir, vis) in enumerate(pairs):
        ig, vg = to_grey_float(ir), to_grey_float(vis)
        ti, tv = texture(ig, mask), texture(vg)
        if ti < MIN_TEXTURE or tv < MIN_TEXTURE:
            notes.append(f"{name}: {'IR' if ti < MIN_TEXTURE else 'visible'} frame too uniform")
            continue
        keep.append(k)
        irs.append(ig)
        viss.append(vg)
    return keep, irs, viss, notes


def _check_sizes(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> tuple[tuple[int, int], tuple[int, int]]:
    if not pairs:
        raise CalibrationError("no frame pairs to calibrate on")
    ir_size = (pairs[0][1].shape[1], pairs[0][1].shape[0])
    vis_size = (pairs[0][2].shape[1], pairs[0][2].shape[0])
    for name, ir, vis in pairs:
        if (ir.shape[1], ir.shape[0]) != ir_size or (vis.shape[1], vis.shape[0]) != vis_size:
            raise CalibrationError(f"frame {name}: image size changed within the stream")
    if min(ir_size) < 32 or min(vis_size) < 32:
        raise CalibrationError(f"images too small to calibrate (IR {ir_size[0]}x{ir_size[1]}, visible "
                               f"{vis_size[0]}x{vis_size[1]}; need >= 32 px)")
    return ir_size, vis_size


def estimate_from_scenes(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], model: str = "homography",
                         full: bool = False, log: Callable[[str], None] | None = None) -> Registration:
    """IR -> visible mapping from ordinary synchronised frame pairs ``(name, ir, vis_bgr)``.

    Use ~8-24 pairs spread over a clip (different content gives independent evidence). IR and visible
    may differ in size; each stream must keep one size. The estimate starts as a similarity (rotation,
    isotropic scale, shift) and takes the model's further freedom (affine: shear and unequal scales;
    homography: also perspective) only when it improves the edge correlation clearly (EXTRA_DOF_GAIN),
    unless `full`. Raises CalibrationError when the result would not be trustworthy.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    say = log or (lambda msg: None)
    ir_size, vis_size = _check_sizes(pairs)
    mask = valid_mask([p[1] for p in pairs])
    if np.count_nonzero(mask) < 0.2 * mask.size:
        raise CalibrationError("the IR frames are mostly constant (blank, or a fill around a small image)")
    keep, ir_g, vis_g, notes = _select_frames(pairs, mask)
    if len(keep) < MIN_FRAMES:
        detail = f" ({notes[0]}{', ...' if len(notes) > 1 else ''})" if notes else ""
        raise CalibrationError(f"only {len(keep)} of {len(pairs)} frame pairs have enough structure in both "
                               f"cameras (need {MIN_FRAMES}){detail}; point the cameras at a textured scene")
    names = [pairs[k][0] for k in keep]
    say(f"{len(keep)} of {len(pairs)} frame pairs have structure in both cameras")

    # "same field of view" guess: IR resized isotropically to the visible image's size
    s0 = math.sqrt((vis_size[0] * vis_size[1]) / (ir_size[0] * ir_size[1]))
    levels = _pyramid(ir_g, vis_g, mask, s0)
    coarse = levels[0]
    candidates = _coarse_search(coarse, s0)
    if not candidates:
        raise CalibrationError("the IR image has too little valid area to search for the mapping")
    top = candidates[0][0]
    say(f"coarse search at {coarse.vis_mean.shape[1]} px: best edge correlation {top:.3f}")
    if top < MIN_COARSE_SCORE:
        raise CalibrationError(f"no consistent match between the IR and visible edges (correlation {top:.3f} "
                               f"< {MIN_COARSE_SCORE}); are both streams of the same scene and synchronised?")

    # refine the best few coarse candidates as similarities (an accidental coarse peak loses at full
    # resolution); ECC at the coarse level itself is skipped: there it drifts to whatever blobs correlate
    # refine the best few coarse candidates as similarities (an accidental coarse peak loses at full
    # resolution); ECC at the coarse level itself is skipped: there it drifts to whatever blobs correlate
    refined: list[tuple[float, np.ndarray]] = []
    for _, h_c in candidates:
        h0 = _scale_h(h_c, 1.0 / coarse.a_vis, 1.0 / coarse.a_ir)
        try:
            h, rho = _refine(levels, h0, MOTION_SIMILARITY, first=min(1, len(levels) - 1))
        except cv2.error:
            continue
        if _sane(h, ir_size, vis_size) is None:
            refined.append((rho, h))
    if not refined:
        raise CalibrationError("the alignment did not converge; the scene may lack structure both cameras see")
    limit = MAX_SPREAD * math.hypot(*vis_size)
    top_rho = max(r for r, _ in refined)
    ref = corners(ir_size)
    close: list[tuple[float, np.ndarray]] = []
    for r, h in sorted(refined, key=lambda x: -x[0]):
        # candidates that converged to the same alignment (within a pixel) count once, the best of them
        if r >= top_rho - CANDIDATE_TOLERANCE and all(
                np.abs(map_points(h, ref) - map_points(hc, ref)).max() > 1.0 for _, hc in close):
            close.append((r, h))
    rho, h_final = close[0]
    if len(close) > 1:
        # Several alignments correlate about equally well (hazy or smooth scenes, repeated structure).
        # The camera geometry is a stable optimum that every subset of the frames finds again; a chance
        # optimum of the mean edge maps is not. Two different stable ones: the data cannot tell, refuse.
        stable = []
        for r, h in close:
            spread = _subset_spread(levels, h, MOTION_SIMILARITY, len(keep), ir_size, vis_size)[0]
            if spread <= limit:
                stable.append((r, h, spread))
        say(f"{len(close)} different alignments correlate within {CANDIDATE_TOLERANCE} of the best; "
            f"{len(stable)} stable over frame subsets")
        if not stable:
            raise CalibrationError(f"none of {len(close)} about equally good alignments is stable over subsets "
                                   "of the frames; use footage with more structure both cameras see")
        r0, h0, _ = max(stable, key=lambda x: x[0])
        far = [r for r, h, _ in stable
               if np.sqrt(((map_points(h, ref) - map_points(h0, ref)) ** 2).sum(-1).mean()) > limit]
        if far:
            raise CalibrationError(f"the footage allows {1 + len(far)} different alignments (edge correlations "
                                   f"{r0:.3f} and {max(far):.3f}), each stable over the frames; use footage "
                                   "with more structure both cameras see (haze, smoke and bare scenes mislead)")
        rho, h_final = r0, h0
    say(f"similarity: edge correlation {rho:.4f}")
    models = [(MOTION_SIMILARITY, "similarity", h_final, rho)]
    # More freedom (affine: shear and unequal scales; homography: perspective) only where the data ask
    # for it: edges alone constrain those terms poorly, and on real pairs they absorb parallax and lens
    # differences, bending the extrapolated corners by several pixels.
    steps = [(cv2.MOTION_AFFINE, "affine")] + ([(cv2.MOTION_HOMOGRAPHY, "homography")] if model == "homography" else [])
    h_start = h_final
    for step_motion, step_kind in steps:
        _, _, _, rho_prev = models[-1]  # the gain is over the richest model kept so far
        try:
            h_x, rho_x = _refine(levels, h_start, step_motion, first=len(levels) - 1)
        except cv2.error:
            say(f"{step_kind}: did not converge")
            continue
        h_start = h_x  # the next, richer model starts here even when this one is not kept
        gain = (rho_x - rho_prev) / max(1e-6, 1.0 - rho_prev)
        keep_it = _sane(h_x, ir_size, vis_size) is None and (full or gain >= EXTRA_DOF_GAIN)
        say(f"{step_kind}: edge correlation {rho_x:.4f} (relative gain {gain:+.4f}: "
            f"{'kept' if keep_it else 'not supported by the data'})")
        if keep_it:
            models.append((step_motion, step_kind, h_x, rho_x))

    # Consistency: the same refinement on disjoint subsets of the frames must land on the same mapping.
    # The richest model that passes wins; a richer one that fails falls back to the simpler one.
    failures = []
    for motion, kind, h_final, rho in reversed(models):
        residual, n_ok, n_groups = _subset_spread(levels, h_final, motion, len(keep), ir_size, vis_size)
        if n_ok < max(2, n_groups - 1):
            failures.append(f"{kind}: converged on only {n_ok} of {n_groups} frame subsets")
            continue
        say(f"{kind}: frame subsets agree within {residual:.2f} px RMS at the IR image corners")
        # a weak correlation must be backed by a tight agreement: two unrelated streams can correlate at
        # ~0.2 somewhere, but their frame subsets then scatter by pixels (measured: 3.2 px at 640x480)
        lim = limit if rho >= WEAK_SCORE else WEAK_MAX_SPREAD * math.hypot(*vis_size)
        if residual <= lim:
            break
        failures.append(f"{kind}: frame subsets {residual:.1f} px apart (RMS, > {lim:.1f} px"
                        + (f" for an edge correlation of {rho:.2f}" if rho < WEAK_SCORE else "") + ")")
    else:
        raise CalibrationError("the estimate is not trustworthy (" + "; ".join(failures) + "); use more frames "
                               "with structure both cameras see")
    if rho < MIN_FINE_SCORE:
        raise CalibrationError(f"the aligned edges correlate too weakly ({rho:.3f} < {MIN_FINE_SCORE}); "
                               "are both streams of the same scene?")
    why = _sane(h_final, ir_size, vis_size)
    if why:
        raise CalibrationError(why)
    return Registration(
        homography=_normalise(h_final), model=model, ir_size=ir_size, vis_size=vis_size, residual_px=residual,
        score=rho, frames_used=names, frames_considered=len(pairs),
        method=(f"edge-map ECC: scale/rotation grid + masked NCC at {coarse.vis_mean.shape[1]} px, "
                f"{len(levels)}-level refinement on the mean edge maps of {len(keep)} frames, degrees of freedom "
                f"kept: {kind}"
                + f", consistency over {n_ok} frame subsets"),
    )


# ---------------------------------------------------------------------------------- target route
def parse_target(spec: str) -> tuple[str, int, int]:
    """'checkerboard:9x6' -> ('checkerboard', 9, 6): inner corners (checkerboard) or circles per row/column."""
    kind, sep, dims = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "chessboard":
        kind = "checkerboard"
    try:
        cols, rows = (int(v) for v in dims.lower().split("x"))
    except ValueError:
        raise ValueError(f"--target must look like checkerboard:9x6 or circles:4x11, got {spec!r}") from None
    if kind not in TARGET_KINDS or not sep:
        raise ValueError(f"--target kind must be one of {', '.join(TARGET_KINDS)}, got {spec!r}")
    if cols < 2 or rows < 2:
        raise ValueError(f"--target needs at least 2x2 points, got {cols}x{rows}")
    return kind, cols, rows


def _u8(grey: np.ndarray) -> np.ndarray:
    return np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)


def find_target(grey: np.ndarray, kind: str, cols: int, rows: int) -> np.ndarray | None:
    """(cols*rows, 2) points of the target in one image, in the detector's canonical order, or None.

    A heated target inverts its contrast in IR (warm squares or dots bright instead of dark), so the
    inverted image is tried as well.
    """
    img = _u8(grey)
    for cand in (img, 255 - img):
        if kind == "checkerboard":
            ok, pts = cv2.findChessboardCorners(cand, (cols, rows),
                                                cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
            if ok:
                pts = cv2.cornerSubPix(cand, pts, (5, 5), (-1, -1),
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 0.01))
                return pts.reshape(-1, 2).astype(np.float64)
        else:
            for flags in (cv2.CALIB_CB_SYMMETRIC_GRID, cv2.CALIB_CB_ASYMMETRIC_GRID):
                ok, pts = cv2.findCirclesGrid(cand, (cols, rows), flags=flags)
                if ok:
                    return pts.reshape(-1, 2).astype(np.float64)
    return None


def _canonical(pts: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Order the grid so that its first point is the one nearest the image's top-left.

    Detectors may return a symmetric grid starting from either end; both images must use one order
    for point-to-point matching (rotations between the cameras are small, well under 90 degrees).
    """
    grid = pts.reshape(rows, cols, 2)
    options = [grid, grid[::-1, ::-1]]
    if rows == cols:
        options += [grid.transpose(1, 0, 2), grid.transpose(1, 0, 2)[::-1, ::-1]]
    best = min(options, key=lambda g: g[0, 0].sum())
    return best.reshape(-1, 2)


def estimate_from_target(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], target: str,
                         model: str = "homography", log=None) -> Registration:
    """IR -> visible mapping from frames showing a heated checkerboard or circle grid in both cameras."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    kind, cols, rows = parse_target(target)
    say = log or (lambda msg: None)
    if not pairs:
        raise CalibrationError("no frame pairs to calibrate on")
    ir_size = (pairs[0][1].shape[1], pairs[0][1].shape[0])
    vis_size = (pairs[0][2].shape[1], pairs[0][2].shape[0])
    src, dst, used, per_frame = [], [], [], []
    for name, ir, vis in pairs:
        pi = find_target(to_grey_float(ir), kind, cols, rows)
        pv = find_target(to_grey_float(vis), kind, cols, rows) if pi is not None else None
        if pi is None or pv is None:
            continue
        pi, pv = _canonical(pi, cols, rows), _canonical(pv, cols, rows)
        src.append(pi)
        dst.append(pv)
        used.append(name)
    say(f"target {kind} {cols}x{rows} found in both cameras in {len(used)} of {len(pairs)} frame pairs")
    if not used:
        raise CalibrationError(f"the {kind} target ({cols}x{rows}) was not found in both cameras in any of "
                               f"{len(pairs)} frame pairs; check the pattern size and that it is heated")
    s, d = np.concatenate(src).astype(np.float32), np.concatenate(dst).astype(np.float32)
    thresh = max(1.0, 0.004 * math.hypot(*vis_size))
    if model == "affine":
        a, inl = cv2.estimateAffine2D(s, d, method=cv2.RANSAC, ransacReprojThreshold=thresh)
        h = None if a is None else np.vstack([a, [0.0, 0.0, 1.0]])
    else:
        h, inl = cv2.findHomography(s, d, cv2.RANSAC, thresh)
    if h is None or inl is None or int(inl.sum()) < 0.5 * len(s):
        raise CalibrationError("the target points of the two cameras do not fit one mapping")
    inl = inl.ravel().astype(bool)
    h = _normalise(h)
    # refit on the inliers only, least squares (RANSAC's model comes from a minimal sample)
    h = _fit(s[inl], d[inl], model)
    err = np.sqrt(((map_points(h, s[inl]) - d[inl]) ** 2).sum(-1))
    residual = float(np.sqrt((err ** 2).mean()))
    why = _sane(h, ir_size, vis_size)
    if why:
        raise CalibrationError(why)
    return Registration(homography=h, model=model, ir_size=ir_size, vis_size=vis_size, residual_px=residual,
                        score=-1.0, frames_used=used, frames_considered=len(pairs),
                        method=f"{kind} target {cols}x{rows}: {len(used)} frames, {int(inl.sum())}/{len(s)} "
                               f"points inliers, {'findHomography' if model == 'homography' else 'estimateAffine2D'}"
                               " RANSAC + least-squares refit")


# --------------------------------------------------------------------------------------- overlay
def overlay(ir: np.ndarray, vis_bgr: np.ndarray, homography: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Checkerboard of the IR image warped onto the visible frame and the visible image (BGR uint8).

    Edges that continue straight across the tile borders mean a good registration; IR tiles are tinted
    so the two modalities are told apart at a glance.
    """
    vh, vw = vis_bgr.shape[:2]
    g = to_grey_float(ir)
    lo, hi = np.percentile(g, (1, 99))  # stretched: raw thermal video is often low-contrast
    g = np.clip((g - lo) / max(hi - lo, 1e-6), 0, 1)
    warped = cv2.warpPerspective(_u8(g), homography, (vw, vh), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # warm tint (less blue, more red) tells IR tiles from grey visible ones
    ir_bgr = cv2.merge([(warped * 0.55).astype(np.uint8), (warped * 0.85).astype(np.uint8), warped])
    vis = vis_bgr if vis_bgr.ndim == 3 else cv2.cvtColor(vis_bgr, cv2.COLOR_GRAY2BGR)
    cell = max(8, round(max(vw, vh) / tiles))
    yy, xx = np.mgrid[0:vh, 0:vw]
    board = ((yy // cell + xx // cell) % 2).astype(bool)
    out = vis[:, :, :3].copy()
    out[board] = ir_bgr[board]
    return out


def pick_evenly(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def sample_pairs(frames: Iterable[tuple], total: int, k: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Keep k pairs spread evenly over a stream of `total` (name, ir, vis, ...) items, in one pass."""
    wanted = set(pick_evenly(total, k))
    out = []
    for i, item in enumerate(frames):
        if i in wanted:
            out.append((str(item[0]), item[1], item[2]))
        if len(out) == len(wanted):
            break
    return out
