"""The parameter-free fusions of two luminances that the learned models refine: the classical ``average``
and ``max_luminance`` models, the base every learned model starts from (``refine=false`` runs it alone),
and the intensity target of the losses. One definition for all of them."""
from __future__ import annotations

import torch

from .pyramid import fuse_laplacian

#: per pixel (max, mean) or multi-scale (laplacian: Laplacian-pyramid fusion, as the classical model)
BASE_MODES = ("max", "mean", "laplacian")


def fuse_base(ir: torch.Tensor, y_vis: torch.Tensor, mode: str = "max") -> torch.Tensor:
    """``max`` or ``mean`` of IR and visible luminance per pixel, or their ``laplacian`` pyramid fusion
    (clipped to [0, 1])."""
    if mode == "max":
        return torch.maximum(ir, y_vis)
    if mode == "mean":
        return 0.5 * (ir + y_vis)
    if mode == "laplacian":
        return fuse_laplacian(ir, y_vis).clamp(0.0, 1.0)
    raise ValueError(f"base fusion must be one of {BASE_MODES}, got {mode!r}")
