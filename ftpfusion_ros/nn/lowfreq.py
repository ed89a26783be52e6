"""FTPFusion's low-frequency branch: LFPM (Sec. 3.2.1, App. A.2) and LTCM (Sec. 3.2.2).

Both modules work on a temporal window of per-frame LF maps (a list of T tensors (B, C, H, W)) and
produce outputs for *target* frames only, so a streaming step costs one frame of map work, not T.
This is exact, not an approximation: every temporal operation of the branch is a per-channel linear
mix of frames whose coefficients come from per-frame spatial means ("temporal tokens", (B, T, C)),
and the nonlinear spatial part of the LFPM enhancement depends on one frame only (cached per frame).

LFPM, for one modality (input LF maps x_t, tokens z_t = mean_hw x_t):
  activity    a_t = mean of |z_t - z_{t-1}| and |z_{t+1} - z_t|               (Eq. 3)
  gating      [w, g] = sigmoid(Conv1d_k -> GELU -> Conv1d_1([z, a]))           per (t, c), hidden C/4
  perturb     x~_t = x_t + alpha * w_t * (S(x)_t - x_t)  (training only)       (Eq. 4)
              S = grouped non-circular temporal shift: G channel groups, each shifted by +-1..max_shift
              frames with probability p (sign symmetric), edge frames replicated; alpha learnable
  enhance     f_t = GELU(dw3x3(x~_t) + dw3x3_dilated(x~_t))          (per frame; cached in eval)
              u_t = g_t * sum_j k_j f_{t+j}                          (depthwise temporal, zero padded)
              y_t = x~_t + gamma * W u_t                             (gated residual, Eq. 5)
  mean        out_t = y_t - mean_t y + mean_t x                      (Eq. 6: temporal mean preserved)
which simplifies to out_t = x~_t - mean x~ + mean x + gamma * W sum_s M[t, s] f_s with per-channel
M = A - mean_t A, A[t, s] = g_t * k_{s-t}. In eval mode x~ = x and out_t = x_t + gamma W sum_s M f_s.

LTCM: shared context c = GELU(PW(DW_k([z_ir ; z_vis]))) over time (depthwise-separable temporal conv);
per-modality gates g_m = 2 * sigmoid(W_m c) (1 at init); fused LF = m_vis + s * (m_ir - m_vis) with
m = g * LF and a spatial selection s = sigmoid(1x1([m_ir ; m_vis])).

Both modalities travel as one tensor with their channels concatenated, [IR ; visible] (2C channels):
per-channel operations then run once for both, and per-modality channel mixing uses block-diagonal
(grouped) weights, so the modalities stay independent where the paper keeps them apart. LFPM takes
``modalities`` for that (1 for a single-modality LFPM).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def temporal_tokens(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """List of T maps (B, C, H, W) -> (B, T, C) spatial means."""
    return torch.stack([m.mean((-2, -1)) for m in maps], 1)


def conv1d_tokens(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a (stride-1, zero-padded) Conv1d over time to tokens (B, T, C_in) -> (B, T, C_out).

    The same numbers as ``conv(x.transpose(1, 2)).transpose(1, 2)``, computed with one matmul over the
    unfolded time windows: for T <= a few frames CPU Conv1d costs ~5x more per call (setup dominated).
    """
    k, pad, groups = conv.kernel_size[0], conv.padding[0], conv.groups
    b, t, cin = x.shape
    win = (F.pad(x, (0, 0, pad, pad)) if pad else x).unfold(1, k, 1)  # (B, T, C_in, k)
    if groups == 1:
        weight = conv.weight.reshape(conv.out_channels, cin * k)
    elif groups == cin == conv.out_channels:  # depthwise
        y = (win * conv.weight.view(cin, k)).sum(-1)
        return y + conv.bias if conv.bias is not None else y
    else:  # grouped: a block-diagonal dense weight over the (channel, tap) columns
        go = conv.out_channels // groups
        weight = torch.block_diag(*[w.reshape(go, -1) for w in conv.weight.split(go, 0)])
    return F.linear(win.reshape(b, t, cin * k), weight, conv.bias)


def mix_frames(maps: Sequence[torch.Tensor], coef: torch.Tensor) -> torch.Tensor:
    """sum_s coef[:, s, :] * maps[s] for per-(s, c) coefficients coef (B, T, C) -> (B, C, H, W)."""
    acc = None
    for m, w in zip(maps, coef[..., None, None].unbind(1)):  # one unbind, not T index/unsqueeze ops
        acc = m * w if acc is None else torch.addcmul(acc, m, w)
    return acc


class LFPM(nn.Module):
    """Low-frequency temporal perturbation enhancement module, one scale.

    Works on ``modalities`` independent modalities of ``channels`` channels each, concatenated along the
    channel axis (M * C channels); nothing mixes the modalities.
    """

    def __init__(
        self,
        channels: int,
        groups: int = 4,
        max_shift: int = 1,
        prob: float = 0.5,
        hidden_ratio: float = 0.25,
        temporal_kernel: int = 3,
        dilation: int = 2,
        strength_init: float = 0.5,
        inject_init: float = 0.1,
        modalities: int = 1,
    ) -> None:
        super().__init__()
        if temporal_kernel % 2 == 0:
            raise ValueError(f"temporal kernel must be odd, got {temporal_kernel}")
        if not 1 <= groups <= channels:
            raise ValueError(f"LFPM groups must be in 1..{channels}, got {groups}")
        self.channels, self.groups, self.max_shift, self.prob = channels, groups, int(max_shift), float(prob)
        self.modalities = m = modalities
        self.dilation = int(dilation)
        c = channels
        mc = m * c
        # local spatial enhancement: a 3x3 and a dilated 3x3 depthwise kernel, summed (folded into one conv)
        self.spatial_k = nn.Parameter(torch.randn(mc, 1, 3, 3) * (0.5 / 3))
        self.spatial_kd = nn.Parameter(torch.randn(mc, 1, 3, 3) * (0.5 / 3))
        self.spatial_b = nn.Parameter(torch.zeros(mc))
        kt = torch.zeros(mc, temporal_kernel)
        kt[:, temporal_kernel // 2] = 1.0
        self.temporal_k = nn.Parameter(kt + 0.05 * torch.randn(mc, temporal_kernel))
        hidden = max(4, int(round(c * hidden_ratio)))
        # per modality: [tokens ; activity] (2C) -> hidden -> [w ; g] (2C); groups keep modalities apart
        self.gate_net = nn.Sequential(
            nn.Conv1d(2 * mc, m * hidden, temporal_kernel, padding=temporal_kernel // 2, groups=m),
            nn.GELU(),
            nn.Conv1d(m * hidden, 2 * mc, 1, groups=m),
        )
        #: learnable global perturbation strength alpha per modality (Eq. 4)
        self.strength = nn.Parameter(torch.full((m,), float(strength_init)))
        #: per-channel injection coefficient gamma of the gated residual (Eq. 5)
        self.inject = nn.Parameter(torch.full((mc,), float(inject_init)))
        #: per-modality 1x1 projection of the enhancement
        self.proj = nn.Parameter(torch.randn(m, c, c) / c**0.5)

    # ----------------------------------------------------------------------------------- per frame
    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame nonlinear spatial part f = GELU(dw3x3(x) + dilated dw3x3(x)) (one fused conv)."""
        d = self.dilation
        size = 2 * d + 1
        kernel = F.pad(self.spatial_k, (d - 1, d - 1, d - 1, d - 1))
        kd = torch.zeros(kernel.shape[0], 1, size, size, dtype=kernel.dtype, device=kernel.device)
        kd[:, :, ::d, ::d] = self.spatial_kd
        return F.gelu(F.conv2d(x, kernel + kd, self.spatial_b, padding=d, groups=kernel.shape[0]))

    # ---------------------------------------------------------------------------------- per window
    def gates(self, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Perturbation weights w and injection gates g, both (B, T, M*C), from LF tokens (B, T, M*C)."""
        b, t, mc = tok.shape
        m, c = self.modalities, self.channels
        if t > 1:
            d = (tok[:, 1:] - tok[:, :-1]).abs()
            fwd = F.pad(d, (0, 0, 1, 0))  # |z_t - z_{t-1}|, 0 at t = 0
            bwd = F.pad(d, (0, 0, 0, 1))  # |z_{t+1} - z_t|, 0 at t = T-1
            n = torch.ones_like(tok[..., :1])
            n[:, 1:-1] = 2.0
            act = (fwd + bwd) / n
        else:
            act = torch.zeros_like(tok)
        inp = torch.stack((tok.view(b, t, m, c), act.view(b, t, m, c)), 3).reshape(b, t, 2 * mc)
        hidden = F.gelu(conv1d_tokens(self.gate_net[0], inp))
        z = torch.sigmoid(conv1d_tokens(self.gate_net[2], hidden)).view(b, t, m, 2, c)
        return z[:, :, :, 0].reshape(b, t, mc), z[:, :, :, 1].reshape(b, t, mc)

    def perturb(self, maps: Sequence[torch.Tensor], w: torch.Tensor) -> list[torch.Tensor]:
        """Grouped non-circular temporal shifts (training): x + alpha * w * (S(x) - x)."""
        x = torch.stack(list(maps), 1)  # (B, T, M*C, H, W)
        b, t, mc = x.shape[:3]
        dev = x.device
        n_groups = self.groups * self.modalities
        # per (sample, group): shift 0 with prob 1 - p, else +-1..max_shift with a symmetric sign
        active = torch.rand(b, n_groups, device=dev) < self.prob
        mag = torch.randint(1, self.max_shift + 1, (b, n_groups), device=dev)
        sign = torch.where(torch.rand(b, n_groups, device=dev) < 0.5, -1, 1)
        shift = torch.where(active, mag * sign, torch.zeros_like(mag))
        ch = torch.arange(mc, device=dev)
        group_of_channel = (ch % self.channels) * self.groups // self.channels + (ch // self.channels) * self.groups
        shift_c = shift[:, group_of_channel]  # (B, M*C)
        src = (torch.arange(t, device=dev).view(1, t, 1) - shift_c.unsqueeze(1)).clamp(0, t - 1)  # (B, T, M*C)
        shifted = torch.gather(x, 1, src[..., None, None].expand(x.shape))
        alpha = self.strength.repeat_interleave(self.channels)  # (M*C,)
        mixed = x + (alpha * w)[..., None, None] * (shifted - x)
        cl = maps[0].is_contiguous(memory_format=torch.channels_last)
        fmt = torch.channels_last if cl else torch.contiguous_format
        return [m.contiguous(memory_format=fmt) for m in mixed.unbind(1)]  # keep the inputs' fast CPU layout

    def forward(
        self,
        lf: Sequence[torch.Tensor],
        targets: Sequence[int],
        f: Sequence[torch.Tensor] | None = None,
        tok_lf: torch.Tensor | None = None,
        tok_f: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """LFPM over a window.

        lf: T per-frame LF maps; f / tok_lf / tok_f: their cached spatial parts and tokens (computed
        here when None). Returns the outputs at `targets` and the tokens (B, T, M*C) of the outputs at
        *all* frames (exactly their spatial means; LTCM needs them).
        """
        n_t = len(lf)
        if tok_lf is None:
            tok_lf = temporal_tokens(lf)
        w, g = self.gates(tok_lf)
        perturbing = self.training and n_t > 1 and self.prob > 0
        if perturbing:
            lf_p = self.perturb(lf, w)
            f = [self.spatial(x) for x in lf_p]
            tok_f = temporal_tokens(f)
            tok_p = temporal_tokens(lf_p)
        else:
            lf_p = lf
            if f is None:
                f = [self.spatial(x) for x in lf]
            if tok_f is None:
                tok_f = temporal_tokens(f)
            tok_p = tok_lf
        # A[t, s, c] = g[t, c] * k[c, s - t + r] for |s - t| <= r, M = A - mean_t A
        r = self.temporal_k.shape[1] // 2
        offs = torch.arange(n_t, device=tok_lf.device)
        rel = offs.view(1, -1) - offs.view(-1, 1) + r  # (T, T): s - t + r
        valid = (rel >= 0) & (rel <= 2 * r)
        kts = self.temporal_k[:, rel.clamp(0, 2 * r)] * valid.to(tok_lf.dtype)  # (C, T, T)
        a = g.unsqueeze(2) * kts.permute(1, 2, 0).unsqueeze(0)  # (B, T, T, C)
        mix = a - a.mean(1, keepdim=True)
        wproj = self.inject.unsqueeze(1) * torch.block_diag(*self.proj.unbind(0))  # gamma * W, block-diagonal
        w4 = wproj[:, :, None, None].contiguous()
        if perturbing:  # mean_t x - mean_t x~, added back so the output keeps the input's temporal mean
            drift_map = (torch.stack(list(lf), 0) - torch.stack(lf_p, 0)).mean(0)
        outs = []
        for t in targets:
            y = F.conv2d(mix_frames(f, mix[:, t]), w4)
            outs.append(lf_p[t] + drift_map + y if perturbing else lf[t] + y)
        tok_out = tok_p + torch.einsum("btsc,bsc->btc", mix, tok_f) @ wproj.t()
        if perturbing:
            tok_out = tok_out + (tok_lf.mean(1) - tok_p.mean(1)).unsqueeze(1)
        return outs, tok_out


class LTCM(nn.Module):
    """Low-frequency shared temporal context module: shared context, one gate per modality, gated fusion.

    Inputs carry both modalities concatenated on channels, [IR ; visible] (2C).
    """

    def __init__(self, channels: int, temporal_kernel: int = 3) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.dw = nn.Conv1d(2 * c, 2 * c, temporal_kernel, padding=temporal_kernel // 2, groups=2 * c)
        self.pw = nn.Conv1d(2 * c, c, 1)
        self.gate = nn.Conv1d(c, 2 * c, 1)  # [gate_ir ; gate_vis] from the shared context
        nn.init.normal_(self.gate.weight, std=0.02)  # gates start near 1 (2 * sigmoid(0))
        nn.init.zeros_(self.gate.bias)
        self.select = nn.Conv2d(2 * c, c, 1)

    def context(self, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, T, 2C) of both modalities -> shared context (B, T, C) and gates (B, T, 2C)."""
        ctx = F.gelu(conv1d_tokens(self.pw, conv1d_tokens(self.dw, tok)))
        return ctx, 2.0 * torch.sigmoid(conv1d_tokens(self.gate, ctx))

    def fuse(self, lf: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Gated fusion of one frame's LF maps (B, 2C, H, W) with that frame's gates (B, 2C) -> (B, C, H, W)."""
        c = self.channels
        m = lf * g[:, :, None, None]
        s = torch.sigmoid(self.select(m))
        m_ir, m_vis = m[:, :c], m[:, c:]
        return torch.addcmul(m_vis, s, m_ir - m_vis)
