"""Offset-aware temporal consistency (OTC) loss of FTPFusion (paper 3.3.1 and App. A.4).

On low frequencies only: each frame is made grey (BT.601 Y), low-passed (Gaussian 11 / sigma 2) and
z-normalised on its own (robust to illumination changes). For every neighbour t of the centre frame c
and every modality m in {IR, visible, fused} the global neighbour-to-centre translation is estimated:

  cost_m(d) = mean_p (S_d L^m_t (p) - L^m_c (p))^2   for integer d in [-r, r]^2, S_d = shift with
              replicate padding, S_d x (p) = x(p + d)
  P_m(d)    = softmax_d(-(cost_m(d) / mean_d' cost_m(d')) / tau)
  s_m       = sum_d P_m(d) d                                            (sub-pixel by expectation)
  rel_m     = 1 - H(P_m) / log((2r+1)^2)                                (1: one sharp peak, 0: flat)
  s_ref     = (rel_ir s_ir + rel_vis s_vis) / (rel_ir + rel_vis)        (no gradient: from the inputs)

The neighbours are aligned to the centre with s_ref by bilinear warping (border padding):
  R_F   = W(L^F_t, s_ref) - L^F_c,   R_ref = w_ir R_ir + w_vis R_vis  (same reliability weights)
  OTC   = w_off * Huber(s_F - s_ref) + w_res * Charbonnier(R_F - R_ref) + w_grad * |grad R_F - grad R_ref|_1

Choices where the paper's equations are lost (numbers kept as constructor arguments): a squared-
difference matching cost (near a match it is quadratic in the shift, so the softmax is a sampled
Gaussian whose expectation is nearly unbiased for sub-pixel shifts), normalised by its mean over the window so that tau = 0.05
means the same for any content (raw costs of low-passed z-scored frames are ~0.01 per pixel of shift:
at tau 0.05 the distribution would be nearly flat and every shift shrunk towards 0), entropy-based
reliability normalised to [0, 1], Huber delta 1 px, Charbonnier eps 1e-3 (shifted to be 0 at 0),
forward-difference gradients, term weights 1/1/1. Measured: shifts up to 2.5 px of textured frames
are recovered within 0.1 px.

Cost: the whole cost volume is one grouped convolution (cross-correlation with the centre frame as
kernel, hand-written backward) and box sums of squares from cumulative sums, no loop over the
(2r+1)^2 shifts: ~20 ms forward, ~30 ms forward + backward for a (2, 3, 5, 128, 128) clip (1 CPU thread).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import charbonnier, entropy, gaussian_blur, luminance, max_entropy, zero_loss


def lowpass_normalise(clip: torch.Tensor, size: int = 11, sigma: float = 2.0, eps: float = 1e-4) -> torch.Tensor:
    """(B, C, T, H, W) clip in [0, 1] -> (B, T, H, W) grey, Gaussian low-passed, per-frame z-normalised."""
    b, _, t, h, w = clip.shape
    grey = luminance(clip)                                   # (B, 1, T, H, W)
    frames = grey.transpose(1, 2).reshape(b * t, 1, h, w)
    low = gaussian_blur(frames, size, sigma, mode="reflect")
    mean = low.mean(dim=(-1, -2), keepdim=True)
    var = low.var(dim=(-1, -2), unbiased=False, keepdim=True)
    return ((low - mean) / torch.sqrt(var + eps)).view(b, t, h, w)


def shift_grid(radius: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(K, 2) integer candidate shifts (dx, dy), dy-major, K = (2r+1)^2; matches the cost-volume order."""
    r = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack((dx.reshape(-1), dy.reshape(-1)), dim=1)


class _WindowCorrelation(torch.autograd.Function):
    """cross[n, d] = sum_p padded[n, p + d] * centre[n, p] for all K x K offsets d.

    Forward is one grouped convolution with the (H, W) centre frame as kernel. Autograd's backward of
    that convolution (a huge-kernel weight gradient) is ~10x slower on CPU than the equivalent
    small-kernel forms used here: the centre's gradient is the padded frame correlated with the K x K
    output gradient, the padded frame's gradient the centre convolved (transposed) with it.
    """

    @staticmethod
    def forward(ctx, padded: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        # padded (1, N, H+2r, W+2r), centre (N, 1, H, W) -> (1, N, K, K)
        ctx.save_for_backward(padded, centre)
        return F.conv2d(padded, centre, groups=centre.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        padded, centre = ctx.saved_tensors
        n = centre.shape[0]
        g = grad.reshape(n, 1, grad.shape[-2], grad.shape[-1])
        grad_padded = grad_centre = None
        if ctx.needs_input_grad[0]:
            grad_padded = F.conv_transpose2d(centre.view(1, n, *centre.shape[-2:]), g, groups=n)
        if ctx.needs_input_grad[1]:
            grad_centre = F.conv2d(padded, g, groups=n).view_as(centre)
        return grad_padded, grad_centre


def matching_cost(neighbour: torch.Tensor, centre: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean squared difference between the integer-shifted neighbour (replicate padding) and the centre
    for every shift in [-r, r]^2: (N, H, W) x2 -> (N, K) in the order of :func:`shift_grid`.

    Expanded as mean(a_d^2) - 2 mean(a_d b) + mean(b^2): the cross term is one grouped convolution with
    the centre frame as kernel, the first a box sum from cumulative sums; no K shifted copies are
    materialised (several times faster than a loop over shifts or a strided view on CPU, forward and
    backward).
    """
    n, h, w = centre.shape
    k = 2 * radius + 1
    padded = F.pad(neighbour[:, None], (radius,) * 4, mode="replicate")           # (N, 1, H+2r, W+2r)
    cross = _WindowCorrelation.apply(padded.view(1, n, h + 2 * radius, w + 2 * radius), centre[:, None])
    # box sums of the squared neighbour over every H x W window, from 2-D cumulative sums
    sq = F.pad((padded[:, 0] * padded[:, 0]).cumsum(1).cumsum(2), (1, 0, 1, 0))   # (N, H+2r+1, W+2r+1)
    sq = sq[:, h:, w:] - sq[:, :k, w:] - sq[:, h:, :k] + sq[:, :k, :k]            # (N, K, K)
    cost = sq.reshape(n, k * k) - 2.0 * cross.view(n, k * k) + (centre * centre).sum((-1, -2))[:, None]
    # rounding can make a perfect match slightly negative; the cost is a mean of squares
    return (cost / (h * w)).clamp_min(0.0)


def estimate_shift(neighbour: torch.Tensor, centre: torch.Tensor, radius: int = 3, tau: float = 0.05
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft sub-pixel neighbour-to-centre translation: (N, H, W) x2 -> shifts (N, 2) as (dx, dy) pixels
    such that neighbour(p + s) ~ centre(p), and the reliability (N,) in [0, 1] from the entropy of the
    shift distribution."""
    cost = matching_cost(neighbour, centre, radius)
    # Normalise by the mean cost over the window so that tau is independent of image content and scale
    # (an unnormalised mean squared cost of low-passed z-scored frames is ~0.01 per pixel of shift, which
    # at tau 0.05 gives a nearly flat distribution and shrinks every estimate towards 0).
    cost = cost / (cost.mean(dim=1, keepdim=True) + 1e-6)
    prob = torch.softmax(-cost / tau, dim=1)
    shifts = prob @ shift_grid(radius, prob.dtype, prob.device)
    reliability = 1.0 - entropy(prob, dim=1) / max_entropy(prob.shape[1])
    return shifts, reliability.clamp(0.0, 1.0)


def warp_translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Bilinear warp of (N, H, W) frames by per-frame translations (N, 2) (dx, dy):
    out(p) = x(p + shift), border padding (the integer case equals the replicate-padded shift)."""
    n, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device)
    xs = torch.arange(w, dtype=x.dtype, device=x.device)
    gx = xs[None, None, :] + shift[:, 0, None, None]                      # (N, 1, W)
    gy = ys[None, :, None] + shift[:, 1, None, None]                      # (N, H, 1)
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    gx = (2.0 * gx / max(w - 1, 1) - 1.0).expand(n, h, w)
    gy = (2.0 * gy / max(h - 1, 1) - 1.0).expand(n, h, w)
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along W and H."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class OTCLoss(nn.Module):
    """Offset-aware temporal consistency loss (see module docstring). Call with clips
    ir (B,1,T,H,W), vis (B,3,T,H,W), fused (B,3,T,H,W) in [0, 1]; returns (loss, terms)."""

    def __init__(self, radius: int = 3, tau: float = 0.05, blur_size: int = 11, blur_sigma: float = 2.0,
                 huber_delta: float = 1.0, charbonnier_eps: float = 1e-3, w_offset: float = 1.0,
                 w_residual: float = 1.0, w_gradient: float = 1.0, centre: int | None = None) -> None:
        super().__init__()
        if radius < 1:
            raise ValueError(f"OTC search radius must be >= 1, got {radius}")
        if tau <= 0:
            raise ValueError(f"OTC temperature tau must be > 0, got {tau}")
        self.radius, self.tau = radius, tau
        self.blur_size, self.blur_sigma = blur_size, blur_sigma
        self.huber_delta, self.charbonnier_eps = huber_delta, charbonnier_eps
        self.w_offset, self.w_residual, self.w_gradient = w_offset, w_residual, w_gradient
        self.centre = centre  # None: the middle frame T // 2

    def _split(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(B, T, H, W) -> neighbours (B*(T-1), H, W) and the centre repeated to match."""
        b, t, h, w = low.shape
        c = t // 2 if self.centre is None else self.centre
        idx = [i for i in range(t) if i != c]
        neigh = low[:, idx].reshape(-1, h, w)
        centre = low[:, c:c + 1].expand(b, len(idx), h, w).reshape(-1, h, w)
        return neigh, centre, len(idx)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t = fused.shape[2]
        if t < 2:
            z = zero_loss(fused)
            return z, {"otc_offset": z.detach(), "otc_residual": z.detach(), "otc_gradient": z.detach()}
        if self.centre is not None and not 0 <= self.centre < t:
            raise ValueError(f"OTC centre frame {self.centre} outside a clip of {t} frames")
        # Softmax over costs / 0.05 and z-normalisation need fp32: never run this under fp16 autocast.
        with torch.autocast(device_type=fused.device.type, enabled=False):
            fused = fused.float()
            with torch.no_grad():
                ir_n, ir_c, _ = self._split(lowpass_normalise(ir.float(), self.blur_size, self.blur_sigma))
                vis_n, vis_c, _ = self._split(lowpass_normalise(vis.float(), self.blur_size, self.blur_sigma))
                s_ir, rel_ir = estimate_shift(ir_n, ir_c, self.radius, self.tau)
                s_vis, rel_vis = estimate_shift(vis_n, vis_c, self.radius, self.tau)
                eps = 1e-6
                w_ir = (rel_ir + eps) / (rel_ir + rel_vis + 2 * eps)
                w_vis = 1.0 - w_ir
                s_ref = w_ir[:, None] * s_ir + w_vis[:, None] * s_vis
                res_ref = (w_ir[:, None, None] * (warp_translate(ir_n, s_ref) - ir_c)
                           + w_vis[:, None, None] * (warp_translate(vis_n, s_ref) - vis_c))
            f_n, f_c, _ = self._split(lowpass_normalise(fused, self.blur_size, self.blur_sigma))
            s_f, _ = estimate_shift(f_n, f_c, self.radius, self.tau)
            offset = F.huber_loss(s_f, s_ref, delta=self.huber_delta)
            diff = (warp_translate(f_n, s_ref) - f_c) - res_ref
            residual = charbonnier(diff, self.charbonnier_eps).mean()
            gx, gy = _grad(diff)
            gradient = 0.5 * (gx.abs().mean() + gy.abs().mean())
            total = self.w_offset * offset + self.w_residual * residual + self.w_gradient * gradient
        return total, {"otc_offset": offset.detach(), "otc_residual": residual.detach(),
                       "otc_gradient": gradient.detach()}
