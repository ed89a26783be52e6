"""Pictures and videos of fused results, shared by `ftpfusion bag` (--mp4) and `ftpfusion demo`.

- :func:`panel_row`: IR | visible | fused side by side (optionally labelled on each panel);
- :func:`side_by_side`: that row for a FusionResult, padded to an even size for mp4v;
- :func:`contact_sheet`: rows of IR | visible | fused under one header line;
- :class:`Video`: an mp4v writer opened on its first frame, letterboxing frames of another size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

PANEL_LABELS = ("IR", "visible", "fused")


def panel_row(ir8: np.ndarray, vis_bgr: np.ndarray, fused_bgr: np.ndarray,
              labels: Sequence[str] | None = None) -> np.ndarray:
    """IR (mono8, shown grey) | visible | fused (bgr8) as one BGR image; ``labels`` written on the panels."""
    panels = [cv2.cvtColor(ir8, cv2.COLOR_GRAY2BGR) if ir8.ndim == 2 else ir8.copy(), vis_bgr.copy(),
              fused_bgr.copy()]
    if labels:
        scale = max(0.4, panels[0].shape[0] / 600)
        for panel, label in zip(panels, labels):
            org = (8, int(24 * scale) + 4)
            cv2.putText(panel, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(panel, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.hstack(panels)


def even(frame: np.ndarray) -> np.ndarray:
    """Padded (edge replicated) to even width and height: mp4v needs it."""
    ph, pw = frame.shape[0] % 2, frame.shape[1] % 2
    return cv2.copyMakeBorder(frame, 0, ph, 0, pw, cv2.BORDER_REPLICATE) if ph or pw else frame


def side_by_side(res: Any) -> np.ndarray:
    """IR | visible | fused of a FusionResult, each labelled, padded to even size."""
    labels = (PANEL_LABELS[0], PANEL_LABELS[1], f"fused ({res.model})")
    return even(panel_row(res.aligned_ir, res.aligned_vis_bgr, res.fused_bgr, labels))


def contact_sheet(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path,
                  header_height: int = 28) -> int:
    """Rows of (ir8, vis_bgr, fused_bgr) under a header naming the columns, written to ``path``;
    returns the number of rows (0: nothing written)."""
    if not rows:
        return 0
    images = [panel_row(*r) for r in rows]
    sheet = np.vstack(images)
    w = images[0].shape[1] // 3
    header = np.full((header_height, sheet.shape[1], 3), 32, np.uint8)
    for k, label in enumerate(("IR (registered)", "visible", "fused")):
        cv2.putText(header, label, (k * w + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), np.vstack([header, sheet])):
        raise RuntimeError(f"could not write {path}")
    return len(images)


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` scaled to fit ``size`` (W, H) with its aspect ratio kept, padded black."""
    w, h = size
    scale = min(w / frame.shape[1], h / frame.shape[0])
    fw, fh = max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))
    small = cv2.resize(frame, (fw, fh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (h - fh) // 2, (w - fw) // 2
    return cv2.copyMakeBorder(small, top, h - fh - top, left, w - fw - left, cv2.BORDER_CONSTANT, value=0)


class Video:
    """cv2.VideoWriter (mp4v) opened on the first frame (its size is known only then); frames of another
    size are letterboxed (OpenCV would drop them without a word)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (W, H) of the video, from its first frame

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (w, h)
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise RuntimeError(f"could not open {self.path} for writing (mp4v, {w}x{h})")
        if (w, h) != self.size:
            frame = letterbox(frame, self.size)
        self.writer.write(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
