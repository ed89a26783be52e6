"""The per-pixel, parameter-free fusions of two luminances: the classical ``average`` and
``max_luminance`` models, the base every learned model refines (``refine=false`` runs it alone), and the
intensity target of the losses. One definition for all of them."""
from __future__ import annotations

import torch

BASE_MODES = ("max", "mean")


def fuse_base(ir: torch.Tensor, y_vis: torch.Tensor, mode: str = "max") -> torch.Tensor:
    """``max`` or ``mean`` of IR and visible luminance, per pixel."""
    if mode == "max":
        return torch.maximum(ir, y_vis)
    if mode == "mean":
        return 0.5 * (ir + y_vis)
    raise ValueError(f"base fusion must be one of {BASE_MODES}, got {mode!r}")
