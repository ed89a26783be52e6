"""ISFM: Interactive Spatial-Frequency Fusion Mamba (Zhu et al.), a frame-wise seed model.

Pipeline on the luminance channel (BT.601 Y of the visible frame, the IR frame as is):
  MSE  per modality, unshared: 3x3 conv + SiLU at full resolution (F^S), a stride-``scan_stride``
       patch embedding (conv, kernel = stride) + SiLU, ``num_vss`` visual state-space blocks -> F^M
  MFF  Haar DWT of both F^M; LFFB fuses the LL bands (eq. 3-6), HFFB the LH/HL/HH bands (eq. 7-10);
       the fused bands are the frequency guidance F_fre^comp, and IDWT + 3x3 conv gives F_fre^fuse
  ISF  FGM (eq. 11-14): per modality LN -> Linear -> (X, Z); H = LN(SS2D(SiLU(DWConv(X))));
       FGG (eq. 15-18) turns Z_ir, Z_vi and the fused frequency bands into gates G_ir, G_vi;
       F_spa = Linear(H_ir G_ir + H_vi G_vi) + s1 F_ir^M + s2 F_vi^M
  head concat(F_spa, F_fre^fuse) -> 1x1 conv -> bilinear upsampling to full resolution, added to the
       full-resolution shallow features of both modalities -> two 3x3 convs -> fused Y; colour restored
       from the visible frame.

Choices (the paper's figures, which held the wiring, were lost; constants in ``configs/isfm.yaml``):
  * the paper runs everything at full resolution with 128 channels (9.1 M parameters, 0.28 s per
    MSRS frame on an RTX 3090). On a 2-core CPU a 640x480 frame must fuse in well under a second, so
    the state-space and frequency modules run at 1/``scan_stride`` resolution (8 -> an 80x60 token
    grid at 640x480) with few channels, and a full-resolution shallow path carries the fine detail
    (conv after bilinear upsampling, which commutes with the 1x1 conv, so the conv runs at low res);
  * the scan is the project's pure-PyTorch four-direction selective scan (mamba_ssm's CUDA kernel
    when installed); the paper's unexplained hyper-parameter K (default 4) is read as VMamba's
    number of scan directions, K = 4;
  * LFFB: eq. 4's max/average pooling are channel-wise (CBAM spatial attention, 3x3 conv); HFFB works
    on the three detail bands concatenated (3C channels) so its 1x1 convs can mix them; its average
    pools are stride 1 with padding excluded from the average;
  * FGG: "FC layers" = Linear -> SiLU -> Linear applied per position before global average pooling;
  * s1, s2 are learnable per-channel scales initialised to 1;
  * output: sigmoid around the logit of a simple fusion of the inputs (``input_skip``, as in F3Net
    and RPFNet here), the last conv starting near zero, so an untrained net outputs that fusion.
Input sizes must be multiples of 2 * ``scan_stride`` (the engine pads): the DWT halves F^M.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.dwt import dwt2, idwt2
from ..nn.vss import SelectiveScan2D, VSSBlock, resolve_dt_rank
from .framewise import LuminanceFusionNet, SpatialAttention, check_skip_mode, residual_sigmoid, scale_init_, simple_fusion
from .registry import register_model

#: fused Haar sub-bands (LL, LH, HL, HH) of MFF, the frequency guidance F_fre^comp of the ISF
Bands = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class MSE(nn.Module):
    """Modality-Specific Extractor: full-resolution shallow features F^S and scan-resolution F^M."""

    def __init__(self, shallow_channels: int, channels: int, stride: int, num_vss: int, d_state: int,
                 expand: float, dt_rank: int, backend: str) -> None:
        super().__init__()
        self.shallow = nn.Conv2d(1, shallow_channels, 3, padding=1)
        self.embed = nn.Conv2d(shallow_channels, channels, stride, stride=stride)
        self.vss = nn.Sequential(*(VSSBlock(channels, d_state, expand, dt_rank, backend=backend)
                                   for _ in range(num_vss)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shallow = F.silu(self.shallow(x))
        return shallow, self.vss(F.silu(self.embed(shallow)))


class LFFB(nn.Module):
    """Low-Frequency Fusion Block (eq. 3-6) on the LL bands."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.attn = SpatialAttention(3)
        self.dw3 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pw3 = nn.Conv2d(channels, channels, 1)
        self.dw5 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.pw5 = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, ll_ir: torch.Tensor, ll_vis: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.proj(ll_ir + ll_vis))
        sigma = self.attn.weights(x)  # (B, 1, h, w)
        u = F.silu(self.pw3(self.dw3(x))) + F.silu(self.pw5(self.dw5(x)))
        return F.silu(self.out(u * sigma + x))


class HFFB(nn.Module):
    """High-Frequency Fusion Block (eq. 7-10): unsharp-mask style edge enhancement of the detail bands."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.s1 = nn.Conv2d(channels, channels, 1)
        self.s2 = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, hf_ir: torch.Tensor, hf_vis: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.proj(hf_ir + hf_vis))
        x3 = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        x5 = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
        s = F.silu(self.s1(x - x3)) + F.silu(self.s2(x - x5))
        return F.silu(self.out(s + x))


class MFF(nn.Module):
    """Multi-scale Frequency Fusion: -> (F_fre^fuse at F^M's resolution, fused bands (LL, LH, HL, HH))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.lffb = LFFB(channels)
        self.hffb = HFFB(3 * channels)
        self.to_spatial = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, f_ir: torch.Tensor, f_vis: torch.Tensor) -> tuple[torch.Tensor, Bands]:
        ll_ir, *hf_ir = dwt2(f_ir)
        ll_vis, *hf_vis = dwt2(f_vis)
        ll = self.lffb(ll_ir, ll_vis)
        lh, hl, hh = self.hffb(torch.cat(hf_ir, 1), torch.cat(hf_vis, 1)).chunk(3, dim=1)
        return self.to_spatial(idwt2(ll, lh, hl, hh)), (ll, lh, hl, hh)


class FGG(nn.Module):
    """Frequency-Guided Gate (eq. 15-18), channels-last: (Z_ir, Z_vis, fused bands) -> (G_ir, G_vis)."""

    def __init__(self, channels: int, d_inner: int) -> None:
        super().__init__()
        self.z_proj = nn.Linear(2 * d_inner, 2 * d_inner)
        self.z_norm = nn.LayerNorm(2 * d_inner)
        self.freq_fc = nn.Sequential(nn.Linear(2 * channels, 2 * d_inner), nn.SiLU(),
                                     nn.Linear(2 * d_inner, 2 * d_inner))
        self.gate_ir = nn.Sequential(nn.Linear(d_inner, d_inner), nn.LayerNorm(d_inner), nn.SiLU())
        self.gate_vis = nn.Sequential(nn.Linear(d_inner, d_inner), nn.LayerNorm(d_inner), nn.SiLU())

    def forward(self, z_ir: torch.Tensor, z_vis: torch.Tensor, bands: Bands) -> tuple[torch.Tensor, torch.Tensor]:
        z_global = self.z_norm(self.z_proj(torch.cat((z_ir, z_vis), -1)))  # (B, h, w, 2D)
        ll, lh, hl, hh = bands
        f_f = torch.cat((ll, lh + hl + hh), 1).permute(0, 2, 3, 1)      # (B, h/2, w/2, 2C)
        z_f = self.freq_fc(f_f).mean((1, 2), keepdim=True)             # (B, 1, 1, 2D): global statistics
        z_g = z_f * z_global + z_global
        zg_ir, zg_vis = z_g.chunk(2, dim=-1)
        return self.gate_ir(zg_ir), self.gate_vis(zg_vis)


class ISF(nn.Module):
    """Interactive Spatial-Frequency Fusion: Frequency-Guided Mamba (eq. 11-14) with the FGG."""

    def __init__(self, channels: int, d_state: int, expand: float, dt_rank: int, backend: str) -> None:
        super().__init__()
        d_inner = int(expand * channels)
        self.norm_ir, self.norm_vis = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.in_ir = nn.Linear(channels, 2 * d_inner, bias=False)
        self.in_vis = nn.Linear(channels, 2 * d_inner, bias=False)
        self.conv_ir = nn.Conv2d(d_inner, d_inner, 3, padding=1, groups=d_inner)
        self.conv_vis = nn.Conv2d(d_inner, d_inner, 3, padding=1, groups=d_inner)
        self.ssm_ir = SelectiveScan2D(d_inner, d_state, dt_rank, backend=backend)
        self.ssm_vis = SelectiveScan2D(d_inner, d_state, dt_rank, backend=backend)
        self.h_norm_ir, self.h_norm_vis = nn.LayerNorm(d_inner), nn.LayerNorm(d_inner)
        self.fgg = FGG(channels, d_inner)
        self.out = nn.Linear(d_inner, channels, bias=False)
        self.s1 = nn.Parameter(torch.ones(channels))
        self.s2 = nn.Parameter(torch.ones(channels))

    @staticmethod
    def _hidden(x: torch.Tensor, conv: nn.Conv2d, ssm: SelectiveScan2D, norm: nn.LayerNorm) -> torch.Tensor:
        """Eq. 12: LN(SSM(SiLU(DWConv(X)))), channels-last in and out."""
        y = ssm(F.silu(conv(x.permute(0, 3, 1, 2).contiguous())))
        return norm(y.permute(0, 2, 3, 1))

    def forward(self, f_ir: torch.Tensor, f_vis: torch.Tensor, bands: Bands) -> torch.Tensor:
        x_ir, z_ir = self.in_ir(self.norm_ir(f_ir.permute(0, 2, 3, 1))).chunk(2, dim=-1)
        x_vis, z_vis = self.in_vis(self.norm_vis(f_vis.permute(0, 2, 3, 1))).chunk(2, dim=-1)
        h_ir = self._hidden(x_ir, self.conv_ir, self.ssm_ir, self.h_norm_ir)
        h_vis = self._hidden(x_vis, self.conv_vis, self.ssm_vis, self.h_norm_vis)
        g_ir, g_vis = self.fgg(z_ir, z_vis, bands)
        fused = self.out(h_ir * g_ir + h_vis * g_vis).permute(0, 3, 1, 2)
        return fused + self.s1[:, None, None] * f_ir + self.s2[:, None, None] * f_vis


@register_model("isfm")
class ISFM(LuminanceFusionNet):
    """ISFM on the Y channel; see the module docstring for the wiring and the speed choices."""

    def __init__(self, shallow_channels: int = 8, channels: int = 16, scan_stride: int = 8, num_vss: int = 1,
                 d_state: int = 8, expand: float = 2.0, dt_rank: int | str | None = "auto",
                 input_skip: str = "max", head_init_scale: float = 0.1, scan_backend: str = "auto",
                 refine: bool = True) -> None:
        super().__init__()
        if scan_stride < 1 or num_vss < 0 or channels < 1 or shallow_channels < 1 or d_state < 1:
            raise ValueError("isfm: scan_stride, channels, shallow_channels, d_state must be >= 1 and num_vss >= 0")
        if scan_backend not in ("auto", "torch", "mamba"):
            raise ValueError(f"scan_backend must be 'auto', 'torch' or 'mamba', got {scan_backend!r}")
        self.input_skip = check_skip_mode(input_skip)
        self.set_refine(refine)
        self.scan_stride = scan_stride
        self.size_multiple = 2 * scan_stride  # the DWT halves the 1/stride-resolution features
        rank = resolve_dt_rank(dt_rank, channels)
        args = (shallow_channels, channels, scan_stride, num_vss, d_state, expand, rank, scan_backend)
        self.mse_ir = MSE(*args)
        self.mse_vis = MSE(*args)
        self.mff = MFF(channels)
        self.isf = ISF(channels, d_state, expand, rank, scan_backend)
        self.reduce = nn.Conv2d(2 * channels, shallow_channels, 1)
        self.head = nn.Sequential(nn.Conv2d(shallow_channels, shallow_channels, 3, padding=1), nn.SiLU(),
                                  scale_init_(nn.Conv2d(shallow_channels, 1, 3, padding=1), head_init_scale))

    def fuse_y(self, ir_y: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) IR and visible luminance -> (B,1,H,W) fused luminance in (0, 1)."""
        h, w = ir_y.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"isfm needs H and W divisible by {self.size_multiple}, got {h}x{w}")
        s_ir, f_ir = self.mse_ir(ir_y)
        s_vis, f_vis = self.mse_vis(vis_y)
        f_fre, bands = self.mff(f_ir, f_vis)
        f_spa = self.isf(f_ir, f_vis, bands)
        low = self.reduce(torch.cat((f_spa, f_fre), 1))  # 1x1 conv before upsampling: they commute
        up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        logits = self.head(up + s_ir + s_vis)
        return residual_sigmoid(logits, simple_fusion(ir_y, vis_y, self.input_skip))

