"""Loss pieces shared by every model's training objective.

Tensors follow the model convention: clips are (B, C, T, H, W) in [0, 1], frames (N, C, H, W).
Luminance is BT.601 Y from :mod:`ftpfusion_ros.nn.colour` (the project's one colour convention).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from ..nn.colour import rgb_to_y, rgb_to_ycbcr
from ..metrics.spatial import QABF_ORIENTATION, QABF_STRENGTH
from ..nn.base_fusion import fuse_base

# 3x3 Sobel kernels (x: derivative along W, y: along H).
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = _SOBEL_X.t().contiguous()


def flatten_clip(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) clip -> (B*T, C, H, W) frames; 4-D input is returned unchanged."""
    if x.dim() == 4:
        return x
    if x.dim() != 5:
        raise ValueError(f"expected a (B,C,T,H,W) clip or (N,C,H,W) frames, got shape {tuple(x.shape)}")
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luminance along dim 1 of an RGB tensor (3 channels); 1-channel tensors pass through."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels on dim 1, got {x.shape[1]}")
    return rgb_to_y(x, dim=1)


def frame_luminances(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor,
                     aux: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fused, IR, visible) luminance as float32 frames for the frame-wise models' losses. The fused one is
    the network's pre-colour-restoration luminance aux['fused_y'] when the model provides it (float32:
    under mixed precision aux outputs may be half precision)."""
    f = flatten_clip(aux["fused_y"]) if "fused_y" in aux else luminance(flatten_clip(fused))
    return f.float(), luminance(flatten_clip(ir)).float(), luminance(flatten_clip(vis)).float()


def chroma(x: torch.Tensor) -> torch.Tensor:
    """The (Cb, Cr) channels (BT.601 full range, offset 0.5) of an RGB tensor along dim 1."""
    return rgb_to_ycbcr(x, dim=1)[:, 1:]


def intensity_target(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Element-wise max of the two sources' luminance, the usual fusion intensity target."""
    return fuse_base(luminance(ir), luminance(vis), "max")


def sobel_xy(x: torch.Tensor, border: str = "replicate") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel 3x3 Sobel derivatives of (N, C, H, W) frames (or a clip, flattened). ``border``:
    'replicate' (default) so that image borders do not produce fake edges, or 'zeros' as the Qabf metric
    pads."""
    if border not in ("replicate", "zeros"):
        raise ValueError(f"Sobel border must be 'replicate' or 'zeros', got {border!r}")
    x = flatten_clip(x)
    c = x.shape[1]
    weight = torch.stack((_SOBEL_X, _SOBEL_Y)).to(dtype=x.dtype, device=x.device)
    weight = weight[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3): x and y kernels per channel
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate" if border == "replicate" else "constant"), weight,
                 groups=c)
    return g[:, 0::2], g[:, 1::2]


def sobel_magnitude(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Sobel gradient magnitude sqrt(gx^2 + gy^2), smoothed at 0 (sqrt(g^2 + eps^2) - eps) so its
    gradient stays finite on flat regions; exactly 0 on a constant image."""
    gx, gy = sobel_xy(x)
    return torch.sqrt(gx * gx + gy * gy + eps * eps) - eps


def check_weight(name: str, value: float) -> float:
    """A loss weight: a number >= 0 (a clear error for a config typo such as a string)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"loss weight {name!r} must be a number >= 0, got {value!r}")
    return float(value)


def detail_target(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed Sobel gradients (gx, gy) of whichever of two 1-channel frames has the stronger edge at each
    pixel: the choose-max-abs rule of Laplacian-pyramid fusion applied to gradients. Magnitude *and*
    orientation come from one source, as Qabf scores them."""
    ax, ay = sobel_xy(a)
    bx, by = sobel_xy(b)
    pick_a = ax * ax + ay * ay >= bx * bx + by * by
    return torch.where(pick_a, ax, bx), torch.where(pick_a, ay, by)


def detail_loss(fused_y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale gradient loss: L1 between the fused luminance's signed Sobel gradients and the
    :func:`detail_target` of the two sources, at full resolution and after 2x, 4x ... average pooling
    (Laplacian-pyramid-style detail at every scale). It rewards exactly what a max or mean base loses:
    visible texture under hot IR regions and IR structure where the visible camera is dark. Levels weigh the same."""
    total, n = fused_y.new_zeros(()), 0
    f, x, y = flatten_clip(fused_y), flatten_clip(a), flatten_clip(b)
    for level in range(scales):
        if level:
            if min(f.shape[-2:]) < 8:
                break
            f, x, y = (F.avg_pool2d(v, 2) for v in (f, x, y))
        tx, ty = detail_target(x, y)
        fx, fy = sobel_xy(f)
        total = total + ((fx - tx).abs() + (fy - ty).abs()).mean()
        n += 1
    return total / n


def edge_transfer(fused_y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable Qabf (Xydeas & Petrovic, the project's ``xydeas`` convention: 3x3 Sobel, zero
    padding, alpha = atan(sy/sx)) per frame, (N,) in [0, 1]: the share of the sources' edge strength and
    orientation that reaches the fused frame. Equal to :func:`ftpfusion_ros.metrics.spatial.qabf` up to
    float rounding and the measure-zero cases (sx == 0, equal strengths) that the metric special-cases;
    ``1 - edge_transfer`` is a training loss that rewards edges of *both* cameras, at their own strength."""
    def strength_angle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sx, sy = sobel_xy(x.float(), border="zeros")
        strength = torch.sqrt(sx * sx + sy * sy + 1e-12)
        sx = torch.where(sx.abs() < 1e-6, torch.full_like(sx, 1e-6), sx)
        return strength, torch.atan(sy / sx)

    def sigmoid(params: tuple[float, float, float], x: torch.Tensor) -> torch.Tensor:
        gamma, kappa, sigma = params  # Gamma / (1 + exp(kappa (x - sigma))), as the metric
        return gamma * torch.sigmoid(-kappa * (x - sigma))

    g_f, al_f = strength_angle(fused_y)
    total = 0.0
    weight = 0.0
    for src in (a, b):
        g_x, al_x = strength_angle(src)
        with torch.no_grad():
            weight = weight + g_x
        ratio = torch.minimum(g_x, g_f) / torch.maximum(g_x, g_f)
        orient = 1.0 - (al_x - al_f).abs() / (math.pi / 2)
        q = sigmoid(QABF_STRENGTH, ratio) * sigmoid(QABF_ORIENTATION, orient)
        total = total + (q * g_x).sum((1, 2, 3))
    return total / weight.sum((1, 2, 3)).clamp_min(1e-12)


def source_terms(fused_y: torch.Tensor, ir_y: torch.Tensor, vis_y: torch.Tensor, w_detail: float,
                 w_edge: float) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
    """The project's additions to a frame-wise paper objective: ``w_detail`` * :func:`detail_loss` +
    ``w_edge`` * (1 - :func:`edge_transfer`); (weighted sum, {name: term}) over the terms switched on."""
    total: torch.Tensor | float = 0.0
    terms: dict[str, torch.Tensor] = {}
    if w_detail > 0:
        terms["detail"] = detail_loss(fused_y, ir_y, vis_y)
        total = total + w_detail * terms["detail"]
    if w_edge > 0:
        terms["edge"] = 1.0 - edge_transfer(fused_y, ir_y, vis_y).mean()
        total = total + w_edge * terms["edge"]
    return total, terms


def gaussian_kernel1d(size: int, sigma: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and positive, got {size}")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-0.5 * (r / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, size: int, sigma: float, mode: str) -> torch.Tensor:
    """(n, n) matrix applying the 1-D Gaussian with `mode` ('reflect' or 'replicate') border handling."""
    k = gaussian_kernel1d(size, sigma, torch.float64)
    r = size // 2
    idx = torch.arange(n)
    m = torch.zeros(n, n, dtype=torch.float64)
    for j in range(size):
        src = idx + j - r
        if mode == "reflect":
            src = src.abs()
            src = torch.where(src > n - 1, 2 * (n - 1) - src, src)
            src = src.clamp(0, n - 1)  # frames shorter than the kernel radius: reflect, then clamp
        else:
            src = src.clamp(0, n - 1)
        m.index_put_((idx, src), k[j].expand(n), accumulate=True)
    return m


@functools.lru_cache(maxsize=32)
def _blur_matrix_on(n: int, size: int, sigma: float, mode: str, dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    return _blur_matrix(n, size, sigma, mode).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, size: int = 11, sigma: float = 2.0, mode: str = "reflect") -> torch.Tensor:
    """Separable Gaussian low-pass of (..., H, W) frames, same size out, 'reflect' or 'replicate'
    border handling.

    Computed as M_h @ x @ M_w^T with the borders folded into the two (banded) matrices: on training
    crop sizes this is ~7x faster than a 1-channel convolution on CPU (forward + backward), and it is
    exact. Frames larger than 512 px per side use shifted adds instead (matrix cost grows as H*W*(H+W)).
    """
    if mode not in ("reflect", "replicate"):
        raise ValueError(f"blur padding must be 'reflect' or 'replicate', got {mode!r}")
    gaussian_kernel1d(size, sigma)  # validates size
    h, w = x.shape[-2:]
    if max(h, w) <= 512:
        mh = _blur_matrix_on(h, size, float(sigma), mode, x.dtype, x.device)
        mw = _blur_matrix_on(w, size, float(sigma), mode, x.dtype, x.device)
        return mh @ x @ mw.t()
    k = gaussian_kernel1d(size, sigma, x.dtype, x.device)
    r = size // 2
    lead = x.shape[:-2]
    y = x.reshape(-1, 1, h, w)
    pad_mode = mode if r < min(h, w) else "replicate"
    p = F.pad(y, (r, r, 0, 0), mode=pad_mode)
    y = sum(k[j] * p[..., j:j + w] for j in range(size))
    p = F.pad(y, (0, 0, r, r), mode=pad_mode)
    y = sum(k[j] * p[..., j:j + h, :] for j in range(size))
    return y.reshape(*lead, h, w)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, kernel_size: int = 11,
         sigma: float = 1.5, reduction: str = "elementwise_mean") -> torch.Tensor:
    """Gaussian-window SSIM (Wang et al. 2004) via torchmetrics, differentiable; clips are flattened
    into frames. `reduction='none'` gives one value per frame."""
    # imported here: torchmetrics pulls in scipy.signal (seconds of start-up) that other losses do not need
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, y = flatten_clip(x), flatten_clip(y)
    # torchmetrics needs frames at least as large as the window
    ks = min(kernel_size, x.shape[-1], x.shape[-2])
    ks -= (ks + 1) % 2
    return structural_similarity_index_measure(x.float(), y.float(), gaussian_kernel=True, sigma=sigma,
                                               kernel_size=ks, data_range=data_range, reduction=reduction)


def ssim_loss(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """1 - SSIM(x, y): 0 for identical images."""
    return 1.0 - ssim(x, y, data_range=data_range)


def charbonnier(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier penalty sqrt(x^2 + eps^2) - eps (element-wise; shifted so that it is 0 at 0)."""
    return torch.sqrt(x * x + eps * eps) - eps


def zero_loss(like: torch.Tensor) -> torch.Tensor:
    """A scalar 0 connected to `like`'s graph (so backward() works even when a term is empty)."""
    return like.sum() * 0.0


def entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy (nats) of probability vectors along `dim`."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim)


def max_entropy(n: int) -> float:
    return math.log(n)
