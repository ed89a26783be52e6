"""Laplacian pyramids (Burt & Adelson 1983) and the pyramid fusion of two luminances.

One definition for the classical ``laplacian`` model and the ``laplacian`` base that FTPFusion's
stabiliser can filter (``ftpfusion_ros.nn.base_fusion``): detail levels chosen by the larger absolute
coefficient, the coarsest level averaged.
"""
from __future__ import annotations

import math

import torch

from .filters import separable_filter

_BINOMIAL5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # Burt & Adelson's generating kernel (a = 0.375)


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    return separable_filter(x, _BINOMIAL5)[..., ::2, ::2]


def _pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Expand by 2 (zero insertion + blur with 4x the kernel's mass), cropped to `size`."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return separable_filter(up, 2 * _BINOMIAL5)[..., :size[0], :size[1]]


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[L_0 (finest detail), ..., L_{n-2}, G_{n-1} (base)]; ``collapse`` inverts it exactly."""
    pyramid = []
    current = x
    for _ in range(levels - 1):
        down = _pyr_down(current)
        pyramid.append(current - _pyr_up(down, current.shape[-2:]))
        current = down
    pyramid.append(current)
    return pyramid


def collapse_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    out = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        out = detail + _pyr_up(out, detail.shape[-2:])
    return out


def effective_levels(height: int, width: int, levels: int, min_base_size: int = 4) -> int:
    """``levels`` reduced for frames too small to halve that often (the coarsest level keeps at least
    ``min_base_size`` pixels a side); at least 1 (plain average)."""
    smallest = min(height, width)
    halvings = int(math.floor(math.log2(smallest / min_base_size))) if smallest >= min_base_size else 0
    return max(1, min(levels, halvings + 1))


def fuse_laplacian(ir: torch.Tensor, y_vis: torch.Tensor, levels: int = 4, min_base_size: int = 4) -> torch.Tensor:
    """Pyramid fusion of (B, 1, H, W) luminances: max-abs detail coefficients, averaged coarsest level."""
    n = effective_levels(*ir.shape[-2:], levels, min_base_size)
    pyr = laplacian_pyramid(torch.cat([ir, y_vis], dim=1), n)  # both sources in one pass
    fused = [torch.where(d[:, :1].abs() >= d[:, 1:].abs(), d[:, :1], d[:, 1:]) for d in pyr[:-1]]
    fused.append(pyr[-1].mean(dim=1, keepdim=True))
    return collapse_pyramid(fused)
