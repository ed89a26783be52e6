"""RPFNet: Residual Prior-driven Frequency-aware Network (Guan et al., ACM MM 2025), a frame-wise seed model.

Pipeline on the luminance channel (BT.601 Y of the visible frame, the IR frame as is):

  F_F^0 = CB(concat(IR, VIS_Y))          coarse fused features
  F_R^0 = CB(M),  M = IR - VIS_Y          residual-prior features
  N stages:  CPM (eq. 1-2)  ->  RPM on the residual branch (eq. 3), FDFM on the fused branch (eq. 4)
  fused Y = reconstruction head(F_F^N + F_R^N) with a sigmoid; colour restored from the visible frame
  training only: auxiliary decoder(F_R^N) -> M', supervised by the saliency structure loss (eq. 5-7)

CB ("convolutional block") is conv 3x3 -> BatchNorm -> ReLU. Choices where the text is silent (all in
``configs/rpfnet.yaml``):
  * CA / SA in the RPM are CBAM-style channel and spatial attention (the cited NestFuse attention
    fuses two inputs; here there is one);
  * the FDFM's frequency-domain 1x1 CB acts on the real and imaginary parts of the (real, orthonormal)
    2-D FFT stacked as channels, and the FFT runs in float32 outside autocast (cuFFT in half precision
    only takes power-of-two sizes); ``irfft2`` with the input's size restores odd sizes exactly;
  * reconstruction head = CB(C -> C) and a 3x3 conv to one logit channel (a second full CB would end in
    ReLU and leave the sigmoid only its upper half); the sigmoid is taken around the logit of a simple
    fusion of the inputs (``input_skip``) with a small-initialised last conv, so an untrained network
    already outputs that simple fusion;
  * auxiliary decoder = CB(C -> C/2) and a 3x3 conv to one channel with tanh: M' lives in [-1, 1]
    like M, which also bounds the loss terms that reward a large response (eq. 6-7).

All convolutions are stride 1 and the FFT takes any size: ``size_multiple`` = 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.colour import restore_colour, rgb_to_y
from .base import _check_clip
from .framewise import (ChannelAttention, LuminanceFusionNet, SpatialAttention, channels_last, check_skip_mode,
                        fold_clip, residual_sigmoid, scale_init_, simple_fusion, unfold_clip)
from .registry import register_model


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> activation ('relu', 'sigmoid' or 'none').

    In eval mode the BatchNorm is folded into the conv on the fly (one pass over the feature map
    instead of two; same result up to float rounding); training uses the plain conv -> BN path.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, act: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            y = self.bn(self.conv(x))
        else:
            scale = self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)
            bias = self.bn.bias - self.bn.running_mean * scale
            y = F.conv2d(x, self.conv.weight * scale[:, None, None, None], bias, padding=self.conv.padding)
        if self.act == "relu":
            return F.relu(y, inplace=True)
        if self.act == "sigmoid":
            return torch.sigmoid(y)
        return y


def conv_block(in_channels: int, out_channels: int, kernel_size: int = 3) -> ConvBN:
    """CB: conv -> BatchNorm -> ReLU (the conv has no bias: the BatchNorm supplies it)."""
    return ConvBN(in_channels, out_channels, kernel_size, "relu")


class CPM(nn.Module):
    """Cross-Promotion Module (eq. 1-2): fused context into the residual branch, residual attention onto
    the fused branch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.to_residual = conv_block(channels, channels)  # ReLU(BN(Conv3x3(F_F)))
        self.to_attention = ConvBN(channels, channels, 3, "sigmoid")

    def attention(self, f_r: torch.Tensor) -> torch.Tensor:
        """delta(BN(Conv3x3(F_R))): the (B, C, H, W) map in (0, 1) applied to the fused features."""
        return self.to_attention(f_r)

    def forward(self, f_f: torch.Tensor, f_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r_hat = self.to_residual(f_f) + f_r                 # eq. 1
        f_hat = torch.addcmul(f_f, self.attention(f_r), f_f)  # eq. 2: att * F_F + F_F (one pass)
        return f_hat, r_hat


class RPM(nn.Module):
    """Residual Prior Module (eq. 3): CA -> SA, then the sum of dilated 3x3 convs (rates `dilations`)."""

    def __init__(self, channels: int, dilations: list[int], reduction: int, sa_kernel: int) -> None:
        super().__init__()
        self.ca = ChannelAttention(channels, reduction)
        self.sa = SpatialAttention(sa_kernel)
        self.dconvs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=r, dilation=r) for r in dilations)

    def forward(self, r_hat: torch.Tensor) -> torch.Tensor:
        att = self.sa(self.ca(r_hat))
        out = self.dconvs[0](att)
        for conv in self.dconvs[1:]:
            out = out.add_(conv(att))  # in place: a conv's output is not needed by its backward
        return out


class FDFM(nn.Module):
    """Frequency-Domain Feature Module (eq. 4): x = CB3x3(F); out = x + IFFT(CB1x1(FFT(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.spatial = conv_block(channels, channels, 3)
        self.freq = conv_block(2 * channels, 2 * channels, 1)

    def spectral(self, x: torch.Tensor) -> torch.Tensor:
        """The global (frequency-domain) path: a real tensor of x's shape and dtype."""
        h, w = x.shape[-2:]
        with torch.autocast(device_type=x.device.type, enabled=False):
            # contiguous NCHW: the FFT of the channels-last feature map ran ~30% slower than copy + FFT
            spec = torch.fft.rfft2(x.float().contiguous(), norm="ortho")
            z = self.freq(torch.cat((spec.real, spec.imag), 1))
            re, im = z.chunk(2, 1)
            out = torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="ortho")
        return channels_last(out.to(x.dtype))

    def forward(self, f_hat: torch.Tensor) -> torch.Tensor:
        x = self.spatial(f_hat)
        return x + self.spectral(x)


class RPFStage(nn.Module):
    """One refinement stage: CPM, then RPM (residual branch) and FDFM (fused branch)."""

    def __init__(self, channels: int, dilations: list[int], reduction: int, sa_kernel: int) -> None:
        super().__init__()
        self.cpm = CPM(channels)
        self.rpm = RPM(channels, dilations, reduction, sa_kernel)
        self.fdfm = FDFM(channels)

    def forward(self, f_f: torch.Tensor, f_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f_hat, r_hat = self.cpm(f_f, f_r)
        return self.fdfm(f_hat), self.rpm(r_hat)


@register_model("rpfnet")
class RPFNet(LuminanceFusionNet):
    """RPFNet on the Y channel; see the module docstring for the choices the paper leaves open."""

    def __init__(self, channels: int = 8, stages: int = 3, dilations: list[int] | tuple[int, ...] = (1, 3, 5),
                 reduction: int = 4, sa_kernel: int = 7, input_skip: str = "max", refine: bool = True,
                 head_init_scale: float = 0.1) -> None:
        super().__init__()
        if stages < 1 or not dilations:
            raise ValueError(f"RPFNet needs stages >= 1 and at least one dilation, got {stages}, {dilations}")
        self.input_skip = check_skip_mode(input_skip)
        self.set_refine(refine)
        self.fused_in = conv_block(2, channels)
        self.residual_in = conv_block(1, channels)
        self.stages = nn.ModuleList(RPFStage(channels, list(dilations), reduction, sa_kernel) for _ in range(stages))
        self.head = nn.Sequential(conv_block(channels, channels),
                                  scale_init_(nn.Conv2d(channels, 1, 3, padding=1), head_init_scale))
        half = max(1, channels // 2)
        self.aux_decoder = nn.Sequential(conv_block(channels, half), nn.Conv2d(half, 1, 3, padding=1), nn.Tanh())
        self.to(memory_format=torch.channels_last)  # conv weights NHWC: see channels_last()

    def features(self, ir_y: torch.Tensor, vis_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_F^N, F_R^N) after the N refinement stages."""
        f_f = channels_last(self.fused_in(torch.cat((ir_y, vis_y), 1)))
        f_r = channels_last(self.residual_in(ir_y - vis_y))
        for stage in self.stages:
            f_f, f_r = stage(f_f, f_r)
        return f_f, f_r

    def reconstruct(self, f_f: torch.Tensor, f_r: torch.Tensor, ir_y: torch.Tensor,
                    vis_y: torch.Tensor) -> torch.Tensor:
        return residual_sigmoid(self.head(f_f + f_r), simple_fusion(ir_y, vis_y, self.input_skip))

    def fuse_y(self, ir_y: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) IR and visible luminance -> (B,1,H,W) fused luminance in (0, 1)."""
        return self.reconstruct(*self.features(ir_y, vis_y), ir_y, vis_y)

    def forward_train(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Fused clip plus aux {'fused_y': luminance before colour restoration (B,1,T,H,W),
        'residual': the auxiliary decoder's M' in [-1, 1] (B,1,T,H,W)}; frames folded into the batch."""
        _check_clip(ir, vis)
        b = ir.shape[0]
        ir_y, vis_f = fold_clip(ir), fold_clip(vis)
        vis_y = rgb_to_y(vis_f)
        f_f, f_r = self.features(ir_y, vis_y)
        fused_y = self.reconstruct(f_f, f_r, ir_y, vis_y)
        aux = {"fused_y": unfold_clip(fused_y, b), "residual": unfold_clip(self.aux_decoder(f_r), b)}
        return unfold_clip(restore_colour(fused_y, vis_f), b), aux
