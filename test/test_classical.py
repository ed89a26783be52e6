"""Classical fusion baselines and the shared torch filters they are built from."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ftpfusion_ros.models import FrameFusionModel, build_model, model_names
from ftpfusion_ros.models.classical import guided_filter
from ftpfusion_ros.nn.pyramid import collapse_pyramid, laplacian_pyramid
from ftpfusion_ros.nn.colour import rgb_to_y, rgb_to_ycbcr
from ftpfusion_ros.nn.filters import (box_filter, gaussian_blur, gaussian_kernel1d, laplacian, median_filter,
                                      pad2d, separable_filter, sobel)

NAMES = ["average", "max_luminance", "laplacian", "two_scale", "guided_filter"]


def pair(b=2, h=37, w=45, seed=0):
    g = torch.Generator().manual_seed(seed)
    ir = torch.rand(b, 1, h, w, generator=g)
    vis = torch.rand(b, 3, h, w, generator=g)
    return ir, vis


def smooth_pair(h=48, w=64):
    """Textured, in-gamut visible frame and a cool flat IR frame with a hot spot in the middle."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    tex = 0.35 + 0.1 * torch.sin(xx / 3) * torch.cos(yy / 4)
    vis = torch.stack([tex, tex * 0.9 + 0.05, tex * 1.1 - 0.02])[None].clamp(0, 1)
    ir = torch.full((1, 1, h, w), 0.2)
    ir[..., h // 2 - 3:h // 2 + 3, w // 2 - 3:w // 2 + 3] = 1.0
    return ir, vis


@pytest.mark.parametrize("name", NAMES)
def test_build_shape_range(name):
    assert name in model_names()
    model = build_model(name)
    assert isinstance(model, FrameFusionModel)
    assert model.name == name and model.learned is False and model.temporal is False and model.window == 1
    ir, vis = pair()
    out = model.fuse_frame(ir, vis)
    assert out.shape == (2, 3, 37, 45) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # the clip interface (B,C,T,H,W) runs frame by frame
    clip = model(ir[:, :, None].expand(-1, -1, 2, -1, -1), vis[:, :, None].expand(-1, -1, 2, -1, -1))
    assert clip.shape == (2, 3, 2, 37, 45)
    torch.testing.assert_close(clip[:, :, 1], out)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (17, 64)])
def test_any_size(name, size):
    ir, vis = pair(1, *size)
    out = build_model(name).fuse_frame(ir, vis)
    assert out.shape == (1, 3, *size) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_identical_inputs_give_the_image_back(name):
    _, vis = smooth_pair()
    ir = rgb_to_y(vis)
    out = build_model(name).fuse_frame(ir, vis)
    torch.testing.assert_close(out, vis, atol=2e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_input_is_fused_in_float32(name):
    ir, vis = smooth_pair()
    model = build_model(name)
    out = model.fuse_frame(ir.half(), vis.half())
    assert out.dtype == torch.float16
    reference = model.fuse_frame(ir, vis)
    torch.testing.assert_close(out.float(), reference, atol=3e-3, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):   # the engine's reduced-precision mode
        torch.testing.assert_close(model.fuse_frame(ir, vis), reference, atol=1e-6, rtol=0)


def test_average_is_the_mean_of_luminances_with_visible_chroma():
    ir, vis = smooth_pair()
    out = build_model("average").fuse_frame(ir, vis)
    ycc_out, ycc_vis = rgb_to_ycbcr(out), rgb_to_ycbcr(vis)
    expected_y = 0.5 * (ir + rgb_to_y(vis))
    torch.testing.assert_close(ycc_out[:, :1], expected_y, atol=1e-5, rtol=0)
    torch.testing.assert_close(ycc_out[:, 1:], ycc_vis[:, 1:], atol=1e-5, rtol=0)


def test_max_luminance_picks_the_brighter():
    ir, vis = smooth_pair()
    ir = ir * 0.9      # keep the hot spot's fused colour inside the RGB gamut (no clamping)
    vis_y = rgb_to_y(vis)
    model = build_model("max_luminance")
    out = model.fuse_frame(ir, vis)
    assert 0 < out.min() and out.max() < 1
    out_y = rgb_to_y(out)
    torch.testing.assert_close(out_y, torch.maximum(ir, vis_y), atol=1e-5, rtol=0)
    hot = ir > vis_y
    assert hot.any() and (~hot).any()
    assert (out_y[hot] - ir[hot]).abs().max() < 1e-5
    assert (out_y[~hot] - vis_y[~hot]).abs().max() < 1e-5


def test_laplacian_with_one_level_is_average():
    ir, vis = pair()
    torch.testing.assert_close(build_model("laplacian", {"levels": 1}).fuse_frame(ir, vis),
                               build_model("average").fuse_frame(ir, vis), atol=1e-6, rtol=0)
    assert not torch.allclose(build_model("laplacian").fuse_frame(ir, vis), build_model("average").fuse_frame(ir, vis))


def test_pyramid_collapses_exactly_and_levels_shrink():
    x = torch.rand(2, 1, 37, 50)
    pyr = laplacian_pyramid(x, 4)
    assert [p.shape[-2:] for p in pyr] == [(37, 50), (19, 25), (10, 13), (5, 7)]
    torch.testing.assert_close(collapse_pyramid(pyr), x, atol=1e-6, rtol=0)
    model = build_model("laplacian", {"levels": 9})
    assert model.effective_levels(480, 640) == 7 and model.effective_levels(3, 640) == 1


@pytest.mark.parametrize("name", ["laplacian", "two_scale", "guided_filter", "max_luminance"])
def test_ir_hot_spot_survives(name):
    ir, vis = smooth_pair()
    out_y = rgb_to_y(build_model(name).fuse_frame(ir, vis))
    vis_y = rgb_to_y(vis)
    c = (slice(None), slice(None), slice(22, 26), slice(30, 34))
    assert (out_y[c] - vis_y[c]).mean() > 0.3, name          # the target shows up
    far = (slice(None), slice(None), slice(0, 10), slice(0, 10))
    assert (out_y[far] - vis_y[far]).abs().mean() < 0.12, name  # the background keeps the visible scene


def test_fusion_keeps_visible_detail_over_flat_ir():
    """Multi-scale methods keep the visible texture where the IR is flat (average halves it)."""
    ir, vis = smooth_pair()
    vis_y = rgb_to_y(vis)
    detail = (vis_y - box_filter(vis_y, 3)).std()
    for name in ("laplacian", "two_scale", "guided_filter"):
        out_y = rgb_to_y(build_model(name).fuse_frame(ir, vis))
        assert (out_y - box_filter(out_y, 3))[..., :16, :16].std() > 0.7 * detail, name


def test_bad_inputs_and_config():
    ir, vis = pair()
    model = build_model("average")
    with pytest.raises(ValueError):
        model.fuse_frame(vis, ir)
    with pytest.raises(ValueError):
        model.fuse_frame(ir[:, :, :5], vis)
    with pytest.raises(ValueError):
        build_model("two_scale", {"base_size": 4})
    with pytest.raises(ValueError):
        build_model("laplacian", {"octaves": 3})


# ------------------------------------------------------------------------------------------- filters
def test_filters_match_opencv():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 23, 31, generator=g)
    xn = x[0, 0].numpy()
    for r in (1, 4):
        ref = cv2.blur(xn, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(box_filter(x, r)[0, 0].numpy(), ref, atol=1e-6)
        for method in ("conv", "taps", "cumsum"):
            np.testing.assert_allclose(box_filter(x, r, method=method)[0, 0].numpy(), ref, atol=1e-6)
        ones = np.ones_like(xn)
        ref_n = (cv2.boxFilter(xn, -1, (2 * r + 1,) * 2, normalize=False, borderType=cv2.BORDER_CONSTANT)
                 / cv2.boxFilter(ones, -1, (2 * r + 1,) * 2, normalize=False, borderType=cv2.BORDER_CONSTANT))
        np.testing.assert_allclose(box_filter(x, r, "normalized")[0, 0].numpy(), ref_n, atol=1e-6)
        np.testing.assert_allclose(box_filter(x, r, "normalized", method="cumsum", precise=False)[0, 0].numpy(),
                                   ref_n, atol=1e-5)
    k = gaussian_kernel1d(1.5, 4)
    assert k.numel() == 9 and abs(float(k.sum()) - 1) < 1e-6
    ref = cv2.sepFilter2D(xn, -1, k.numpy(), k.numpy(), borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(gaussian_blur(x, 1.5, 4)[0, 0].numpy(), ref, atol=1e-6)
    # the depthwise-conv path (used on GPUs) agrees with the shifted-sum path (used on CPU)
    x3 = torch.rand(2, 3, 19, 26, generator=g)
    torch.testing.assert_close(separable_filter(x3, k, border="reflect", method="conv"),
                               separable_filter(x3, k, border="reflect", method="taps"), atol=1e-6, rtol=0)
    gx, gy = sobel(x)
    np.testing.assert_allclose(gx[0, 0].numpy(), cv2.Sobel(xn, -1, 1, 0, borderType=cv2.BORDER_REPLICATE), atol=1e-5)
    np.testing.assert_allclose(gy[0, 0].numpy(), cv2.Sobel(xn, -1, 0, 1, borderType=cv2.BORDER_REPLICATE), atol=1e-5)
    np.testing.assert_allclose(laplacian(x)[0, 0].numpy(),
                               cv2.Laplacian(xn, -1, ksize=1, borderType=cv2.BORDER_REPLICATE), atol=1e-5)
    for size in (3, 5):
        np.testing.assert_array_equal(median_filter(x, size, "replicate")[0, 0].numpy(), cv2.medianBlur(xn, size))


def test_median3x3_exact_with_ties_and_batches():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 4, (2, 3, 11, 13), generator=g).float()    # many ties
    cols = F.unfold(pad2d(x.reshape(-1, 1, 11, 13), 1, 1, 1, 1), 3)
    torch.testing.assert_close(median_filter(x, 3), cols.median(dim=1).values.reshape(x.shape), atol=0, rtol=0)


def test_reflect_padding_larger_than_the_image():
    x = torch.rand(1, 2, 5, 3)
    got = pad2d(x, 7, 4, 9, 2, "reflect")
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (9, 2), (7, 4)), mode="reflect")
    np.testing.assert_array_equal(got.numpy(), ref)
    assert pad2d(torch.rand(1, 1, 1, 4), 0, 0, 3, 3).shape == (1, 1, 7, 4)    # size-1 dim: replicate
    assert box_filter(torch.rand(1, 1, 4, 4), 20).shape == (1, 1, 4, 4)


def test_guided_filter_properties():
    g = torch.Generator().manual_seed(3)
    guide = torch.rand(1, 1, 32, 40, generator=g)
    const = torch.full_like(guide, 0.7)
    torch.testing.assert_close(guided_filter(guide, const, 5, 1e-3), const, atol=1e-5, rtol=0)
    # small eps, src == guide: edge-preserving identity; huge eps: plain box mean
    torch.testing.assert_close(guided_filter(guide, guide, 3, 1e-8), guide, atol=1e-3, rtol=0)
    twice_box = box_filter(box_filter(guide, 3, "normalized"), 3, "normalized")
    torch.testing.assert_close(guided_filter(guide, guide, 3, 1e6), twice_box, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------------- speed
def test_speed_640x480_report():
    """Prints the CPU time of one thread per 640x480 frame (best of 2), with a loose regression bound.

    CPU time, not wall time: on a shared machine other processes' load inflates wall time (and spinning
    OpenMP workers inflate multi-thread CPU time); the 2-thread wall times are in the README/report."""
    ir, vis = pair(1, 480, 640)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for name in NAMES:
                model = build_model(name)
                best = float("inf")
                for _ in range(2):
                    t0 = time.process_time()
                    model.fuse_frame(ir, vis)
                    best = min(best, time.process_time() - t0)
                print(f"{name}: {best * 1000:.1f} ms CPU per 640x480 frame (1 thread)")
                assert best < 1.0, name
    finally:
        torch.set_num_threads(threads)


def test_laplacian_base_is_the_classical_laplacian_fusion_for_every_model_that_refines_it():
    """base_fusion / input_skip 'laplacian': the weight-free base of the learned models is the classical
    laplacian model's luminance fusion (one definition), also through a frame-wise model's refine=false."""
    from ftpfusion_ros.nn.base_fusion import fuse_base
    from ftpfusion_ros.nn.pyramid import fuse_laplacian

    g = torch.Generator().manual_seed(3)
    ir, vis = torch.rand(2, 1, 48, 64, generator=g), torch.rand(2, 3, 48, 64, generator=g)
    y = rgb_to_y(vis)
    classical = build_model("laplacian").eval()
    with torch.no_grad():
        want = classical.fuse_frame(ir, vis)
        assert torch.allclose(fuse_base(ir, y, "laplacian"), fuse_laplacian(ir, y).clamp(0, 1))
        torch.testing.assert_close(classical.fuse_luminance(ir, y).clamp(0, 1), fuse_base(ir, y, "laplacian"),
                                   atol=1e-6, rtol=0)
        # differs from the per-pixel bases (the test would pass for a wrong mode otherwise)
        assert (fuse_base(ir, y, "laplacian") - fuse_base(ir, y, "max")).abs().max() > 0.1
        net = build_model("f3net", {"input_skip": "laplacian", "refine": False}).eval()
        torch.testing.assert_close(net.fuse_frame(ir, vis), want, atol=2e-6, rtol=0)
    with pytest.raises(ValueError, match="input_skip"):
        build_model("f3net", {"input_skip": "median"})
