"""The one YCbCr convention of the project: ITU-R BT.601, full range, on tensors in [0, 1].

Y = 0.299 R + 0.587 G + 0.114 B; Cb/Cr are offset by 0.5 so all three channels live in [0, 1].
Every model, loss, metric and the runtime use these functions, so colour is restored identically
wherever a luminance-only fusion is turned back into an RGB frame.
"""
from __future__ import annotations

import torch

from ..bt601 import KB as _KB, KG as _KG, KR as _KR


def rgb_to_y(rgb: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Luminance of an RGB tensor along channel dimension `dim`, keeping that dimension (size 1)."""
    r, g, b = rgb.unbind(dim)
    return (_KR * r + _KG * g + _KB * b).unsqueeze(dim)


def rgb_to_ycbcr(rgb: torch.Tensor, dim: int = 1) -> torch.Tensor:
    r, g, b = rgb.unbind(dim)
    y = _KR * r + _KG * g + _KB * b
    cb = (b - y) / (2.0 * (1.0 - _KB)) + 0.5
    cr = (r - y) / (2.0 * (1.0 - _KR)) + 0.5
    return torch.stack((y, cb, cr), dim)


def ycbcr_to_rgb(ycbcr: torch.Tensor, dim: int = 1) -> torch.Tensor:
    y, cb, cr = ycbcr.unbind(dim)
    cb = cb - 0.5
    cr = cr - 0.5
    r = y + 2.0 * (1.0 - _KR) * cr
    b = y + 2.0 * (1.0 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    return torch.stack((r, g, b), dim)


def restore_colour(fused_y: torch.Tensor, visible_rgb: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """RGB frame whose luminance is `fused_y` and whose chroma is the visible image's, clamped to [0, 1]."""
    ycbcr = rgb_to_ycbcr(visible_rgb, dim)
    _, cb, cr = ycbcr.unbind(dim)
    return ycbcr_to_rgb(torch.stack((fused_y.squeeze(dim), cb, cr), dim), dim).clamp(0.0, 1.0)
