"""FTPFusion's training objective: the paper's terms (3.3, MODELS.md) plus the terms of the node-matched
recipe, each with a weight from the train config's ``loss:`` mapping (0 switches a term off).

Paper terms:
  intensity: L1(Y_F, max(IR, Y_V))
  gradient : L1(|Sobel Y_F|, max(|Sobel IR|, |Sobel Y_V|))
  colour   : L1(CbCr_F, CbCr_V)        (BT.601, the project's convention)
  otc      : offset-aware temporal consistency on low frequencies (:mod:`.otc`)
Node-matched terms (need the aux outputs of FTPFusion's causal ``forward_train``):
  base     : L1(G * Y_F, G * base): the low frequencies stay those of the stabilised base (G: Gaussian
             low-pass), so the network refines detail and cannot bring back flicker or shift brightness;
             with ``base_target: anchor``, of the base after the model's gate (FTPFusion's ``gate_base``
             choosing per pixel between two stabilised bases: the choice is free, the residual is held)
  detail   : multi-scale signed-gradient L1 to the choose-max-abs gradients of the two sources
             (:func:`.common.detail_loss`): what the base loses
  edge     : 1 - differentiable Qabf of the output against the two sources (:func:`.common.edge_transfer`):
             the edges of both cameras at their own strength and orientation, which the stabilised base
             softens
  temporal : consecutive outputs' residuals (Y_F - base) agree after the global shift between them, where
             the base itself agrees (a bilateral weight on the aligned base difference): the network may
             not add detail that flickers from frame to frame
IR and visible are the clip's sources, or the model's de-flickered ones when it passes them in ``aux``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn.stabilise import TemporalStabiliser
from .common import (check_weight, chroma, detail_loss, edge_transfer, flatten_clip, gaussian_blur, intensity_target,
                     luminance, sobel_magnitude)
from .otc import OTCLoss
from .registry import register_loss

_TERMS = ("intensity", "gradient", "colour", "otc", "base", "detail", "edge", "temporal")


@register_loss("ftpfusion")
class FTPFusionLoss(nn.Module):
    def __init__(self, intensity: float = 1.0, gradient: float = 2.0, colour: float = 1.0, otc: float = 0.5,
                 base: float = 0.0, detail: float = 0.0, edge: float = 0.0, temporal: float = 0.0,
                 otc_options: dict[str, Any] | None = None, base_sigma: float = 2.0, detail_scales: int = 3,
                 temporal_sigma: float = 0.03, base_target: str = "base") -> None:
        super().__init__()
        if base_target not in ("base", "anchor"):
            raise ValueError(f"loss base_target must be 'base' or 'anchor', got {base_target!r}")
        self.base_target = base_target
        values = dict(intensity=intensity, gradient=gradient, colour=colour, otc=otc, base=base, detail=detail,
                      edge=edge, temporal=temporal)
        if base_sigma <= 0 or temporal_sigma <= 0 or int(detail_scales) < 1:
            raise ValueError(f"loss needs base_sigma > 0, temporal_sigma > 0, detail_scales >= 1; got "
                             f"{base_sigma}, {temporal_sigma}, {detail_scales}")
        self.weights = {k: check_weight(k, v) for k, v in values.items()}
        self.base_sigma = float(base_sigma)
        self.detail_scales = int(detail_scales)
        self.temporal_sigma = float(temporal_sigma)
        try:
            self.otc = OTCLoss(**(otc_options or {}))
        except TypeError as exc:
            raise ValueError(f"invalid otc_options {otc_options}: {exc}") from None

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor,
                aux: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        aux = aux or {}
        # Sources the model declares as its targets (FTPFusion with its stabiliser: de-flickered ones)
        if "ir" in aux and "vis" in aux:
            ir, vis = aux["ir"], aux["vis"]
        needs_base = [k for k in ("base", "temporal") if self.weights[k] > 0 and "base" not in aux]
        if self.weights["base"] > 0 and self.base_target not in aux:
            needs_base.append("base")
        if needs_base:
            raise ValueError(f"loss terms {needs_base} need the model's base (FTPFusion with train_targets: causal)")
        # Losses in fp32 even when the model ran under autocast.
        ir, vis, fused = ir.float(), vis.float(), fused.float()
        ir_f, vis_f, fused_f = flatten_clip(ir), flatten_clip(vis), flatten_clip(fused)
        y_f, y_v = luminance(fused_f), luminance(vis_f)
        terms: dict[str, torch.Tensor] = {}
        if self.weights["intensity"] > 0:
            terms["intensity"] = (y_f - intensity_target(ir_f, vis_f)).abs().mean()
        if self.weights["gradient"] > 0:
            grad_target = torch.maximum(sobel_magnitude(ir_f), sobel_magnitude(y_v))
            terms["gradient"] = (sobel_magnitude(y_f) - grad_target).abs().mean()
        terms["colour"] = (chroma(fused_f) - chroma(vis_f)).abs().mean()
        if self.weights["base"] > 0:
            size = 4 * int(round(self.base_sigma)) + 1
            base_f = flatten_clip(aux[self.base_target].float())
            terms["base"] = (gaussian_blur(y_f, size, self.base_sigma)
                             - gaussian_blur(base_f, size, self.base_sigma)).abs().mean()
        if self.weights["detail"] > 0:
            terms["detail"] = detail_loss(y_f, ir_f, y_v, self.detail_scales)
        if self.weights["edge"] > 0:
            terms["edge"] = 1.0 - edge_transfer(y_f, luminance(ir_f), y_v).mean()
        if self.weights["temporal"] > 0:
            terms["temporal"] = self._temporal(fused, aux)
        total = sum(self.weights[k] * v for k, v in terms.items())
        if self.weights["otc"] > 0:
            otc, otc_terms = self.otc(ir, vis, fused)
            terms["otc"] = otc
            total = total + self.weights["otc"] * otc
            terms.update(otc_terms)
        out = {k: v.detach() for k, v in terms.items()}
        out["total"] = total.detach()
        return total, out

    def _temporal(self, fused: torch.Tensor, aux: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean bilateral-weighted |r_t - align(r_{t-1})| over consecutive targets, r = Y_F - base."""
        if fused.dim() != 5 or fused.shape[2] < 2 or "shift" not in aux:
            return fused.sum() * 0.0
        y = luminance(fused.transpose(1, 2).flatten(0, 1)).unflatten(0, fused.shape[:1] + fused.shape[2:3])
        base = aux["base"].float().transpose(1, 2)  # (B, K, 1, H, W)
        res = y - base
        terms = []
        for k in range(1, fused.shape[2]):
            d = aux["shift"][:, k - 1].float()
            prev_res = TemporalStabiliser.translate(res[:, k - 1], d)
            with torch.no_grad():
                prev_base = TemporalStabiliser.translate(base[:, k - 1], d)
                w = torch.exp(-(base[:, k] - prev_base).square() / (2 * self.temporal_sigma ** 2))
            terms.append((w * (res[:, k] - prev_res).abs()).mean())
        return torch.stack(terms).mean()
