"""Segmentation-ready copy of a fused frame: a fixed size and a network-friendly format.

Downstream RGB-T / fused-image segmentation networks take a fixed input size, either as RGB8 or as a
normalised float tensor. Producing it here (not in the ROS node) keeps image maths in the runtime.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: ImageNet statistics, the usual normalisation of segmentation backbones
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SEG_FORMATS = ("rgb8", "float")


@dataclass
class SegOutputConfig:
    width: int = 640
    height: int = 480
    #: "rgb8": uint8 RGB; "float": float32 RGB, (x / 255 - mean) / std per channel (ROS encoding 32FC3)
    format: str = "rgb8"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"segmentation output size must be positive, got {self.width}x{self.height}")
        if self.format not in SEG_FORMATS:
            raise ValueError(f"segmentation output format must be one of {SEG_FORMATS}, got {self.format!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("segmentation mean/std need 3 values each, std > 0")

    @property
    def encoding(self) -> str:
        """The ROS image encoding of the output."""
        return "rgb8" if self.format == "rgb8" else "32FC3"


def seg_ready(fused_bgr: np.ndarray, cfg: SegOutputConfig) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (cfg.height, cfg.width, 3) RGB, uint8 or normalised float32.

    The whole frame is resized (no crop), area interpolation when shrinking, bilinear when enlarging.
    """
    h, w = fused_bgr.shape[:2]
    size = (cfg.width, cfg.height)
    if (w, h) != size:
        shrink = cfg.width * cfg.height < w * h
        fused_bgr = cv2.resize(fused_bgr, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(fused_bgr, cv2.COLOR_BGR2RGB)
    if cfg.format == "rgb8":
        return rgb
    mean = np.asarray(cfg.mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(cfg.std, np.float32) * 255.0)
    return (rgb.astype(np.float32) - mean) * inv_std
