"""Spatial (per-frame) fusion metrics: EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM.

Inputs: ``f`` fused, ``a`` infrared, ``b`` visible luminance, 2-D float arrays on the 8-bit grey
scale 0..255 (see :mod:`.common`). Every function returns a Python float for one frame; clips are
scored by averaging frames (done by the evaluation runner). Higher is better for all of them.

Where published code differs, a ``convention`` argument selects the variant; the defaults follow the
most widely copied multi-modality image fusion (MMIF) evaluation code (CDDFuse-style "sum over the two
sources"); ``convention="mean"`` gives the VF-Bench-style average of the two sources. See
docs/metrics.md for units and what each default matches.

Implementations: EN and MI use 256-bin histograms (numpy ``bincount``; 20x faster than the library
versions, agreement with scikit-image ``shannon_entropy`` and torchmetrics ``mutual_info_score`` is
tested); VIFp and SSIM run separable OpenCV filters by default (``impl="opencv"``, ~30x faster than the
libraries on 640x480 frames) and can call torchmetrics / scikit-image (``impl="torchmetrics"`` /
``impl="skimage"``); the tests check that both agree to ~1e-6.

``cache``: MI, VIF, Qabf and SSIM accept a dict in which they keep the sources' features (histogram
levels, VIF pyramids, Sobel responses, SSIM statistics); pass one fresh dict per frame when scoring
several fused candidates against the SAME sources (the evaluation runner does), never across frames.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .common import check_triplet, as_luma, filter_valid, gaussian_kernel_1d, pearson

_LN2 = math.log(2.0)


def _memo(cache: dict | None, key: tuple, fn):
    """`fn()` memoised in `cache` (a dict shared by calls with the SAME sources; None: no caching)."""
    if cache is None:
        return fn()
    if key not in cache:
        cache[key] = fn()
    return cache[key]


def _reduce(x: float, y: float, convention: str) -> float:
    if convention == "sum":
        return x + y
    if convention == "mean":
        return 0.5 * (x + y)
    raise ValueError(f"unknown convention {convention!r}; expected 'sum' or 'mean'")


def _histogram_256(img: np.ndarray) -> np.ndarray:
    idx = np.clip(np.rint(img), 0, 255).astype(np.int64)
    return np.bincount(idx.ravel(), minlength=256).astype(np.float64)


# --------------------------------------------------------------------------------------------- EN / SD
def entropy(f: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None) -> float:
    """EN: Shannon entropy of the 256-bin histogram of round(F), in bits (0..8)."""
    f = as_luma(f, "fused")
    p = _histogram_256(f)
    p = p[p > 0] / f.size
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def standard_deviation(f: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None) -> float:
    """SD: population standard deviation of F, grey levels."""
    return float(as_luma(f, "fused").std())


# --------------------------------------------------------------------------------------------- SF / AG
def spatial_frequency(f: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None,
                      convention: str = "mean") -> float:
    """SF = sqrt(RF^2 + CF^2), grey levels per pixel.

    RF / CF are the root mean square of horizontal / vertical neighbour differences.
    ``convention="mean"`` (default, the common Python code) averages over the (H)(W-1) / (H-1)(W)
    differences; ``"mn"`` divides both sums by H*W as some MATLAB code does (slightly smaller values).
    """
    f = as_luma(f, "fused")
    dh = np.diff(f, axis=1)
    dv = np.diff(f, axis=0)
    if convention == "mean":
        rf2 = float((dh**2).mean()) if dh.size else 0.0
        cf2 = float((dv**2).mean()) if dv.size else 0.0
    elif convention == "mn":
        rf2 = float((dh**2).sum()) / f.size
        cf2 = float((dv**2).sum()) / f.size
    else:
        raise ValueError(f"unknown SF convention {convention!r}; expected 'mean' or 'mn'")
    return math.sqrt(rf2 + cf2)


def average_gradient(f: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None,
                     convention: str = "gradient") -> float:
    """AG: mean of sqrt((Gx^2 + Gy^2) / 2), grey levels per pixel.

    ``convention="gradient"`` (default; the common Python code): central differences inside, one-sided
    at the borders (``numpy.gradient``), averaged over all H*W pixels. ``"forward"``: forward differences
    over the (H-1)(W-1) top-left pixels (the classic MATLAB loop).
    """
    f = as_luma(f, "fused")
    if convention == "gradient":
        if min(f.shape) < 2:
            return 0.0
        gy, gx = np.gradient(f)
    elif convention == "forward":
        gx = f[:-1, 1:] - f[:-1, :-1]
        gy = f[1:, :-1] - f[:-1, :-1]
        if gx.size == 0:
            return 0.0
    else:
        raise ValueError(f"unknown AG convention {convention!r}; expected 'gradient' or 'forward'")
    return float(np.sqrt((gx**2 + gy**2) / 2.0).mean())


# ------------------------------------------------------------------------------------------------- MI
def _levels(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.int64)


def _mi_pair(xi: np.ndarray, yi: np.ndarray) -> float:
    """Mutual information (nats) of two 8-bit level images from their 256x256 joint histogram."""
    joint = np.bincount((xi * 256 + yi).ravel(), minlength=65536).reshape(256, 256).astype(np.float64)
    joint /= xi.size
    px = joint.sum(axis=1)
    py = joint.sum(axis=0)
    nz = joint > 0
    outer = np.outer(px, py)[nz]
    return max(0.0, float((joint[nz] * np.log(joint[nz] / outer)).sum()))


def mutual_information(f: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "sum",
                       unit: str = "nats", cache: dict | None = None) -> float:
    """MI = I(F;A) + I(F;B) (``"sum"``, default) or their mean, from 256x256 joint histograms.

    ``unit="nats"`` (default) matches the widely used code (scikit-learn's ``mutual_info_score``);
    ``unit="bits"`` divides by ln 2 (MATLAB code using log2).
    """
    f, a, b = check_triplet(f, a, b)
    fi = _levels(f)
    ai = _memo(cache, ("levels", "a"), lambda: _levels(a))
    bi = _memo(cache, ("levels", "b"), lambda: _levels(b))
    value = _reduce(_mi_pair(fi, ai), _mi_pair(fi, bi), convention)
    if unit == "bits":
        return value / _LN2
    if unit != "nats":
        raise ValueError(f"unknown MI unit {unit!r}; expected 'nats' or 'bits'")
    return value


# ------------------------------------------------------------------------------------------------ SCD
def scd(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SCD (Aslantas & Bendes 2015): corr(F - B, A) + corr(F - A, B), global Pearson; -2..2, unitless.

    A correlation with a constant image is undefined and counts as 0.
    """
    f, a, b = check_triplet(f, a, b)
    return pearson(f - b, a) + pearson(f - a, b)


# ------------------------------------------------------------------------------------------------ VIF
_VIF_EPS = 1e-10


def _vif_scales(img: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per scale: (image, local mean, local variance, kernel) of the 4-scale VIFp pyramid."""
    out = []
    img = img.astype(np.float64)
    for scale in range(4):
        size = 2 ** (4 - scale) + 1  # 17, 9, 5, 3
        k = gaussian_kernel_1d(size, size / 5.0)
        if scale > 0:
            img = filter_valid(img, k)[::2, ::2]
        mu = filter_valid(img, k)
        var = np.maximum(filter_valid(img * img, k) - mu * mu, 0.0)
        out.append((img, mu, var, k))
    return out


def _vifp_from_scales(ref_scales, dist_scales, sigma_n_sq: float) -> float:
    """Pixel-domain VIF (Sheikh & Bovik) with the guards of the reference code / torchmetrics."""
    num = 0.0
    den = 0.0
    for (ref, mu1, s1, k), (dist, mu2, s2, _) in zip(ref_scales, dist_scales):
        s12 = filter_valid(ref * dist, k) - mu1 * mu2
        flat_ref = s1 < _VIF_EPS
        flat_dist = s2 < _VIF_EPS
        g = s12 / (s1 + _VIF_EPS)
        neg = g < 0
        # the guards, in the reference order: flat reference -> g 0, sv = s2; flat distorted -> g 0,
        # sv 0; negative gain -> g 0, sv = s2
        sv = np.where(flat_dist, 0.0, np.where(flat_ref | neg, s2, s2 - g * s12))
        g = np.where(flat_ref | flat_dist | neg, 0.0, g)
        s1 = np.where(flat_ref, 0.0, s1)
        sv = np.maximum(sv, _VIF_EPS)
        num += float(np.log1p(g * g * s1 / (sv + sigma_n_sq)).sum())
        den += float(np.log1p(s1 / sigma_n_sq).sum())
    # the ln -> log10 factor cancels in the ratio
    return num / den if den > 0 else float("nan")


def _vifp_opencv(ref: np.ndarray, dist: np.ndarray, sigma_n_sq: float) -> float:
    return _vifp_from_scales(_vif_scales(ref), _vif_scales(dist), sigma_n_sq)


def _vifp_torchmetrics(ref: np.ndarray, dist: np.ndarray, sigma_n_sq: float) -> float:
    import torch
    from torchmetrics.functional.image import visual_information_fidelity

    # float32: torchmetrics' float64 convolutions are ~20x slower on CPU
    p = torch.from_numpy(np.ascontiguousarray(dist, dtype=np.float32))[None, None]
    t = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))[None, None]
    return float(visual_information_fidelity(p, t, sigma_n_sq=sigma_n_sq))


def vifp(ref: np.ndarray, dist: np.ndarray, sigma_n_sq: float = 2.0, impl: str = "opencv") -> float:
    """VIFp(ref -> dist): 4 scales, Gaussian windows 17/9/5/3 (sigma = size/5), 'valid' filtering.

    Needs images of at least 41x41 pixels (the four valid-filtered scales); NaN where the reference
    carries no information (a constant image).
    """
    ref = as_luma(ref, "reference")
    dist = as_luma(dist, "distorted")
    if ref.shape != dist.shape:
        raise ValueError(f"reference {ref.shape} and distorted {dist.shape} differ in size")
    if min(ref.shape) < 41:
        raise ValueError(f"VIFp needs frames of at least 41x41 pixels, got {ref.shape}")
    if impl == "opencv":
        return _vifp_opencv(ref, dist, sigma_n_sq)
    if impl == "torchmetrics":
        return _vifp_torchmetrics(ref, dist, sigma_n_sq)
    raise ValueError(f"unknown VIF impl {impl!r}; expected 'opencv' or 'torchmetrics'")


def vif(f: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "sum", sigma_n_sq: float = 2.0,
        impl: str = "opencv", cache: dict | None = None) -> float:
    """VIF = VIFp(A -> F) + VIFp(B -> F) (``"sum"``, CDDFuse-style, default) or their mean (VF-Bench).

    Unitless; 1 per source when F equals that source. noise variance sigma_n^2 = 2 on 0..255 data.
    NaN for frames smaller than 41x41 (use :func:`vifp` to get an error instead).
    """
    f, a, b = check_triplet(f, a, b)
    if min(f.shape) < 41:
        return float("nan")  # too small for the four valid-filtered scales
    if impl == "opencv":
        f_scales = _vif_scales(f)  # the fused pyramid is shared by both sources
        a_scales = _memo(cache, ("vif_scales", "a"), lambda: _vif_scales(a))
        b_scales = _memo(cache, ("vif_scales", "b"), lambda: _vif_scales(b))
        return _reduce(_vifp_from_scales(a_scales, f_scales, sigma_n_sq),
                       _vifp_from_scales(b_scales, f_scales, sigma_n_sq), convention)
    return _reduce(vifp(a, f, sigma_n_sq, impl), vifp(b, f, sigma_n_sq, impl), convention)


# ----------------------------------------------------------------------------------------------- Qabf
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
_SOBEL_Y = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)
#: Qabf's sigmoids Gamma / (1 + exp(kappa (x - sigma))) of edge strength and orientation (also used by the
#: differentiable Qabf of the training losses, ftpfusion_ros.losses.common.edge_transfer)
QABF_STRENGTH = (0.9994, -15.0, 0.5)  # Gamma_g, kappa_g, sigma_g
QABF_ORIENTATION = (0.9879, -22.0, 0.8)  # Gamma_a, kappa_a, sigma_a


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength g and orientation alpha = atan(sy/sx) (pi/2 where sx == 0); zero padding."""
    sx = cv2.filter2D(img, cv2.CV_64F, _SOBEL_X, borderType=cv2.BORDER_CONSTANT)
    sy = cv2.filter2D(img, cv2.CV_64F, _SOBEL_Y, borderType=cv2.BORDER_CONSTANT)
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
    return g, alpha


def _edge_preservation(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray,
                       convention: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(g_x > g_f, g_f / g_x, g_x / g_f)
    if convention == "xydeas":
        strength = np.where(g_x == g_f, 1.0, ratio)  # equal strengths are perfectly preserved
    elif convention == "reference_code":
        strength = np.where(g_x == g_f, g_f, ratio)  # the widely copied code's quirk: G = g_F there
    else:
        raise ValueError(f"unknown Qabf convention {convention!r}; expected 'xydeas' or 'reference_code'")
    orient = 1.0 - np.abs(a_x - a_f) / (np.pi / 2)
    (g_gamma, g_kappa, g_sigma), (a_gamma, a_kappa, a_sigma) = QABF_STRENGTH, QABF_ORIENTATION
    qg = g_gamma / (1.0 + np.exp(g_kappa * (strength - g_sigma)))
    qa = a_gamma / (1.0 + np.exp(a_kappa * (orient - a_sigma)))
    return qg * qa


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "xydeas",
         cache: dict | None = None) -> float:
    """Qabf (Xydeas & Petrovic 2000): edge information transferred from A and B to F, 0..1, unitless.

    3x3 Sobel with zero padding; Q = sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B).
    ``convention="xydeas"`` (default) uses G = 1 where the source and fused edge strengths are equal;
    ``"reference_code"`` reproduces the widely copied code, which sets G = g_F there (a quirk that only
    matters where F copies a source exactly; on M3SVD frames the two differ by < 0.001).
    NaN when both sources are constant (no edges to transfer).
    """
    f, a, b = check_triplet(f, a, b)
    g_a, al_a = _memo(cache, ("sobel", "a"), lambda: _sobel(a))
    g_b, al_b = _memo(cache, ("sobel", "b"), lambda: _sobel(b))
    g_f, al_f = _sobel(f)
    q_af = _edge_preservation(g_a, al_a, g_f, al_f, convention)
    q_bf = _edge_preservation(g_b, al_b, g_f, al_f, convention)
    den = float((g_a + g_b).sum())
    if den <= 0:
        return float("nan")
    return float((q_af * g_a + q_bf * g_b).sum() / den)


# ----------------------------------------------------------------------------------------------- SSIM
def _ssim_window(window: str) -> tuple[np.ndarray, float]:
    if window == "gaussian":
        return gaussian_kernel_1d(11, 1.5), 1.0
    if window == "uniform7":
        return np.full(7, 1.0 / 7.0), 49.0 / 48.0  # sample covariance, as scikit-image's defaults
    raise ValueError(f"unknown SSIM window {window!r}; expected 'gaussian' or 'uniform7'")


def _ssim_stats(x: np.ndarray, window: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, local mean, local variance) for SSIM."""
    k, cov_norm = _ssim_window(window)
    mx = filter_valid(x, k)
    return x, mx, cov_norm * (filter_valid(x * x, k) - mx * mx)


def _ssim_from_stats(sx, sy, data_range: float, window: str) -> float:
    k, cov_norm = _ssim_window(window)
    (x, mx, vx), (y, my, vy) = sx, sy
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    vxy = cov_norm * (filter_valid(x * y, k) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def _ssim_opencv(x: np.ndarray, ys: list[np.ndarray], data_range: float, window: str) -> list[float]:
    """SSIM(x, y) for each y, sharing x's local statistics."""
    k, _ = _ssim_window(window)
    if min(x.shape) < k.size:
        raise ValueError(f"SSIM needs frames of at least {k.size}x{k.size} pixels, got {x.shape}")
    sx = _ssim_stats(x, window)
    return [_ssim_from_stats(sx, _ssim_stats(y, window), data_range, window) for y in ys]


def _ssim_skimage(x: np.ndarray, y: np.ndarray, data_range: float, window: str) -> float:
    from skimage.metrics import structural_similarity

    if window == "gaussian":
        return float(structural_similarity(x, y, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False))
    if window == "uniform7":
        return float(structural_similarity(x, y, data_range=data_range, win_size=7))
    raise ValueError(f"unknown SSIM window {window!r}; expected 'gaussian' or 'uniform7'")


def ssim_pair(x: np.ndarray, y: np.ndarray, data_range: float = 255.0, window: str = "gaussian",
              impl: str = "opencv") -> float:
    """SSIM of two luminance images (mean over the valid region, borders excluded)."""
    x = as_luma(x, "x")
    y = as_luma(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"SSIM inputs differ in size: {x.shape} vs {y.shape}")
    if impl == "opencv":
        return _ssim_opencv(x, [y], data_range, window)[0]
    if impl == "skimage":
        return _ssim_skimage(x, y, data_range, window)
    raise ValueError(f"unknown SSIM impl {impl!r}; expected 'opencv' or 'skimage'")


def ssim(f: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "sum", data_range: float = 255.0,
         window: str = "gaussian", impl: str = "opencv", cache: dict | None = None) -> float:
    """SSIM = SSIM(F, A) + SSIM(F, B) (``"sum"``, CDDFuse-style, default) or their mean (VF-Bench).

    Wang et al. constants: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population covariances,
    ``data_range`` 255 passed explicitly (never inferred from the dtype). ``window="uniform7"`` gives
    scikit-image's defaults (7x7 box, sample covariance), which some MMIF code uses implicitly.
    NaN for frames smaller than the window.
    """
    f, a, b = check_triplet(f, a, b)
    if min(f.shape) < _ssim_window(window)[0].size:
        return float("nan")  # smaller than one window
    if impl == "opencv":
        sf = _ssim_stats(f, window)
        sa = _memo(cache, ("ssim_stats", window, "a"), lambda: _ssim_stats(a, window))
        sb = _memo(cache, ("ssim_stats", window, "b"), lambda: _ssim_stats(b, window))
        s_a, s_b = _ssim_from_stats(sf, sa, data_range, window), _ssim_from_stats(sf, sb, data_range, window)
    else:
        s_a, s_b = ssim_pair(f, a, data_range, window, impl), ssim_pair(f, b, data_range, window, impl)
    return _reduce(s_a, s_b, convention)
