"""Visual state-space (VMamba-style) building blocks on channels-first feature maps.

* :class:`SelectiveScan2D` - the SS2D core: input-dependent step sizes dt and projections B, C per
  scan direction (Mamba's "selection"), four-direction selective scan (row-major, column-major and
  both reversed; :mod:`ftpfusion_ros.nn.selective_scan`), the four outputs summed back on the grid.
* :class:`VSSBlock` - the visual state-space block: x + Linear(LN(SS2D(SiLU(DWConv(X)))) * SiLU(Z)),
  with X, Z = Linear(LN(x)) (VMamba's VSS block without its optional MLP).

Initialisation follows Mamba: A = -[1..N] per channel (stored as log), D = 1, dt bias set so that
softplus(bias) is log-uniform in [dt_min, dt_max].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .selective_scan import SCAN_DIRECTIONS, cross_merge, cross_scan, selective_scan

__all__ = ["LayerNorm2d", "SelectiveScan2D", "VSSBlock", "resolve_dt_rank"]


def resolve_dt_rank(dt_rank: int | str | None, d_model: int) -> int:
    """Mamba's default rank of the dt projection: ceil(d_model / 16)."""
    if dt_rank in (None, "auto"):
        return max(1, math.ceil(d_model / 16))
    if not isinstance(dt_rank, int) or dt_rank < 1:
        raise ValueError(f"dt_rank must be a positive int or 'auto', got {dt_rank!r}")
    return dt_rank


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (each pixel normalised on its own)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SelectiveScan2D(nn.Module):
    """(B, D, H, W) -> (B, D, H, W): SS2D's four-direction selective scan with its own parameters."""

    def __init__(self, d_inner: int, d_state: int = 8, dt_rank: int = 1, dt_min: float = 1e-3,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4, backend: str = "auto") -> None:
        super().__init__()
        k = SCAN_DIRECTIONS
        self.d_inner, self.d_state, self.dt_rank, self.backend = d_inner, d_state, dt_rank, backend
        # per direction: x -> (dt (rank R), B (N), C (N)), then dt: R -> D (Mamba's x_proj / dt_proj)
        bound = d_inner ** -0.5
        self.x_proj_weight = nn.Parameter(torch.empty(k, dt_rank + 2 * d_state, d_inner).uniform_(-bound, bound))
        self.dt_proj_weight = nn.Parameter(torch.empty(k, d_inner, dt_rank).uniform_(-dt_rank ** -0.5, dt_rank ** -0.5))
        dt = torch.exp(torch.rand(k, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp_min(dt_init_floor)
        self.dt_proj_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k * d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))  # (K*D, N); A = -exp(A_log) < 0 keeps the scan stable
        self.D = nn.Parameter(torch.ones(k * d_inner))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w = x.shape
        length = h * w
        xs = cross_scan(x)  # (b, K, d, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight.to(x.dtype))
        dts, bs, cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_proj_weight.to(x.dtype))
        y = selective_scan(
            xs.reshape(b, -1, length), dts.reshape(b, -1, length), -torch.exp(self.A_log.float()),
            bs.contiguous(), cs.contiguous(), self.D.float(), None, self.dt_proj_bias.float().flatten(),
            delta_softplus=True, backend=self.backend)
        return cross_merge(y.view(b, SCAN_DIRECTIONS, d, length), h, w)


class VSSBlock(nn.Module):
    """Visual state-space block on (B, C, H, W) maps, residual: x + SS2D(LN(x))."""

    def __init__(self, channels: int, d_state: int = 8, expand: float = 2.0, dt_rank: int | str | None = "auto",
                 conv_kernel: int = 3, backend: str = "auto") -> None:
        super().__init__()
        d_inner = int(expand * channels)
        self.norm = nn.LayerNorm(channels)
        self.in_proj = nn.Linear(channels, 2 * d_inner, bias=False)
        self.conv = nn.Conv2d(d_inner, d_inner, conv_kernel, padding=conv_kernel // 2, groups=d_inner)
        self.ssm = SelectiveScan2D(d_inner, d_state, resolve_dt_rank(dt_rank, channels), backend=backend)
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xz = self.in_proj(self.norm(x.permute(0, 2, 3, 1)))  # channels-last for the linear layers
        xi, z = xz.chunk(2, dim=-1)
        xi = F.silu(self.conv(xi.permute(0, 3, 1, 2).contiguous()))
        y = self.out_norm(self.ssm(xi).permute(0, 2, 3, 1)) * F.silu(z)
        return x + self.out_proj(y).permute(0, 3, 1, 2)
