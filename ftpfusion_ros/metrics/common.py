"""Shared helpers of the metrics: input checking, BT.601 luminance on numpy arrays, windowed filters.

Every metric takes *luminance* arrays on the 8-bit grey scale: float arrays with values in 0..255
(fused and visible frames as BT.601 Y of their BGR images, IR as its mono 8-bit frame). The luminance
weights are those of :mod:`ftpfusion_ros.nn.colour` (full-range BT.601), so metrics see exactly the Y
channel the models fuse.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..bt601 import KB as _KB, KG as _KG, KR as _KR


def bgr_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luminance (float32, same scale as the input) of a BGR image; a 2-D image is returned as is."""
    img = np.asarray(image)
    if img.ndim == 2:
        return img.astype(np.float32)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H,W) or (H,W,3|4) BGR image, got shape {img.shape}")
    img = img[..., :3].astype(np.float32)
    return _KB * img[..., 0] + _KG * img[..., 1] + _KR * img[..., 2]


IR_WINDOW_PERCENTILES = (0.5, 99.5)


def ir_window(samples: np.ndarray, low_pct: float = IR_WINDOW_PERCENTILES[0],
              high_pct: float = IR_WINDOW_PERCENTILES[1]) -> tuple[float, float]:
    """A fixed 16-bit -> 8-bit window (lo, hi) from thermal samples: their [low_pct, high_pct] percentiles
    (hi at least lo + 1 count)."""
    lo, hi = np.percentile(np.asarray(samples), [low_pct, high_pct])
    return float(lo), float(max(hi, lo + 1.0))


def apply_ir_window(frames: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map thermal counts to 0..255 float32 linearly through ``window`` (clipped)."""
    lo, hi = window
    return np.clip((np.asarray(frames).astype(np.float32) - lo) * (255.0 / (hi - lo)), 0.0, 255.0)


def ir_to_8bit(frames: np.ndarray, low_pct: float = IR_WINDOW_PERCENTILES[0],
               high_pct: float = IR_WINDOW_PERCENTILES[1]) -> np.ndarray:
    """Map a 16-bit thermal clip (T,H,W) or frame to 0..255 float with ONE window for the whole clip.

    The window is the [low_pct, high_pct] percentile range over all frames together (:func:`ir_window`):
    a fixed linear map, so the mapping itself adds no flicker (per-frame min-max would). 8-bit input is
    returned as float unchanged.
    """
    arr = np.asarray(frames)
    if arr.dtype == np.uint8 or arr.max(initial=0) <= 255:
        return arr.astype(np.float32)
    return apply_ir_window(arr, ir_window(arr, low_pct, high_pct))


def as_luma(x: np.ndarray, name: str = "image") -> np.ndarray:
    """Check a 2-D luminance array on the 0..255 scale and return it as float64."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D luminance array (H,W), got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if arr.size and (arr.min() < -0.5 or arr.max() > 255.5):
        raise ValueError(
            f"{name}: values {arr.min():.3g}..{arr.max():.3g} are outside the 8-bit grey scale 0..255 "
            "(map 16-bit thermal data with metrics.common.ir_to_8bit first)"
        )
    return arr


def check_triplet(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fused, IR, visible) as float64 luminance arrays of one shape."""
    f, a, b = as_luma(f, "fused"), as_luma(a, "ir"), as_luma(b, "visible")
    if not (f.shape == a.shape == b.shape):
        raise ValueError(f"fused {f.shape}, ir {a.shape} and visible {b.shape} differ in size")
    return f, a, b


def as_clip(x, name: str = "clip") -> np.ndarray:
    """A (T,H,W) float32 luminance clip from an array or a list of 2-D frames."""
    arr = np.asarray(x, dtype=np.float32) if not isinstance(x, np.ndarray) else x.astype(np.float32, copy=False)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a (T,H,W) luminance clip, got shape {arr.shape}")
    return arr


def check_clips(f, a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f, a, b = as_clip(f, "fused"), as_clip(a, "ir"), as_clip(b, "visible")
    if not (f.shape == a.shape == b.shape):
        raise ValueError(f"fused {f.shape}, ir {a.shape} and visible {b.shape} clips differ in shape")
    return f, a, b


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps, centred (size odd)."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def filter_valid(img: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """Separable correlation with `kernel_1d` in both axes, 'valid' region only (no border effects)."""
    k = kernel_1d.size
    r = k // 2
    out = cv2.sepFilter2D(img, cv2.CV_64F, kernel_1d, kernel_1d, borderType=cv2.BORDER_REFLECT)
    return out[r : img.shape[0] - (k - 1 - r), r : img.shape[1] - (k - 1 - r)]


def box_mean(img: np.ndarray, size: int) -> np.ndarray:
    """Local mean over a size x size window (reflected borders), float64."""
    return cv2.blur(np.asarray(img, dtype=np.float64), (size, size), borderType=cv2.BORDER_REFLECT)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Global Pearson correlation; 0.0 where either input has no variance (correlation undefined)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    xc = x - x.mean()
    yc = y - y.mean()
    den = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if den <= 1e-12:
        return 0.0
    return float((xc * yc).sum() / den)
