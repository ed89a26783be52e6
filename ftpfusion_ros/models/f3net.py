"""F3Net: Frequency-Spatial Feature Fusion Network (Song et al.), a frame-wise seed model.

Pipeline on the luminance channel (BT.601 Y of the visible frame, the IR frame as is):

  per modality  FSFEM: 3x3 stem -> residual block -> FFEU (frequency features, FcaNet-style
                multi-spectral channel attention) and SFEU (spatial features, CBAM-style channel +
                spatial attention)
  both          FFM: fuses the concatenated frequency and spatial features
                IRM: four 3x3 conv layers -> fused Y, colour restored from the visible frame

The paper's figures (which held the wiring) were lost in our copy; every wiring decision below that
the text does not state is a named choice in ``configs/f3net.yaml``:
  * the two modalities get their own (unshared) FSFEM (``share_fsfem``); their frequency features are
    concatenated, and so are their spatial features, before the FFM;
  * FFEU: the feature map is average-pooled to a fixed ``dct_size`` grid (so any input size works) and
    each channel group is projected onto one 2-D DCT basis function (FcaNet); the ``num_freq`` lowest
    frequencies in zig-zag order are used (FcaNet's "low-k" selection); FC -> (Leaky)ReLU -> FC -> sigmoid
    gives one weight in (0, 1) per channel;
  * FFM: channel-wise max pooling of the spatial features -> 7x7 conv gives a spatial logit map; a 1x1
    conv of the frequency features gives a second one; sigmoid(sum) weighs the frequency features, the
    spatial features are added, and an SE channel attention closes the module;
  * IRM: ReLU after the first three convs; the paper's optional tanh output is replaced by a sigmoid
    around the logit of a simple fusion of the inputs (``input_skip``), so an untrained network already
    outputs that simple fusion (its last conv starts near zero) and the output lies in [0, 1].

All convolutions are stride 1, the DCT pooling is adaptive: any H, W (``size_multiple`` = 1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .framewise import (ChannelAttention, LuminanceFusionNet, SpatialAttention, channels_last, check_skip_mode,
                        mlp_act, residual_sigmoid, scale_init_, simple_fusion)
from .registry import register_model

# --------------------------------------------------------------------------------------------------
# F3Net modules
# --------------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """Two 3x3 convs with a ReLU between them and an identity skip (the paper's Resblock)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def low_frequencies(k: int, size: int) -> list[tuple[int, int]]:
    """The `k` lowest 2-D DCT frequencies (u, v) of a size x size grid in zig-zag order."""
    if not 1 <= k <= size * size:
        raise ValueError(f"num_freq must be in [1, {size * size}] for dct_size {size}, got {k}")
    order = sorted(((u, v) for u in range(size) for v in range(size)), key=lambda f: (f[0] + f[1], f[0]))
    return order[:k]


def dct_filters(channels: int, freqs: list[tuple[int, int]], size: int) -> torch.Tensor:
    """(C, size, size) DCT-II basis per channel: channel groups of about C/k share one frequency.

    Normalised by size^2 so the (0, 0) component is the channel mean (global average pooling).
    """
    pos = torch.arange(size, dtype=torch.float64) + 0.5
    filters = torch.empty(channels, size, size, dtype=torch.float64)
    k = len(freqs)
    for c in range(channels):
        u, v = freqs[c * k // channels]
        filters[c] = torch.outer(torch.cos(math.pi * u * pos / size), torch.cos(math.pi * v * pos / size))
    return (filters / (size * size)).float()


class FFEU(nn.Module):
    """Frequency-domain Feature Extraction Unit: FcaNet multi-spectral channel attention.

    The DCT basis is a fixed buffer (not learned, not saved: it is rebuilt from the config).
    """

    def __init__(self, channels: int, reduction: int, num_freq: int, dct_size: int) -> None:
        super().__init__()
        self.dct_size = dct_size
        self.freqs = low_frequencies(num_freq, dct_size)
        self.register_buffer("basis", dct_filters(channels, self.freqs, dct_size), persistent=False)
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), mlp_act(),
                                nn.Linear(hidden, channels, bias=False))

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C): each channel's DCT coefficient at its assigned frequency."""
        pooled = F.adaptive_avg_pool2d(x, self.dct_size)
        return (pooled * self.basis.to(pooled.dtype)).sum((2, 3))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 1, 1) frequency channel attention in (0, 1)."""
        return torch.sigmoid(self.fc(self.spectrum(x)))[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class SFEU(nn.Module):
    """Spatial-domain Feature Enhancement Unit: CBAM (channel attention, then spatial attention)."""

    def __init__(self, channels: int, reduction: int, kernel_size: int) -> None:
        super().__init__()
        self.ca = ChannelAttention(channels, reduction)
        self.sa = SpatialAttention(kernel_size)

    def spatial_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) spatial attention map the unit applies (after its channel attention)."""
        return self.sa.weights(self.ca(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sa(self.ca(x))


class FSFEM(nn.Module):
    """Frequency-Spatial Feature Extraction Module: -> (frequency features, spatial features)."""

    def __init__(self, in_channels: int, channels: int, reduction: int, num_freq: int, dct_size: int,
                 sa_kernel: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.res = ResBlock(channels)
        self.ffeu = FFEU(channels, reduction, num_freq, dct_size)
        self.sfeu = SFEU(channels, reduction, sa_kernel)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.res(channels_last(self.stem(x)))
        return self.ffeu(feat), self.sfeu(feat)


class FFM(nn.Module):
    """Feature Fusion Module: spatially gated frequency features + spatial features, then channel attention."""

    def __init__(self, channels: int, reduction: int, spatial_kernel: int) -> None:
        super().__init__()
        self.spatial_conv = nn.Conv2d(1, 1, spatial_kernel, padding=spatial_kernel // 2)
        self.freq_conv = nn.Conv2d(channels, 1, 1)
        hidden = max(1, channels // reduction)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), mlp_act(),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def gate(self, freq: torch.Tensor, spat: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) weights in (0, 1) applied to the frequency features."""
        return torch.sigmoid(self.spatial_conv(spat.amax(1, keepdim=True)) + self.freq_conv(freq))

    def forward(self, freq: torch.Tensor, spat: torch.Tensor) -> torch.Tensor:
        fused = torch.addcmul(spat, self.gate(freq, spat), freq)  # gate * freq + spat in one pass
        return fused * self.se(fused)


class IRM(nn.Module):
    """Image Reconstruction Module: four 3x3 convs (ReLU after the first three) -> one logit channel."""

    def __init__(self, in_channels: int, hidden: list[int], init_scale: float) -> None:
        super().__init__()
        if len(hidden) != 3:
            raise ValueError(f"irm_channels must list 3 widths (4 conv layers), got {hidden}")
        layers: list[nn.Module] = []
        prev = in_channels
        for width in hidden:
            layers += [nn.Conv2d(prev, width, 3, padding=1), nn.ReLU(inplace=True)]
            prev = width
        layers.append(scale_init_(nn.Conv2d(prev, 1, 3, padding=1), init_scale))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_model("f3net")
class F3Net(LuminanceFusionNet):
    """F3Net on the Y channel; see the module docstring for the wiring choices."""

    def __init__(self, channels: int = 16, reduction: int = 4, num_freq: int = 4, dct_size: int = 7,
                 sa_kernel: int = 7, ffm_kernel: int = 7, irm_channels: list[int] | tuple[int, ...] = (16, 16, 8),
                 share_fsfem: bool = False, input_skip: str = "max", head_init_scale: float = 0.1,
                 refine: bool = True) -> None:
        super().__init__()
        self.input_skip = check_skip_mode(input_skip)
        self.set_refine(refine)
        args = (1, channels, reduction, num_freq, dct_size, sa_kernel)
        self.fsfem_ir = FSFEM(*args)
        self.fsfem_vis = self.fsfem_ir if share_fsfem else FSFEM(*args)
        self.ffm = FFM(2 * channels, reduction, ffm_kernel)
        self.irm = IRM(2 * channels, list(irm_channels), head_init_scale)
        self.to(memory_format=torch.channels_last)  # conv weights NHWC: see channels_last()

    def fuse_y(self, ir_y: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) IR and visible luminance -> (B,1,H,W) fused luminance in (0, 1)."""
        f_ir, s_ir = self.fsfem_ir(ir_y)
        f_vis, s_vis = self.fsfem_vis(vis_y)
        fused = self.ffm(torch.cat((f_ir, f_vis), 1), torch.cat((s_ir, s_vis), 1))
        return residual_sigmoid(self.irm(fused), simple_fusion(ir_y, vis_y, self.input_skip))

