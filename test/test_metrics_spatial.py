"""Spatial fusion metrics: hand-computed values on tiny arrays, library agreement, known properties."""
import math

import cv2
import numpy as np
import pytest
import torch

from ftpfusion_ros.metrics import METRICS, SPATIAL_METRICS, parse_conventions, spatial_metrics
from ftpfusion_ros.metrics import spatial as S


def _textured(rng, shape=(64, 80), sigma=1.5):
    img = cv2.GaussianBlur(rng.uniform(0, 255, shape), (0, 0), sigma)
    return (img - img.min()) / (img.max() - img.min()) * 220 + 15


@pytest.fixture
def triplet(rng):
    a = _textured(rng)
    b = _textured(rng, sigma=1.0)
    f = np.clip(0.6 * a + 0.4 * b + rng.normal(0, 2, a.shape), 0, 255)
    return f, a, b


# ------------------------------------------------------------------------------------ hand values
def test_entropy_by_hand():
    assert S.entropy(np.array([[0.0, 0.0], [255.0, 255.0]])) == pytest.approx(1.0)
    assert S.entropy(np.array([[0.0, 1.0], [2.0, 3.0]])) == pytest.approx(2.0)
    assert S.entropy(np.full((3, 3), 77.0)) == 0.0
    # values are rounded to the 256 grey levels first
    assert S.entropy(np.array([[0.2, 0.4], [0.6, 0.8]])) == pytest.approx(1.0)


def test_entropy_matches_scikit_image(rng):
    from skimage.measure import shannon_entropy

    img = np.rint(_textured(rng))
    assert S.entropy(img) == pytest.approx(shannon_entropy(img.astype(np.uint8), base=2), abs=1e-12)


def test_sd_sf_ag_by_hand():
    f = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert S.standard_deviation(np.array([[0.0, 2.0], [4.0, 6.0]])) == pytest.approx(math.sqrt(5.0))
    # horizontal diffs 1, 2 -> RF^2 = 2.5; vertical diffs 2, 3 -> CF^2 = 6.5
    assert S.spatial_frequency(f) == pytest.approx(3.0)
    assert S.spatial_frequency(f, convention="mn") == pytest.approx(math.sqrt((5 + 13) / 4))
    # numpy.gradient on 2x2: gx = [[1,1],[2,2]], gy = [[2,3],[2,3]]
    expected = np.mean([math.sqrt(2.5), math.sqrt(5.0), 2.0, math.sqrt(6.5)])
    assert S.average_gradient(f) == pytest.approx(expected)
    assert S.average_gradient(f, convention="forward") == pytest.approx(math.sqrt(2.5))
    with pytest.raises(ValueError):
        S.spatial_frequency(f, convention="bogus")


def test_mi_by_hand_and_units():
    a = np.array([[0.0, 0.0], [255.0, 255.0]])
    b = np.full((2, 2), 9.0)
    f = a.copy()
    assert S.mutual_information(f, a, b) == pytest.approx(math.log(2))  # I(F;A) = H = ln 2, I(F;B) = 0
    assert S.mutual_information(f, a, b, unit="bits") == pytest.approx(1.0)
    assert S.mutual_information(f, a, b, convention="mean") == pytest.approx(math.log(2) / 2)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_mi_matches_torchmetrics(triplet):
    from torchmetrics.functional.clustering import mutual_info_score

    f, a, b = triplet
    lv = lambda x: torch.from_numpy(np.rint(x).astype(np.int64).ravel())  # noqa: E731
    ref = float(mutual_info_score(lv(f), lv(a))) + float(mutual_info_score(lv(f), lv(b)))
    assert S.mutual_information(f, a, b) == pytest.approx(ref, rel=1e-5)


def test_scd_by_hand(rng):
    a, b = rng.uniform(0, 255, (2, 5, 5))
    f = rng.uniform(0, 255, (5, 5))
    expected = np.corrcoef((f - b).ravel(), a.ravel())[0, 1] + np.corrcoef((f - a).ravel(), b.ravel())[0, 1]
    assert S.scd(f, a, b) == pytest.approx(expected)
    # F = A + B transfers both sources entirely: both correlations are 1
    a, b = a * 0.5, b * 0.5
    assert S.scd(a + b, a, b) == pytest.approx(2.0)
    # a constant source has no correlation (undefined -> 0): only the other term remains
    assert S.scd(f, np.full((5, 5), 3.0), b) == pytest.approx(np.corrcoef((f - 3.0).ravel(), b.ravel())[0, 1])


def _q(g, a):
    return 0.9994 / (1 + math.exp(-15 * (g - 0.5))) * 0.9879 / (1 + math.exp(-22 * (a - 0.8)))


def test_qabf_by_hand():
    a = np.zeros((6, 6))
    a[:, 3:] = 200.0  # a vertical step edge
    b = np.zeros((6, 6))  # a constant visible image has no edges: only A's edges count
    # F = A / 2: every edge of A keeps its orientation at half the strength -> G = 0.5, A = 1
    assert S.qabf(a / 2, a, b) == pytest.approx(_q(0.5, 1.0))
    # F = A: equal strengths; the definition uses G = 1, the widely copied code G = g_F there
    assert S.qabf(a, a, b) == pytest.approx(_q(1.0, 1.0))
    g_a, _ = S._sobel(a)
    w = g_a[g_a > 0]
    quirk = sum(_q(g, 1.0) * g for g in w) / w.sum()
    assert S.qabf(a, a, b, convention="reference_code") == pytest.approx(quirk)
    assert S.qabf(a, a, b, convention="reference_code") != pytest.approx(S.qabf(a, a, b), abs=1e-5)


def test_ssim_by_hand_one_window(rng):
    x = rng.uniform(0, 255, (11, 11))
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255)
    g = cv2.getGaussianKernel(11, 1.5)[:, 0]
    w = np.outer(g, g)
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx**2, (w * y * y).sum() - my**2
    vxy = (w * x * y).sum() - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = (2 * mx * my + c1) * (2 * vxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert S.ssim_pair(x, y) == pytest.approx(expected, rel=1e-10)


# --------------------------------------------------------------------------- library agreement
def test_ssim_matches_scikit_image_and_torchmetrics(triplet):
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    f, a, b = triplet
    for window in ("gaussian", "uniform7"):
        assert S.ssim(f, a, b, window=window) == pytest.approx(S.ssim(f, a, b, window=window, impl="skimage"),
                                                               abs=1e-10)
    # torchmetrics averages over the reflect-padded full image; on the valid region (5 px border
    # cropped, as scikit-image and Wang et al. do) its SSIM map is the same
    t = lambda x: torch.from_numpy(x)[None, None]  # noqa: E731
    ref = 0.0
    for src in (a, b):
        _, full = tm_ssim(t(f), t(src), data_range=255.0, return_full_image=True)
        ref += float(full[0, 0, 5:-5, 5:-5].mean())
    assert S.ssim(f, a, b) == pytest.approx(ref, abs=1e-9)


def test_vif_matches_torchmetrics(triplet):
    f, a, b = triplet
    assert S.vif(f, a, b) == pytest.approx(S.vif(f, a, b, impl="torchmetrics"), rel=1e-5)
    assert S.vifp(a, f) == pytest.approx(S.vifp(a, f, impl="torchmetrics"), rel=1e-5)


# ----------------------------------------------------------------------------------- properties
def test_identical_images(triplet):
    _, a, _ = triplet
    assert S.vifp(a, a) == pytest.approx(1.0)
    assert S.vif(a, a, a) == pytest.approx(2.0)
    assert S.vif(a, a, a, convention="mean") == pytest.approx(1.0)
    assert S.ssim(a, a, a) == pytest.approx(2.0)
    assert S.qabf(a, a, a) == pytest.approx(_q(1.0, 1.0))
    assert S.mutual_information(a, a, a) == pytest.approx(2 * S.entropy(a) * math.log(2), rel=1e-9)


def test_swapped_sources_give_the_same_value(triplet):
    f, a, b = triplet
    values = spatial_metrics(f, a, b)
    swapped = spatial_metrics(f, b, a)
    for name in SPATIAL_METRICS:
        assert swapped[name] == pytest.approx(values[name], rel=1e-9), name


def test_constant_images(triplet):
    _, a, b = triplet
    c = np.full_like(a, 100.0)
    for fn in (S.entropy, S.standard_deviation, S.spatial_frequency, S.average_gradient):
        assert fn(c) == 0.0
    assert S.mutual_information(c, a, b) == 0.0
    assert S.vif(c, a, b) == pytest.approx(0.0, abs=1e-12)  # nothing of either source survives
    # zero padding: a constant 0 image has no edges at all (a non-zero constant has border edges)
    assert S.qabf(np.zeros_like(a), a, b) < 1e-3
    z = np.zeros_like(a)
    assert math.isnan(S.qabf(z, z, z))  # no edges to transfer: undefined
    assert math.isnan(S.vifp(c, a))  # a constant reference carries no information


@pytest.mark.parametrize("name", ["vif", "qabf", "ssim", "scd"])
def test_monotonic_with_growing_noise(triplet, rng, name):
    f, a, b = triplet
    noise = rng.normal(0, 1, f.shape)
    vals = [spatial_metrics(np.clip(f + s * noise, 0, 255), a, b, [name])[name] for s in (0, 5, 15, 40)]
    assert all(x > y for x, y in zip(vals, vals[1:])), vals


@pytest.mark.parametrize("name", ["en", "sd", "mi", "vif", "qabf"])
def test_monotonic_with_growing_contrast_loss(triplet, name):
    # histogram MI is biased upwards by added noise on small images, so MI is checked against
    # a corruption that removes information without adding any: fading the fused frame to grey
    f, a, b = triplet
    vals = [spatial_metrics((1 - k) * f + k * 128.0, a, b, [name])[name] for k in (0.0, 0.3, 0.6, 0.9)]
    assert all(x > y for x, y in zip(vals, vals[1:])), vals


def test_monotonic_with_growing_blur(triplet):
    f, a, b = triplet
    blurred = [f] + [cv2.GaussianBlur(f, (0, 0), s) for s in (0.8, 1.5, 3.0)]
    for fn in (S.spatial_frequency, S.average_gradient, S.qabf):
        vals = [fn(x, a, b) for x in blurred]
        assert all(x > y for x, y in zip(vals, vals[1:])), (fn.__name__, vals)


def test_small_frames_give_nan_not_errors(rng):
    a, b, f = rng.uniform(0, 255, (3, 8, 9))
    vals = spatial_metrics(f, a, b)
    assert math.isnan(vals["vif"]) and math.isnan(vals["ssim"])
    assert np.isfinite([vals[n] for n in ("en", "sd", "sf", "ag", "mi", "scd", "qabf")]).all()
    with pytest.raises(ValueError):
        S.vifp(a, f)


def test_input_checks():
    with pytest.raises(ValueError, match="0..255"):
        S.entropy(np.full((4, 4), 1000.0))
    with pytest.raises(ValueError, match="differ in size"):
        S.scd(np.zeros((4, 4)), np.zeros((4, 5)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="2-D"):
        S.standard_deviation(np.zeros((2, 4, 4)))


def test_registry_and_conventions(triplet):
    f, a, b = triplet
    assert set(METRICS) >= {"en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "ssim", "biswe", "ms2r", "flowd",
                            "mmci_approx", "tcpe_approx", "flicker"}
    conv = parse_conventions("vfbench,qabf=reference_code,mi.unit=bits")
    assert conv == {"vif": {"convention": "mean"}, "ssim": {"convention": "mean"},
                    "mi": {"convention": "mean", "unit": "bits"}, "qabf": {"convention": "reference_code"}}
    d = spatial_metrics(f, a, b)
    m = spatial_metrics(f, a, b, conventions=conv)
    assert m["vif"] == pytest.approx(d["vif"] / 2)
    assert m["ssim"] == pytest.approx(d["ssim"] / 2)
    assert m["mi"] == pytest.approx(d["mi"] / 2 / math.log(2))
    for bad in ("vif.bogus=1", "nosuch=mean", "nopreset"):
        with pytest.raises(ValueError):
            parse_conventions(bad)
