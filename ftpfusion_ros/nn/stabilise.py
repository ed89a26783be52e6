"""Temporal stabilisation of a fusion base inside the streaming window: de-flicker and jitter filtering.

What a frame-wise fusion cannot do and a video model can: look at the other frames of its window and
hold the output steady where the cameras flicker (global gain/offset changes per frame) or shake (small
global translations per frame). FTPFusion (``ftpfusion_ros.models.ftpfusion``) refines the output of
this module instead of the raw per-frame base fusion. It is hand-written because no library does it on
tensors of a streaming window; it has no trainable weights. Two stages, per target frame t:

1. **Photometric de-flicker.** Every frame's IR and visible luminance get mean and standard deviation
   (:meth:`TemporalStabiliser.frame_stats`, computed once per frame and cached by the engine). Frame s is
   mapped by the gain/offset ``a = sigma_ref / sigma_s``, ``b = mu_ref - a mu_s`` onto the reference
   statistics of the window ``mu_ref, sigma_ref`` (mean over the window's frames). A global brightness
   jump of one camera in one frame is thus cut to 1/T of itself; a real change in the scene is followed
   over T frames.
2. **Motion-compensated temporal filter.** The base fusion of the frames within ``radius`` of t is
   aligned onto frame t by a global sub-pixel translation (phase correlation of cached spectra, Foroosh
   sub-pixel peak) and averaged per pixel with bilateral weights ``w_s = lambda^[s != t] exp(-d^2 /
   (2 sigma^2))``, d = aligned difference to frame t. Moving objects (large d) keep frame t's pixels,
   so the filter does not ghost; a frame whose shift exceeds ``max_shift`` (a camera pan, not jitter) is
   left out.

The target's gain/offset of both cameras is returned too, so the caller can keep colour consistent with
the stabilised luminance and hand the network (and the training loss) the de-flickered sources.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base_fusion import BASE_MODES, fuse_base

_EPS = 1e-4


def apply_gain(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a x + b`` clipped to [0, 1]: a frame mapped by its de-flicker gain/offset."""
    return (a * x + b).clamp(0.0, 1.0)


class TemporalStabiliser(nn.Module):
    """Window-level de-flicker + jitter filter of a max/mean base luminance (see module docstring).

    ``sigma``: bilateral range of the temporal filter (luminance units in [0, 1]; 0.03 ~ 8 grey levels);
    ``neighbour_weight``: lambda, weight of another frame relative to the target's own (0 disables the
    filter, leaving the de-flicker); ``radius``: frames on each side of the target the filter uses;
    ``max_shift``: largest global shift (pixels) treated as jitter; ``downsample``: the phase correlation
    runs on maps pooled by this factor (shifts are refined to sub-pixel there and scaled back); ``base``:
    the fusion that is stabilised and aligned on; ``also``: further fusions filtered with the same shifts,
    returned as further channels (FTPFusion's gate chooses between two stabilised bases per pixel).
    """

    def __init__(self, sigma: float = 0.03, neighbour_weight: float = 0.3, radius: int = 4,
                 max_shift: float = 3.0, downsample: int = 2, base: str = "max", also: Sequence[str] = ()) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"stabiliser sigma must be > 0, got {sigma}")
        if not 0.0 <= neighbour_weight <= 1.0:
            raise ValueError(f"stabiliser neighbour_weight must be in [0, 1], got {neighbour_weight}")
        if radius < 0 or max_shift <= 0 or downsample < 1:
            raise ValueError(f"stabiliser needs radius >= 0, max_shift > 0, downsample >= 1; "
                             f"got {radius}, {max_shift}, {downsample}")
        for mode in (base, *also):
            if mode not in BASE_MODES:
                raise ValueError(f"stabiliser base must be one of {BASE_MODES}, got {mode!r}")
        self.sigma = float(sigma)
        self.neighbour_weight = float(neighbour_weight)
        self.radius = int(radius)
        self.max_shift = float(max_shift)
        self.downsample = int(downsample)
        self.base = base
        self.modes = (base, *also)

    # ------------------------------------------------------------------------------------ per frame
    @staticmethod
    def luma_stats(ir: torch.Tensor, y_vis: torch.Tensor) -> torch.Tensor:
        """(B, 4) = (mu_ir, sd_ir, mu_vis, sd_vis) of (B, 1, H, W) frames, in float32."""
        ir, y_vis = ir.float(), y_vis.float()
        return torch.stack((ir.mean((-2, -1)), ir.std((-2, -1)), y_vis.mean((-2, -1)), y_vis.std((-2, -1))), -1)[:, 0]

    def frame_stats(self, ir: torch.Tensor, y_vis: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-frame data the window needs: luminance statistics and the base's alignment spectrum.

        ``ir``, ``y_vis``: (B, 1, H, W) in [0, 1]. Runs in float32 whatever the input precision.
        """
        base = fuse_base(ir.float(), y_vis.float(), self.base)
        return {"stats": self.luma_stats(ir, y_vis), "spec": self._spectrum(base)}

    def _spectrum(self, base: torch.Tensor) -> torch.Tensor:
        g = F.avg_pool2d(base, self.downsample) if self.downsample > 1 else base
        h, w = g.shape[-2:]
        win = torch.outer(torch.hann_window(h, periodic=False, device=g.device),
                          torch.hann_window(w, periodic=False, device=g.device))
        g = (g - g.mean((-2, -1), keepdim=True)) * win
        return torch.fft.rfft2(g[:, 0])  # (B, h, w // 2 + 1)

    # ------------------------------------------------------------------------------------ window
    def photometric(self, stats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Gain and offset per frame that map it onto the window's reference statistics.

        ``stats``: T tensors (B, 4) = (mu_ir, sd_ir, mu_vis, sd_vis). Returns (B, T, 4) =
        (a_ir, b_ir, a_vis, b_vis) with ``x' = a x + b``.
        """
        s = torch.stack(list(stats), 1)  # (B, T, 4)
        ref = s.mean(1, keepdim=True)
        a_ir = ref[..., 1] / s[..., 1].clamp_min(_EPS)
        a_vis = ref[..., 3] / s[..., 3].clamp_min(_EPS)
        b_ir = ref[..., 0] - a_ir * s[..., 0]
        b_vis = ref[..., 2] - a_vis * s[..., 2]
        return torch.stack((a_ir, b_ir, a_vis, b_vis), -1)

    def shift(self, spec_t: torch.Tensor, spec_s: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Global translation (B, 2) = (dx, dy) in full-resolution pixels with ``s(x) ~ t(x - d)``."""
        h, w = size
        cross = spec_s * spec_t.conj()
        corr = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-12), s=(h, w))  # (B, h, w)
        b = corr.shape[0]
        flat = corr.reshape(b, -1).argmax(1)
        py, px = flat // w, flat % w
        ar = torch.arange(b, device=corr.device)

        def refine(c0, cm, cp):  # Foroosh et al. (2002): sub-pixel peak from the larger neighbour
            up = cp >= cm
            c1 = torch.where(up, cp, cm).clamp_min(0.0)
            delta = c1 / (c1 + c0).clamp_min(1e-12)
            return torch.where(up, delta, -delta).clamp(-0.5, 0.5)

        c0 = corr[ar, py, px]
        dx = px.float() + refine(c0, corr[ar, py, (px - 1) % w], corr[ar, py, (px + 1) % w])
        dy = py.float() + refine(c0, corr[ar, (py - 1) % h, px], corr[ar, (py + 1) % h, px])
        dx = torch.where(dx > w / 2, dx - w, dx)  # circular lags -> signed shifts
        dy = torch.where(dy > h / 2, dy - h, dy)
        return torch.stack((dx, dy), 1) * self.downsample

    @staticmethod
    def translate(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Sample x (B, C, H, W) at ``p + d`` (bilinear, border replicated): undoes a shift by ``d``."""
        b, _, h, w = x.shape
        # pixel centres in grid_sample's normalised coordinates (align_corners=False), shifted by d
        gx = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
        gy = (torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1
        gx = gx.view(1, 1, w) + (2.0 / w) * d[:, 0].to(x.dtype).view(b, 1, 1)
        gy = gy.view(1, h, 1) + (2.0 / h) * d[:, 1].to(x.dtype).view(b, 1, 1)
        grid = torch.stack((gx.expand(b, h, w), gy.expand(b, h, w)), -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(self, irs: Sequence[torch.Tensor], y_vis: Sequence[torch.Tensor],
                entries: Sequence[dict[str, torch.Tensor]],
                targets: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stabilised base luminance per target, and the targets' visible gain/offset.

        ``irs``, ``y_vis``: the window's T frames (B, 1, H, W); ``entries``: their :meth:`frame_stats`.
        Returns (B * n_targets, K, H, W) target-major, one channel per fusion of ``modes`` (``base``, then
        ``also``; each weighted by its own bilateral weights), and (B * n_targets, 4) = (a_ir, b_ir, a_vis, b_vis).
        """
        n_t = len(entries)
        ab = self.photometric([e["stats"] for e in entries])  # (B, T, 4)
        # frames beyond ``radius`` of every target may come without maps (None): only their stats are read
        size = (irs[targets[0]].shape[-2] // self.downsample, irs[targets[0]].shape[-1] // self.downsample)
        bases: dict[int, torch.Tensor] = {}

        def base(s: int) -> torch.Tensor:
            if s not in bases:
                g = ab[:, s].view(-1, 4, 1, 1)
                ir_s = apply_gain(irs[s].float(), g[:, 0:1], g[:, 1:2])
                vis_s = apply_gain(y_vis[s].float(), g[:, 2:3], g[:, 3:4])
                bases[s] = torch.cat([fuse_base(ir_s, vis_s, mode) for mode in self.modes], 1)
            return bases[s]

        out, gains = [], []
        for t in targets:
            ref = base(t)
            num, den = ref.clone(), torch.ones_like(ref)
            if self.neighbour_weight > 0:
                for s in range(max(0, t - self.radius), min(n_t, t + self.radius + 1)):
                    if s == t:
                        continue
                    d = self.shift(entries[t]["spec"], entries[s]["spec"], size)
                    ok = (d.abs().amax(1) <= self.max_shift).to(ref.dtype).view(-1, 1, 1, 1)
                    aligned = self.translate(base(s), d)
                    # exp of large negative numbers lands in denormals, ~20x slower on x86 CPUs: cut at e^-20
                    z = ((aligned - ref).square() * (-0.5 / self.sigma**2)).clamp_min(-20.0)
                    wgt = ok * self.neighbour_weight * torch.exp(z)
                    num = num + wgt * aligned
                    den = den + wgt
            out.append(num / den)
            gains.append(ab[:, t])
        return torch.cat(out, 0), torch.cat(gains, 0)
