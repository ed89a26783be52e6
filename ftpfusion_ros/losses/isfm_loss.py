"""ISFM's training objective (papers/isfm.txt, eq. 19-22), on luminance:

  L = L_cont + alpha * L_int + lambda * L_grad + gamma * L_ssim          alpha, lambda, gamma = 5, 5, 0.5
  L_cont = mean|F - IR| + mean|F - VIS|                                   (eq. 20)
  L_int  = mean|F - max(IR, VIS)|                                         (eq. 21)
  L_grad = mean| |grad F| - max(|grad IR|, |grad VIS|) |                 (eq. 21, Sobel)
  L_ssim = (1 - SSIM(F, IR)) / 2 + (1 - SSIM(F, VIS)) / 2                 (eq. 22)
  + w_detail * multi-scale signed-gradient detail loss (losses.common.detail_loss; ours, default 0: the
    paper objective alone is flat at the max-fusion start on real video, see docs/models.md)
  + w_edge * (1 - differentiable Qabf) (losses.common.edge_transfer; ours, default 0)

F is the fused luminance (the model's ``aux['fused_y']`` when present, else the Y of the fused RGB);
IR and VIS are the sources' luminance. |grad| is the project's Sobel magnitude (losses.common).
"""
from __future__ import annotations

import torch
from torch import nn

from .common import check_weight, frame_luminances, intensity_target, sobel_magnitude, source_terms, ssim_loss
from .registry import register_loss


@register_loss("isfm")
class ISFMLoss(nn.Module):
    """Content + intensity + gradient + SSIM loss with the paper's weights (1, 5, 5, 0.5)."""

    def __init__(self, w_content: float = 1.0, w_intensity: float = 5.0, w_gradient: float = 5.0,
                 w_ssim: float = 0.5, w_detail: float = 0.0,
                 w_edge: float = 0.0) -> None:
        super().__init__()
        self.w_content, self.w_intensity, self.w_gradient, self.w_ssim = w_content, w_intensity, w_gradient, w_ssim
        self.w_detail = check_weight("w_detail", w_detail)
        self.w_edge = check_weight("w_edge", w_edge)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor,
                aux: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f, ir_y, vis_y = frame_luminances(ir, vis, fused, aux)
        content = (f - ir_y).abs().mean() + (f - vis_y).abs().mean()
        intensity = (f - intensity_target(ir_y, vis_y)).abs().mean()
        grad_target = torch.maximum(sobel_magnitude(ir_y), sobel_magnitude(vis_y))
        gradient = (sobel_magnitude(f) - grad_target).abs().mean()
        structure = 0.5 * (ssim_loss(f, ir_y) + ssim_loss(f, vis_y))
        total = (self.w_content * content + self.w_intensity * intensity + self.w_gradient * gradient
                 + self.w_ssim * structure)
        terms = {"content": content, "intensity": intensity, "gradient": gradient, "ssim": structure}
        extra, extra_terms = source_terms(f, ir_y, vis_y, self.w_detail, self.w_edge)
        total = total + extra
        terms.update(extra_terms)
        return total, {k: v.detach() for k, v in terms.items()}
