"""F3Net's training objective (papers/f3net.txt, eq. 1-4), on luminance:

  L = 1 * L_pixel + 100 * L_gradient + 10 * L_ssim
  L_pixel    = (||F - IR||_F^2 + ||F - VIS||_F^2) / (H W)        (eq. 2: minimised by the sources' mean)
  L_gradient = || |Sobel F| - max(|Sobel IR|, |Sobel VIS|) ||      (eq. 3)
  L_ssim     = 1 - SSIM(F, max(IR, VIS))                           (eq. 4)
  + w_detail * multi-scale signed-gradient detail loss (losses.common.detail_loss; ours, default 0: the
    paper objective alone is flat at the max-fusion start on real video, see docs/models.md)
  + w_edge * (1 - differentiable Qabf) (losses.common.edge_transfer; ours, default 0)

F is the fused luminance (the model's ``aux['fused_y']`` when present, else the Y of the fused RGB).
Choice: eq. 3's "l2-norm" is reduced like eq. 2, as a mean of squares over pixels (``gradient_reduction
= 'mse'``); 'rms' (square root of that) and 'l1' (mean absolute) are the alternatives. With 'mse' the
paper's weight 100 brings the gradient term to the scale of the other two.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import check_weight, frame_luminances, intensity_target, sobel_magnitude, source_terms, ssim_loss
from .registry import register_loss

_REDUCTIONS = ("mse", "rms", "l1")


def gradient_loss(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, reduction: str = "mse") -> torch.Tensor:
    """Distance between the fused Sobel magnitude and the element-wise max of the sources' (N, 1, H, W)."""
    target = torch.maximum(sobel_magnitude(ir), sobel_magnitude(vis))
    diff = sobel_magnitude(fused) - target
    if reduction == "mse":
        return diff.pow(2).mean()
    if reduction == "rms":
        return torch.sqrt(diff.pow(2).mean((1, 2, 3)) + 1e-12).mean()
    return diff.abs().mean()


@register_loss("f3net")
class F3NetLoss(nn.Module):
    """Pixel + gradient + SSIM loss with the paper's weights (1, 100, 10)."""

    def __init__(self, w_pixel: float = 1.0, w_gradient: float = 100.0, w_ssim: float = 10.0,
                 gradient_reduction: str = "mse", w_detail: float = 0.0,
                 w_edge: float = 0.0) -> None:
        super().__init__()
        if gradient_reduction not in _REDUCTIONS:
            raise ValueError(f"gradient_reduction must be one of {_REDUCTIONS}, got {gradient_reduction!r}")
        self.w_pixel, self.w_gradient, self.w_ssim = w_pixel, w_gradient, w_ssim
        self.gradient_reduction = gradient_reduction
        self.w_detail = check_weight("w_detail", w_detail)
        self.w_edge = check_weight("w_edge", w_edge)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor,
                aux: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f, ir_y, vis_y = frame_luminances(ir, vis, fused, aux)
        pixel = (f - ir_y).pow(2).mean() + (f - vis_y).pow(2).mean()
        grad = gradient_loss(f, ir_y, vis_y, self.gradient_reduction)
        structure = ssim_loss(f, intensity_target(ir_y, vis_y))
        total = self.w_pixel * pixel + self.w_gradient * grad + self.w_ssim * structure
        terms = {"pixel": pixel, "gradient": grad, "ssim": structure}
        extra, extra_terms = source_terms(f, ir_y, vis_y, self.w_detail, self.w_edge)
        total = total + extra
        terms.update(extra_terms)
        return total, {k: v.detach() for k, v in terms.items()}
