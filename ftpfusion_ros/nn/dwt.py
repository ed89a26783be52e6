"""One level of the orthonormal 2-D Haar wavelet transform on (..., H, W) tensors, and its inverse.

For each 2x2 block [[a, b], [c, d]] (rows, then columns):

    LL = (a + b + c + d) / 2      average (low frequency)
    LH = (a + b - c - d) / 2      top minus bottom: horizontal edges (variation along H)
    HL = (a - b + c - d) / 2      left minus right: vertical edges (variation along W)
    HH = (a - b - c + d) / 2      diagonal detail

The transform is orthonormal (an energy-preserving rotation of each block), so :func:`idwt2` inverts
:func:`dwt2` exactly (up to float rounding) and gradients pass through both unchanged in scale.
H and W must be even. Implemented with strided slicing: no convolution, exact on any device/dtype.
"""
from __future__ import annotations

import torch

__all__ = ["dwt2", "idwt2"]


def dwt2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., H, W) -> (LL, LH, HL, HH), each (..., H/2, W/2)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"Haar DWT needs even height and width, got {h}x{w}")
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    s, t = a + b, c + d      # row sums of the top and bottom rows
    p, q = a - b, c - d      # row differences
    return (s + t) * 0.5, (s - t) * 0.5, (p + q) * 0.5, (p - q) * 0.5


def idwt2(ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dwt2`: four (..., h, w) bands -> (..., 2h, 2w)."""
    if not (ll.shape == lh.shape == hl.shape == hh.shape):
        raise ValueError(f"sub-bands differ in shape: {tuple(ll.shape)}, {tuple(lh.shape)}, "
                         f"{tuple(hl.shape)}, {tuple(hh.shape)}")
    s, t = ll + lh, ll - lh  # = a + b and c + d (the top and bottom row sums)
    p, q = hl + hh, hl - hh  # = a - b and c - d
    a = (s + p) * 0.5
    b = (s - p) * 0.5
    c = (t + q) * 0.5
    d = (t - q) * 0.5
    # interleave: rows (a b / c d) -> (..., h, 2, w, 2) -> (..., 2h, 2w)
    top = torch.stack((a, b), dim=-1)
    bottom = torch.stack((c, d), dim=-1)
    out = torch.stack((top, bottom), dim=-3)  # (..., h, 2, w, 2)
    *lead, h, _, w, _ = out.shape
    return out.reshape(*lead, 2 * h, 2 * w)
