"""Helpers shared by the learned models' contract tests."""
from __future__ import annotations

import torch

from ftpfusion_ros.losses import build_loss
from ftpfusion_ros.models import build_model
from ftpfusion_ros.nn.colour import rgb_to_ycbcr


def clip(b: int, t: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded IR/visible clip: smooth content plus noise, so HF energy differs between blocks."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 1, t, h // 8 + 1, w // 8 + 1, generator=g)
    base = torch.nn.functional.interpolate(base, size=(t, h, w), mode="trilinear", align_corners=False)
    ir = (base + 0.2 * torch.rand(b, 1, t, h, w, generator=g)).clamp(0, 1)
    vis = (0.6 * torch.rand(b, 3, t, h, w, generator=g) + 0.4 * base).clamp(0, 1)
    return ir, vis


def assert_optimisation_lowers_the_loss(name: str, config: dict, ir: torch.Tensor, vis: torch.Tensor,
                                        steps: int = 3) -> None:
    """A few Adam steps on a fixed batch with the model's paper loss lower that loss."""
    torch.manual_seed(0)
    model = build_model(name, config).train()
    loss = build_loss(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    values = []
    for _ in range(steps):
        total, _ = loss(ir, vis, *model.forward_train(ir, vis))
        values.append(total.item())
        opt.zero_grad()
        total.backward()
        opt.step()
    assert values[-1] < values[0], values


def assert_gradients_reach_every_parameter(name: str, config: dict, ir: torch.Tensor,
                                           vis: torch.Tensor) -> dict[str, torch.Tensor]:
    """One backward pass of the model's paper loss gives every parameter a finite, nonzero gradient;
    returns the loss terms for the caller's own checks."""
    torch.manual_seed(0)
    model = build_model(name, config).train()
    fused, aux = model.forward_train(ir, vis)
    total, terms = build_loss(name)(ir, vis, fused, aux)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.abs().max() > 0]
    assert not missing, missing
    assert not zero, zero
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    return terms


def assert_colour_preserving_max_fusion(out: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor,
                                        luma_tol: float, chroma_tol: float) -> None:
    """`out` is a valid RGB clip whose luminance is ~max(IR, visible Y) and whose chroma is the visible
    image's: what the residual heads of the learned models output before training."""
    assert out.shape == vis.shape
    assert out.min() >= 0 and out.max() <= 1
    ycc_out, ycc_vis = rgb_to_ycbcr(out), rgb_to_ycbcr(vis)
    assert (ycc_out[:, :1] - torch.maximum(ir, ycc_vis[:, :1])).abs().mean() < luma_tol
    assert (ycc_out[:, 1:] - ycc_vis[:, 1:]).abs().mean() < chroma_tol
