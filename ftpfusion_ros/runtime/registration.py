"""Registration of the IR image onto the visible camera's pixel grid (configured homography)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def parse_homography(values: Sequence[float] | Sequence[Sequence[float]] | None) -> np.ndarray | None:
    """A 3x3 IR->visible homography from 9 numbers (row-major) or a 3x3 nested list; None = identity."""
    if values is None:
        return None
    h = np.asarray(values, dtype=np.float64)
    if h.size == 0:
        return None
    if h.size != 9:
        raise ValueError(f"homography needs 9 values (3x3, row-major), got {h.size}")
    h = h.reshape(3, 3)
    if not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
        raise ValueError("homography must be finite and invertible")
    return h / h[2, 2] if h[2, 2] != 0 else h


def register_ir(ir: np.ndarray, size_wh: tuple[int, int], homography: np.ndarray | None) -> np.ndarray:
    """Warp (or resize) a single-channel IR image onto the visible frame of size (W, H).

    Without a homography the IR frame is assumed to share the visible camera's field of view and is only
    resized when its resolution differs.
    """
    w, h = size_wh
    if homography is not None:
        return cv2.warpPerspective(ir, homography, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if ir.shape[:2] != (h, w):
        return cv2.resize(ir, (w, h), interpolation=cv2.INTER_LINEAR)
    return ir
