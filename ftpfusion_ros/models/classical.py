"""Classical (training-free) fusion baselines: the floor every learned model must beat, and a fallback
when no checkpoint is available.

All of them fuse luminance (BT.601 Y of the visible image with the IR frame) and restore colour from
the visible image (:func:`ftpfusion_ros.nn.colour.restore_colour`). They run in float32 whatever the
input precision (their small epsilons and pyramid differences do not survive fp16), batched, on CPU
or CUDA, for any frame size.

  * ``average``        — mean of the two luminances.
  * ``max_luminance``  — per-pixel maximum of the two luminances.
  * ``laplacian``      — Laplacian pyramid (Burt & Adelson): base level averaged, detail levels chosen by
                         larger absolute coefficient.
  * ``two_scale``      — two-scale saliency fusion (Bavirisetti & Dhuli 2016): mean-filter base/detail split,
                         visual saliency = |mean filter - median filter|, detail layers weighted by
                         normalised saliency, base layers averaged.
  * ``guided_filter``  — GFF (Li, Kang & Hu 2013): mean-filter base/detail split, saliency = Gaussian-smoothed
                         |Laplacian|, binary max-saliency weight maps refined by guided filtering with the
                         source as guide (large radius/eps for the base, small for the detail).
"""
from __future__ import annotations


import torch

from ..nn.base_fusion import fuse_base
from ..nn.colour import restore_colour, rgb_to_y
from ..nn.filters import box_filter, gaussian_blur, laplacian, median_filter
from ..nn.pyramid import effective_levels, fuse_laplacian
from .base import FrameFusionModel
from .registry import register_model

_EPS = 1e-12


class LuminanceFusionModel(FrameFusionModel):
    """Frame-wise model that fuses IR with the visible luminance and keeps the visible chroma."""

    learned = False
    temporal = False

    def fuse_luminance(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) IR and visible luminance in [0, 1] (float32) -> fused luminance (B,1,H,W)."""
        raise NotImplementedError

    def fuse_frame(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        if ir.dim() != 4 or vis.dim() != 4 or ir.shape[1] != 1 or vis.shape[1] != 3:
            raise ValueError(f"expected IR (B,1,H,W) and visible (B,3,H,W), "
                             f"got {tuple(ir.shape)} and {tuple(vis.shape)}")
        if ir.shape[0] != vis.shape[0] or ir.shape[2:] != vis.shape[2:]:
            raise ValueError(f"IR {tuple(ir.shape)} and visible {tuple(vis.shape)} differ in batch or size")
        out_dtype = vis.dtype if vis.is_floating_point() else torch.float32
        # float32 even inside an autocast region (the engine's fp16/bf16 mode): guided-filter variances
        # with eps 1e-6 and pyramid differences do not survive half precision.
        with torch.autocast(device_type=vis.device.type, enabled=False):
            ir32, vis32 = ir.float(), vis.float()
            fused_y = self.fuse_luminance(ir32, rgb_to_y(vis32)).clamp(0.0, 1.0)
            return restore_colour(fused_y, vis32).to(out_dtype)


def _check_size(name: str, value: int, minimum: int = 1, odd: bool = True) -> int:
    value = int(value)
    if value < minimum or (odd and value % 2 == 0):
        raise ValueError(f"{name} must be {'an odd integer ' if odd else 'an integer '}>= {minimum}, got {value}")
    return value


@register_model("average")
class AverageFusion(LuminanceFusionModel):
    """Mean of the IR and visible luminances."""

    def fuse_luminance(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        return fuse_base(ir, vis_y, "mean")


@register_model("max_luminance")
class MaxLuminanceFusion(LuminanceFusionModel):
    """Per-pixel maximum of the IR and visible luminances (keeps warm targets and bright visible detail)."""

    def fuse_luminance(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        return fuse_base(ir, vis_y, "max")


@register_model("laplacian")
class LaplacianPyramidFusion(LuminanceFusionModel):
    """Laplacian pyramid fusion: average of the base level, max-abs choice of every detail level.

    ``levels`` counts all levels including the base (1 = plain average); it is reduced for frames too
    small to halve that often (the coarsest level keeps at least ``min_base_size`` pixels a side).
    """

    def __init__(self, levels: int = 4, min_base_size: int = 4) -> None:
        super().__init__()
        self.levels = _check_size("levels", levels, odd=False)
        self.min_base_size = _check_size("min_base_size", min_base_size, odd=False)

    def effective_levels(self, height: int, width: int) -> int:
        return effective_levels(height, width, self.levels, self.min_base_size)

    def fuse_luminance(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        return fuse_laplacian(ir, vis_y, self.levels, self.min_base_size)


# ------------------------------------------------------------------------------------------- two-scale
@register_model("two_scale")
class TwoScaleSaliencyFusion(LuminanceFusionModel):
    """Two-scale image fusion with visual saliency (Bavirisetti & Dhuli, Infrared Phys. Technol. 2016).

    base = mean filter (``base_size``) of each source, detail = source - base; saliency
    ξ = |mean filter (``saliency_mean_size``) - median filter (``median_size``)|; detail weights ξ_n / Σ ξ;
    fused = average of the bases + weighted sum of the details.
    """

    def __init__(self, base_size: int = 35, saliency_mean_size: int = 35, median_size: int = 3) -> None:
        super().__init__()
        self.base_size = _check_size("base_size", base_size)
        self.saliency_mean_size = _check_size("saliency_mean_size", saliency_mean_size)
        self.median_size = _check_size("median_size", median_size)

    def fuse_luminance(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        src = torch.cat([ir, vis_y], dim=1)
        base = box_filter(src, self.base_size // 2)
        detail = src - base
        mean = base if self.saliency_mean_size == self.base_size else box_filter(src, self.saliency_mean_size // 2)
        saliency = (mean - median_filter(src, self.median_size)).abs() + _EPS  # equal weights where both are flat
        weights = saliency / saliency.sum(dim=1, keepdim=True)
        return base.mean(dim=1, keepdim=True) + (weights * detail).sum(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------------- guided filter
def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter, channel by channel (guide and src of the same shape), box means over
    the in-image part of each (2r+1)^2 window."""
    c = guide.shape[1]
    # Variances are differences of means: float32 running sums (error ~1e-5) are fine next to a large
    # eps (GFF's base layer, 0.3), not next to a tiny one (its detail layer, 1e-6).
    precise = eps < 1e-3
    means = box_filter(torch.cat([guide, src, guide * src, guide * guide], dim=1), radius, border="normalized",
                       precise=precise)
    mean_i, mean_p, corr_ip, corr_ii = means.split(c, dim=1)
    var_i = corr_ii - mean_i * mean_i
    a = (corr_ip - mean_i * mean_p) / (var_i + eps)
    b = mean_p - a * mean_i
    mean_a, mean_b = box_filter(torch.cat([a, b], dim=1), radius, border="normalized",
                                precise=precise).split(c, dim=1)
    return mean_a * guide + mean_b


@register_model("guided_filter")
class GuidedFilterFusion(LuminanceFusionModel):
    """Image fusion with guided filtering (GFF; Li, Kang & Hu, IEEE TIP 2013), two sources.

    Constants default to the paper's: base mean filter 31x31, Laplacian 3x3, saliency Gaussian
    r_g = 5, sigma_g = 5, base weights G(r1 = 45, eps1 = 0.3), detail weights G(r2 = 7, eps2 = 1e-6).
    """

    def __init__(self, base_size: int = 31, saliency_radius: int = 5, saliency_sigma: float = 5.0,
                 base_radius: int = 45, base_eps: float = 0.3, detail_radius: int = 7,
                 detail_eps: float = 1e-6) -> None:
        super().__init__()
        self.base_size = _check_size("base_size", base_size)
        self.saliency_radius = _check_size("saliency_radius", saliency_radius, minimum=0, odd=False)
        self.saliency_sigma = float(saliency_sigma)
        self.base_radius = _check_size("base_radius", base_radius, odd=False)
        self.detail_radius = _check_size("detail_radius", detail_radius, odd=False)
        self.base_eps, self.detail_eps = float(base_eps), float(detail_eps)
        if self.saliency_sigma <= 0 or self.base_eps <= 0 or self.detail_eps <= 0:
            raise ValueError("saliency_sigma, base_eps and detail_eps must be > 0")

    def fuse_luminance(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        src = torch.cat([ir, vis_y], dim=1)
        base = box_filter(src, self.base_size // 2)
        detail = src - base
        saliency = gaussian_blur(laplacian(src).abs(), self.saliency_sigma, self.saliency_radius)
        # Binary weight maps: 1 where the source is the most salient (ties go to IR, so identical inputs
        # give weights 1/0 and the output equals the input).
        p_ir = (saliency[:, :1] >= saliency[:, 1:]).to(src.dtype)
        p = torch.cat([p_ir, 1.0 - p_ir], dim=1)
        w_base = guided_filter(src, p, self.base_radius, self.base_eps).clamp_min(0) + _EPS
        w_detail = guided_filter(src, p, self.detail_radius, self.detail_eps).clamp_min(0) + _EPS
        w_base = w_base / w_base.sum(dim=1, keepdim=True)
        w_detail = w_detail / w_detail.sum(dim=1, keepdim=True)
        return (w_base * base).sum(dim=1, keepdim=True) + (w_detail * detail).sum(dim=1, keepdim=True)
