"""Optical flow for the temporal metrics: classical OpenCV flow by default, a learned flow if local.

Convention (OpenCV's): ``flow = estimator(a, b)`` is an (H,W,2) float32 field (dx, dy) in pixels with
``a(x) ~ b(x + flow(x))``; :func:`warp` (``warp(b, flow)``) brings ``b`` onto ``a``'s pixel grid.

Estimators (``get_flow(name)``):
  * ``dis_medium`` (default), ``dis_fast``, ``dis_ultrafast``: OpenCV DIS (Kroeger et al. 2016) presets;
    ~20 / 6 / 3 ms per 640x480 pair on one core;
  * ``farneback``: OpenCV Farneback (pyr 0.5, 3 levels, window 15, 3 iterations), ~85 ms per pair;
  * ``raft_small`` / ``raft_large``: torchvision RAFT, only when torchvision is installed and the
    weights file is present locally (``weights=PATH``); nothing is downloaded.
The reference metric code (VF-Bench) uses a learned flow (SEA-RAFT) we cannot download, so every result
records the estimator's :attr:`label`; numbers are comparable only between runs with the same flow.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

FLOW_METHODS = ("dis_medium", "dis_fast", "dis_ultrafast", "farneback", "raft_small", "raft_large")
DEFAULT_FLOW = "dis_medium"


def to_u8(frame: np.ndarray) -> np.ndarray:
    """A 0..255 luminance frame as uint8 (rounded, clipped) for the flow estimators."""
    arr = np.asarray(frame)
    if arr.dtype == np.uint8:
        return arr
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


class FlowEstimator:
    """Callable (a, b) -> (H,W,2) float32 flow with a(x) ~ b(x + flow(x))."""

    name: str = ""
    label: str = ""

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class DISFlow(FlowEstimator):
    _PRESETS = {"dis_ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                "dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "dis_medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

    def __init__(self, name: str = "dis_medium") -> None:
        self.name = name
        self.label = f"opencv-{name.replace('_', '-')} (OpenCV {cv2.__version__})"
        self._dis = cv2.DISOpticalFlow_create(self._PRESETS[name])

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._dis.calc(to_u8(a), to_u8(b), None)


class FarnebackFlow(FlowEstimator):
    name = "farneback"

    def __init__(self) -> None:
        self.label = f"opencv-farneback (pyr 0.5, 3 levels, win 15, OpenCV {cv2.__version__})"

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(to_u8(a), to_u8(b), None, 0.5, 3, 15, 3, 5, 1.2, 0)


class TorchvisionRAFT(FlowEstimator):
    """torchvision RAFT with weights from a local file (state_dict), on CPU or CUDA."""

    def __init__(self, name: str, weights: str | Path, device: str = "cpu") -> None:
        try:
            import torch
            from torchvision.models.optical_flow import raft_large, raft_small
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(f"flow {name!r} needs torchvision, which is not installed") from exc
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"flow {name!r}: weights file {path} not found (nothing is downloaded)")
        self.name = name
        self._torch = torch
        self.device = torch.device(device)
        net = (raft_small if name == "raft_small" else raft_large)(weights=None, progress=False)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net = net.eval().to(self.device)
        self.label = f"torchvision-{name} ({path.name})"

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        torch = self._torch
        h, w = a.shape
        ph, pw = (-h) % 8, (-w) % 8  # RAFT needs sizes divisible by 8

        def prep(x: np.ndarray) -> "torch.Tensor":
            t = torch.from_numpy(np.asarray(x, dtype=np.float32) / 127.5 - 1.0)[None, None].repeat(1, 3, 1, 1)
            return torch.nn.functional.pad(t, (0, pw, 0, ph), mode="replicate").to(self.device)

        with torch.no_grad():
            flow = self.net(prep(a), prep(b))[-1][0, :, :h, :w]
        return flow.permute(1, 2, 0).cpu().numpy().astype(np.float32)


def get_flow(name: str = DEFAULT_FLOW, weights: str | Path | None = None, device: str = "cpu") -> FlowEstimator:
    """Build a flow estimator by name (see the module docstring)."""
    if name in DISFlow._PRESETS:
        return DISFlow(name)
    if name == "farneback":
        return FarnebackFlow()
    if name in ("raft_small", "raft_large"):
        if weights is None:
            raise ValueError(f"flow {name!r} needs a local weights file (weights=PATH); nothing is downloaded")
        return TorchvisionRAFT(name, weights, device)
    raise ValueError(f"unknown flow {name!r}; available: {', '.join(FLOW_METHODS)}")


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img(x + flow(x))`` by bilinear interpolation, replicated borders (float32)."""
    h, w = flow.shape[:2]
    gx, gy = _grid(h, w)
    map_x = (gx + flow[..., 0]).astype(np.float32, copy=False)
    map_y = (gy + flow[..., 1]).astype(np.float32, copy=False)
    return cv2.remap(np.asarray(img, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def consistency_mask(flow_ab: np.ndarray, flow_ba: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Forward-backward check: |O + warp(O_back, O)| < threshold px (True where the flow is reliable)."""
    back = warp(flow_ba, flow_ab)
    err = np.sqrt(((flow_ab + back) ** 2).sum(axis=-1))
    return err < threshold


@dataclass
class VideoFlows:
    """Flows between neighbours of one video: ``fwd[t] = flow(t -> t+1)``, ``bwd[t] = flow(t+1 -> t)``."""

    fwd: list[np.ndarray]
    bwd: list[np.ndarray]
    label: str

    def __len__(self) -> int:
        return len(self.fwd)


def video_flows(frames: Sequence[np.ndarray] | np.ndarray, estimator: FlowEstimator | str = DEFAULT_FLOW,
                backward: bool = True) -> VideoFlows:
    """Flows between all neighbouring frames of a clip (T-1 forward and, optionally, T-1 backward)."""
    est = get_flow(estimator) if isinstance(estimator, str) else estimator
    u8 = [to_u8(f) for f in frames]
    fwd = [est(u8[t], u8[t + 1]) for t in range(len(u8) - 1)]
    bwd = [est(u8[t + 1], u8[t]) for t in range(len(u8) - 1)] if backward else []
    return VideoFlows(fwd, bwd, est.label)

