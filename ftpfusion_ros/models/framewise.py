"""Pieces shared by the frame-wise learned models (RPFNet, F3Net, ISFM): the luminance-model base
class, clip folding, the residual output head around a parameter-free fusion, CBAM attention."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.colour import restore_colour, rgb_to_y
from ..nn.base_fusion import BASE_MODES, fuse_base
from .base import FrameFusionModel, _check_clip


_SKIP_EPS = 1e-3  # keeps logit(base) finite; a base of exactly 0 or 1 maps to about -/+6.9


def simple_fusion(ir_y: torch.Tensor, vis_y: torch.Tensor, mode: str) -> torch.Tensor | None:
    """The parameter-free fusion an untrained network starts from (one of BASE_MODES, or 'none')."""
    if check_skip_mode(mode) == "none":
        return None
    return fuse_base(ir_y, vis_y, mode)


def residual_sigmoid(delta: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
    """sigmoid(logit(base) + delta): in (0, 1), equal to `base` when delta is 0 (plain sigmoid without base)."""
    if base is None:
        return torch.sigmoid(delta)
    return torch.sigmoid(torch.logit(base.to(delta.dtype), eps=_SKIP_EPS) + delta)


def fold_clip(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) clip -> (B*T, C, H, W) frames (frame-wise models batch the whole clip)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def unfold_clip(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of :func:`fold_clip`: (B*T, C, H, W) -> (B, C, T, H, W)."""
    bt, c, h, w = x.shape
    return x.reshape(batch, bt // batch, c, h, w).transpose(1, 2)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC layout for the feature maps. Measured on the project's 2-core CPU (one thread, 640x480): a
    16->16 3x3 conv 11.5 ms NHWC vs 43 ms NCHW; a 1->16 stem conv 2.5 ms with NHWC weights vs 22 ms.
    The models keep their conv weights NHWC too (load_state_dict copies in place and keeps that), so
    single-channel inputs, whose layout is ambiguous, also produce NHWC features. Values are identical."""
    return x.contiguous(memory_format=torch.channels_last)


def check_skip_mode(mode: str) -> str:
    if mode != "none" and mode not in BASE_MODES:
        raise ValueError(f"input_skip must be one of {(*BASE_MODES, 'none')}, got {mode!r}")
    return mode


def scale_init_(conv: nn.Conv2d, scale: float) -> nn.Conv2d:
    """Shrink a conv's default initialisation (not to zero, so gradients still reach earlier layers)."""
    with torch.no_grad():
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


def mlp_act() -> nn.Module:
    """Hidden activation of the attention MLPs. Choice: LeakyReLU instead of the papers' ReLU. With few
    hidden units (C / reduction = 2-4 here) and descriptors that share their sign pattern across images,
    every hidden unit can start dead for all inputs (measured: 2 of 6 seeds at 8 channels), which
    freezes that attention for good; a small negative slope keeps a gradient."""
    return nn.LeakyReLU(0.01, inplace=True)


class ChannelAttention(nn.Module):
    """CBAM channel attention: shared MLP over average- and max-pooled descriptors -> sigmoid weight."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), mlp_act(), nn.Conv2d(hidden, channels, 1))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 1, 1) channel weights in (0, 1)."""
        avg = F.adaptive_avg_pool2d(x, 1)
        mx = F.adaptive_max_pool2d(x, 1)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: conv over the channel-wise mean and max maps -> sigmoid map."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) spatial weights in (0, 1)."""
        pooled = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), 1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class LuminanceFusionNet(FrameFusionModel):
    """A frame-wise network that fuses luminance (BT.601 Y) and takes chroma from the visible image.

    Subclasses implement ``fuse_y(ir_y, vis_y)``; training sees the clip folded into the batch and
    ``aux['fused_y']``, the luminance before colour restoration (whose clamp would cut gradients where
    the chroma leaves the RGB gamut).
    """

    learned = True
    #: False (model option ``refine=false``): the parameter-free fusion the network refines (``input_skip``),
    #: same colour path, no network: what the network adds is measured against it
    refine_enabled: bool = True
    input_skip: str = "max"

    def set_refine(self, refine: bool) -> None:
        if not isinstance(refine, bool):
            raise ValueError(f"refine must be true or false, got {refine!r}")
        if not refine and self.input_skip == "none":
            raise ValueError("refine=false needs a base fusion to fall back to (input_skip 'max' or 'mean')")
        self.refine_enabled = refine

    def fuse_y(self, ir_y: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) IR and visible luminance -> (B,1,H,W) fused luminance in (0, 1)."""
        raise NotImplementedError

    def _luminance(self, ir_y: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        if not self.refine_enabled:
            return simple_fusion(ir_y, vis_y, self.input_skip)
        return self.fuse_y(ir_y, vis_y)

    def fuse_frame(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return restore_colour(self._luminance(ir, rgb_to_y(vis)), vis)

    def forward_train(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _check_clip(ir, vis)
        vis_f = fold_clip(vis)
        fused_y = self._luminance(fold_clip(ir), rgb_to_y(vis_f))
        b = ir.shape[0]
        return unfold_clip(restore_colour(fused_y, vis_f), b), {"fused_y": unfold_clip(fused_y, b)}
