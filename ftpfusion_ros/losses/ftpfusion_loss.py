"""FTPFusion's training objective (paper 3.3, MODELS.md): intensity + gradient + colour + OTC.

  intensity: L1(Y_F, max(IR, Y_V))
  gradient : L1(|Sobel Y_F|, max(|Sobel IR|, |Sobel Y_V|))
  colour   : L1(CbCr_F, CbCr_V)        (BT.601, the project's convention)
  otc      : offset-aware temporal consistency on low frequencies (:mod:`.otc`)
IR and visible are the clip's sources, or the model's de-flickered ones when it passes them in ``aux``
(FTPFusion with its temporal stabiliser).
Weights are choices (the paper's are unreadable in our copy): 1, 2, 1, 0.5 by default, set from the
train config's ``loss:`` mapping.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common import chroma, flatten_clip, intensity_target, luminance, sobel_magnitude
from .otc import OTCLoss
from .registry import register_loss


@register_loss("ftpfusion")
class FTPFusionLoss(nn.Module):
    def __init__(self, intensity: float = 1.0, gradient: float = 2.0, colour: float = 1.0, otc: float = 0.5,
                 otc_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        for name, value in (("intensity", intensity), ("gradient", gradient), ("colour", colour), ("otc", otc)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"loss weight {name!r} must be a number >= 0, got {value!r}")
        self.weights = {"intensity": float(intensity), "gradient": float(gradient), "colour": float(colour),
                        "otc": float(otc)}
        try:
            self.otc = OTCLoss(**(otc_options or {}))
        except TypeError as exc:
            raise ValueError(f"invalid otc_options {otc_options}: {exc}") from None

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor,
                aux: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # Sources the model declares as its targets (FTPFusion with its stabiliser: de-flickered ones)
        if aux and "ir" in aux and "vis" in aux:
            ir, vis = aux["ir"], aux["vis"]
        # Losses in fp32 even when the model ran under autocast.
        ir, vis, fused = ir.float(), vis.float(), fused.float()
        ir_f, vis_f, fused_f = flatten_clip(ir), flatten_clip(vis), flatten_clip(fused)
        y_f, y_v = luminance(fused_f), luminance(vis_f)
        terms: dict[str, torch.Tensor] = {}
        terms["intensity"] = (y_f - intensity_target(ir_f, vis_f)).abs().mean()
        grad_target = torch.maximum(sobel_magnitude(ir_f), sobel_magnitude(y_v))
        terms["gradient"] = (sobel_magnitude(y_f) - grad_target).abs().mean()
        terms["colour"] = (chroma(fused_f) - chroma(vis_f)).abs().mean()
        total = sum(self.weights[k] * v for k, v in terms.items())
        if self.weights["otc"] > 0:
            otc, otc_terms = self.otc(ir, vis, fused)
            terms["otc"] = otc
            total = total + self.weights["otc"] * otc
            terms.update(otc_terms)
        out = {k: v.detach() for k, v in terms.items()}
        out["total"] = total.detach()
        return total, out
