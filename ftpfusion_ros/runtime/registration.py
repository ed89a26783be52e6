"""Registration of the IR image onto the visible camera's pixel grid: a configured homography, or a
registration file written by `ftpfusion calibrate` (see runtime/calibration.py and docs/calibration.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import yaml


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


#: relative aspect-ratio change up to which a registration is rescaled to other image sizes
RESCALE_ASPECT_TOLERANCE = 0.01


@dataclass
class RegistrationFile:
    """A registration written by `ftpfusion calibrate` (or by hand): the IR->visible homography and the
    image sizes it was estimated for."""

    homography: np.ndarray                  # 3x3, IR pixel -> visible pixel
    ir_size: tuple[int, int] | None = None  # (W, H); None: not recorded, used as is
    vis_size: tuple[int, int] | None = None
    path: str = ""
    model: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def for_sizes(self, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> np.ndarray:
        """The homography for frames of these sizes (W, H).

        A camera publishing a resized image (binning, a lower-resolution mode) keeps its field of view, so
        the mapping is rescaled; a different aspect ratio means a crop or another camera and is refused
        (ValueError): warping with the wrong matrix would fuse misaligned images without a word.
        """
        key = (tuple(ir_size), tuple(vis_size))
        if key in self._cache:
            return self._cache[key]
        h = self.homography
        scales = []
        for what, rec, cur in (("IR", self.ir_size, ir_size), ("visible", self.vis_size, vis_size)):
            if rec is None or tuple(rec) == tuple(cur):
                scales.append((1.0, 1.0))
                continue
            sx, sy = cur[0] / rec[0], cur[1] / rec[1]
            if abs(sx / sy - 1.0) > RESCALE_ASPECT_TOLERANCE:
                raise ValueError(f"{what} image {cur[0]}x{cur[1]} does not match the registration "
                                 f"{self.path or ''} made for {rec[0]}x{rec[1]} (other aspect ratio); "
                                 "recalibrate with `ftpfusion calibrate` for these cameras")
            scales.append((sx, sy))
        (ix, iy), (vx, vy) = scales
        h = np.diag([vx, vy, 1.0]) @ h @ np.diag([1.0 / ix, 1.0 / iy, 1.0])
        h = h / h[2, 2]
        self._cache[key] = h
        return h


def _size(value, key: str, path: str) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"registration file {path}: {key} must be [width, height], got {value!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"registration file {path}: {key} must be positive, got {value!r}")
    return w, h


def load_registration(path: str | os.PathLike) -> RegistrationFile:
    """Read a registration YAML: key ``homography`` (3x3 nested or 9 numbers, row-major, IR pixel ->
    visible pixel), optional ``ir_size``/``vis_size`` ([W, H]). Errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"registration file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"registration file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "homography" not in data:
        raise ValueError(f"registration file {p} has no 'homography' key (3x3, row-major, IR pixel -> "
                         "visible pixel); write one with `ftpfusion calibrate`")
    try:
        h = parse_homography(data["homography"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"registration file {p}: {exc}") from None
    if h is None:
        raise ValueError(f"registration file {p}: 'homography' is empty")
    return RegistrationFile(homography=h, ir_size=_size(data.get("ir_size"), "ir_size", str(p)),
                            vis_size=_size(data.get("vis_size"), "vis_size", str(p)), path=str(p),
                            model=str(data.get("model", "")))


def save_registration(path: str | os.PathLike, data: dict) -> Path:
    """Write a registration mapping as YAML, atomically: a reader never sees half a file, and a failed
    run leaves no file behind."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    header = ("# IR -> visible registration written by `ftpfusion calibrate`.\n"
              "# homography: 3x3, row-major, maps an IR pixel (x, y, 1) to a visible pixel.\n")
    tmp.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    os.replace(tmp, p)
    return p


# ------------------------------------------------------------------ from the cameras' own calibration
def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3x3 rotation of a unit quaternion (x, y, z, w), the order of geometry_msgs/Quaternion and TF."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {tuple(q)} is not a rotation")
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def homography_from_cameras(k_ir: Sequence[float], k_vis: Sequence[float], rotation: np.ndarray,
                            translation: Sequence[float], depth_m: float) -> np.ndarray:
    """IR pixel -> visible pixel homography of a plane facing the IR camera at `depth_m` metres.

    k_ir, k_vis: the cameras' intrinsic matrices (camera_info ``k``: 9 numbers, row-major, or 3x3).
    rotation (3x3), translation (m): the IR optical frame expressed in the visible optical frame, i.e.
    X_vis = R X_ir + t for a point X (what TF's lookup_transform(visible_frame, ir_frame) gives). For the
    points of the plane n.X_ir = d (n = optical axis), X_vis = (R + t n^T / d) X_ir, hence
    H = K_vis (R + t n^T / d) K_ir^-1. Exact on that plane; nearer or farther points are offset by the
    parallax of the baseline (docs/calibration.md). Lens distortion is not modelled: use rectified
    images or keep it small.
    """
    ki = np.asarray(k_ir, dtype=np.float64).reshape(3, 3)
    kv = np.asarray(k_vis, dtype=np.float64).reshape(3, 3)
    r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    t = np.asarray(translation, dtype=np.float64).reshape(3)
    if not (np.isfinite(depth_m) and depth_m > 0):
        raise ValueError(f"registration depth must be > 0 m, got {depth_m}")
    for name, k in (("IR", ki), ("visible", kv)):
        if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0 or abs(np.linalg.det(k)) < 1e-12:
            raise ValueError(f"{name} camera_info has no valid intrinsics (k = {k.ravel().tolist()}); "
                             "is the camera calibrated?")
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) <= 0:
        raise ValueError("the rotation between the camera frames is not a rotation matrix")
    n = np.array([0.0, 0.0, 1.0])
    h = kv @ (r + np.outer(t, n) / float(depth_m)) @ np.linalg.inv(ki)
    return h / h[2, 2]


def registration_from_cameras(k_ir: Sequence[float], ir_size: tuple[int, int], k_vis: Sequence[float],
                              vis_size: tuple[int, int], translation: Sequence[float],
                              quaternion: Sequence[float], depth_m: float) -> RegistrationFile:
    """The registration the engine takes, from two camera_info messages (k, width, height) and the TF
    transform of the IR optical frame in the visible optical frame (translation, quaternion x y z w)."""
    h = homography_from_cameras(k_ir, k_vis, quaternion_matrix(*quaternion), translation, depth_m)
    return RegistrationFile(homography=h, ir_size=tuple(ir_size), vis_size=tuple(vis_size),
                            path=f"camera_info + TF at {depth_m:g} m", model="homography")
