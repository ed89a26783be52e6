"""Shared loss pieces (losses/common.py) and the FTPFusion loss (losses/ftpfusion_loss.py)."""
import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ftpfusion_ros.losses import build_loss
from ftpfusion_ros.losses.common import (charbonnier, chroma, flatten_clip, gaussian_blur, intensity_target,
                                         luminance, sobel_magnitude, sobel_xy, ssim, ssim_loss)
from ftpfusion_ros.losses.ftpfusion_loss import FTPFusionLoss
from ftpfusion_ros.nn.colour import restore_colour, rgb_to_y


def _texture(rng, h=40, w=48, sigma=1.5):
    return cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), sigma)


def test_flatten_clip_orders_frames_batch_major():
    clip = torch.arange(2 * 3 * 4 * 2 * 2, dtype=torch.float32).view(2, 3, 4, 2, 2)
    frames = flatten_clip(clip)
    assert frames.shape == (8, 3, 2, 2)
    assert torch.equal(frames[1 * 4 + 2], clip[1, :, 2])
    with pytest.raises(ValueError):
        flatten_clip(torch.zeros(2, 3))


def test_luminance_and_chroma_use_the_project_convention(rng):
    rgb = torch.from_numpy(rng.random((2, 3, 5, 6)).astype(np.float32))
    assert torch.allclose(luminance(rgb), rgb_to_y(rgb))
    ir = torch.rand(2, 1, 5, 6)
    assert luminance(ir) is ir
    grey = torch.rand(1, 1, 4, 4).expand(1, 3, 4, 4)
    assert torch.allclose(chroma(grey), torch.full((1, 2, 4, 4), 0.5), atol=1e-6)
    target = intensity_target(ir, rgb)
    assert torch.equal(target, torch.maximum(ir, rgb_to_y(rgb)))


def test_sobel_matches_opencv_with_replicated_borders(rng):
    img = rng.random((20, 24)).astype(np.float32)
    gx, gy = sobel_xy(torch.from_numpy(img)[None, None])
    ref_x = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    ref_y = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(gx[0, 0].numpy(), ref_x, atol=1e-5)
    np.testing.assert_allclose(gy[0, 0].numpy(), ref_y, atol=1e-5)
    mag = sobel_magnitude(torch.from_numpy(img)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(mag, np.hypot(ref_x, ref_y), atol=2e-3)
    assert sobel_magnitude(torch.full((1, 1, 8, 8), 0.3)).abs().max() == 0  # flat: exactly 0, no border edges


def test_sobel_magnitude_has_finite_gradients_on_flat_images():
    x = torch.full((1, 1, 8, 8), 0.5, requires_grad=True)
    sobel_magnitude(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("size", [(30, 41), (520, 20)])  # matrix path and the large-frame path
@pytest.mark.parametrize("mode,border", [("reflect", cv2.BORDER_REFLECT_101), ("replicate", cv2.BORDER_REPLICATE)])
def test_gaussian_blur_matches_opencv(rng, size, mode, border):
    img = rng.random(size).astype(np.float32)
    out = gaussian_blur(torch.from_numpy(img)[None, None], 11, 2.0, mode=mode)[0, 0].numpy()
    ref = cv2.GaussianBlur(img, (11, 11), 2.0, borderType=border)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_gaussian_blur_rejects_even_kernels():
    with pytest.raises(ValueError):
        gaussian_blur(torch.zeros(1, 1, 8, 8), 4, 1.0)


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, data range 1, reflect-101 borders."""
    g = cv2.getGaussianKernel(11, 1.5)
    k = g @ g.T

    def f(x):
        return cv2.filter2D(x.astype(np.float64), -1, k, borderType=cv2.BORDER_REFLECT_101)

    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))


def test_ssim_matches_a_direct_computation_and_scikit_image(rng):
    a = _texture(rng)
    b = np.clip(a + rng.normal(0, 0.05, a.shape).astype(np.float32), 0, 1)
    ours = float(ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]))
    ref_map = _ssim_reference(a, b)
    # the loss averages the SSIM map over the whole frame (reflect padding) ...
    assert ours == pytest.approx(ref_map.mean(), abs=1e-4)
    # ... scikit-image (and the metrics) over the valid region only: close, not equal
    sk = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert sk == pytest.approx(ref_map[5:-5, 5:-5].mean(), abs=1e-5)
    assert ours == pytest.approx(sk, abs=0.02)
    assert float(ssim_loss(torch.from_numpy(a)[None, None], torch.from_numpy(a)[None, None])) == pytest.approx(0, abs=1e-5)
    # clips are scored frame by frame
    clip = torch.from_numpy(np.stack([a, b]))[None, None]
    assert ssim(clip, clip, reduction="none").shape == (2,)


def test_charbonnier_is_zero_at_zero_and_close_to_abs():
    x = torch.tensor([0.0, 0.5, -2.0])
    out = charbonnier(x)
    assert out[0] == 0
    assert torch.allclose(out[1:], x[1:].abs(), atol=1e-3)


def _clip(rng, b=1, t=3, h=32, w=32):
    """A static clip (the same frame T times) of full-contrast smooth textures."""
    def tex():
        x = _texture(rng, h, w)
        return (x - x.min()) / (x.max() - x.min())
    ir = torch.from_numpy(np.stack([tex() for _ in range(b)]))[:, None, None].expand(b, 1, t, h, w)
    vis = torch.from_numpy(np.stack([np.stack([tex() for _ in range(3)]) for _ in range(b)]))
    vis = vis[:, :, None].expand(b, 3, t, h, w)
    return ir.contiguous(), vis.contiguous()


def test_ftpfusion_loss_is_small_for_the_ideal_fusion_and_larger_otherwise(rng):
    ir, vis = _clip(rng)
    loss = FTPFusionLoss()
    # ideal output of the spatial terms: luminance = max of the sources, chroma = the visible one's
    target_y = intensity_target(flatten_clip(ir), flatten_clip(vis))
    ideal = restore_colour(target_y, flatten_clip(vis))              # (B*T, 3, H, W)
    ideal_clip = ideal.view(1, 3, 3, 32, 32).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
    total_ideal, terms_ideal = loss(ir, vis, ideal_clip.contiguous())
    assert terms_ideal["intensity"] < 0.01  # (restore_colour clamps out-of-gamut pixels)
    assert terms_ideal["colour"] < 0.01
    assert terms_ideal["otc"] < 1e-3  # static clip, static output
    total_grey, terms_grey = loss(ir, vis, torch.full_like(vis, 0.5))
    assert total_grey > 3 * total_ideal
    total_vis, _ = loss(ir, vis, vis)  # ignoring the IR is worse than the max-luminance fusion
    assert total_vis > total_ideal
    assert set(terms_grey) >= {"intensity", "gradient", "colour", "otc", "total"}
    expected = (terms_grey["intensity"] + 2 * terms_grey["gradient"] + terms_grey["colour"]
                + 0.5 * terms_grey["otc"])
    assert float(total_grey) == pytest.approx(float(expected), rel=1e-5)


def test_ftpfusion_loss_backward_and_weights_from_config(rng):
    ir, vis = _clip(rng, b=2)
    fused = torch.rand_like(vis, requires_grad=True)
    loss = build_loss("ftpfusion", {"intensity": 1.0, "gradient": 2.0, "colour": 1.0, "otc": 0.5})
    total, _ = loss(ir, vis, fused, {})
    total.backward()
    assert fused.grad is not None and torch.isfinite(fused.grad).all() and fused.grad.abs().sum() > 0
    no_otc = build_loss("ftpfusion", {"otc": 0.0})
    _, terms = no_otc(ir, vis, fused.detach(), {})
    assert "otc" not in terms


def test_ftpfusion_loss_rejects_bad_settings():
    with pytest.raises(ValueError):
        FTPFusionLoss(gradient=-1)
    with pytest.raises(ValueError, match="otc_options"):
        FTPFusionLoss(otc_options={"radius_typo": 3})
    with pytest.raises(TypeError):
        build_loss("ftpfusion", {"intensityy": 1.0})


def test_edge_transfer_is_the_qabf_metric_and_differentiable(rng):
    """The training loss's Qabf equals the evaluation metric (metrics.spatial.qabf) on the same frames."""
    from ftpfusion_ros.losses.common import edge_transfer
    from ftpfusion_ros.metrics.spatial import qabf

    a, b = _texture(rng, 48, 64), _texture(rng, 48, 64)
    for f in (np.maximum(a, b), 0.5 * (a + b), 0.7 * a + 0.1 * _texture(rng, 48, 64)):
        ref = qabf(255.0 * f, 255.0 * a, 255.0 * b)
        got = edge_transfer(*(torch.from_numpy(x).float()[None, None] for x in (f, a, b)))
        assert float(got[0]) == pytest.approx(ref, abs=2e-3)
    fused = torch.from_numpy(0.5 * (a + b)).float()[None, None].requires_grad_(True)
    ta, tb = (torch.from_numpy(x).float()[None, None] for x in (a, b))
    (1 - edge_transfer(fused, ta, tb)).sum().backward()
    assert torch.isfinite(fused.grad).all() and fused.grad.abs().max() > 0


def test_detail_target_takes_the_stronger_edge_with_its_sign():
    from ftpfusion_ros.losses.common import detail_loss, detail_target, sobel_xy

    a = torch.zeros(1, 1, 16, 16)
    a[..., :, 8:] = 1.0           # a strong vertical edge
    b = torch.zeros(1, 1, 16, 16)
    b[..., 8:, :] = 0.2           # a weak horizontal one, crossing it
    tx, ty = detail_target(a, b)
    ax, _ = sobel_xy(a)
    _, by = sobel_xy(b)
    assert torch.equal(tx[..., 2, 7], ax[..., 2, 7]) and float(ty[..., 12, 2]) == pytest.approx(float(by[..., 12, 2]))
    assert float(detail_loss(a, a, torch.zeros_like(a), scales=1)) == 0.0  # one source: itself is the target
    assert float(detail_loss(b, a, b, scales=1)) > 0.0


def test_temporal_term_is_zero_for_a_residual_that_moves_with_the_scene_and_positive_for_flicker(rng):
    """Consecutive outputs whose residual (output - base) is the previous one shifted like the scene cost
    nothing; a residual that changes on a steady base costs."""
    loss = FTPFusionLoss(intensity=0, gradient=0, colour=0, otc=0, temporal=1.0)
    base = torch.full((1, 1, 2, 32, 32), 0.5)
    res = torch.from_numpy(0.05 * _texture(rng, 32, 32)).float()
    steady = (base + res).expand(1, 3, 2, 32, 32).clone()  # grey frames: Y = the value
    aux = {"base": base, "shift": torch.zeros(1, 1, 2)}
    zero, _ = loss(steady[:, :1], steady, steady, aux)
    flicker = steady.clone()
    flicker[:, :, 1] += 0.03 * torch.from_numpy(_texture(rng, 32, 32)).float()
    more, terms = loss(steady[:, :1], steady, flicker, aux)
    assert float(zero) == pytest.approx(0.0, abs=1e-7) and float(more) > 1e-3 and "temporal" in terms
    with pytest.raises(ValueError, match="base"):
        loss(steady[:, :1], steady, steady, {})


def test_base_term_can_hold_the_gated_base_instead_of_the_stabilised_one():
    """base_target: anchor (FTPFusion's base after its gate): an output whose luminance is the anchor has no
    base term, while against the stabilised base the same output has one; missing or unknown is refused."""
    g = torch.Generator().manual_seed(0)
    ir = torch.rand(1, 1, 2, 32, 40, generator=g)
    vis = torch.rand(1, 3, 2, 32, 40, generator=g)
    anchor = gaussian_blur(torch.rand(1, 1, 2, 32, 40, generator=g).flatten(0, 2).unsqueeze(1), 9, 2.0)
    anchor = anchor.view(1, 1, 2, 32, 40).clamp(0.05, 0.95)
    fused = anchor.expand(-1, 3, -1, -1, -1).clone()  # grey: luminance == anchor
    aux = {"base": anchor * 0.5, "anchor": anchor}
    terms = {t: FTPFusionLoss(intensity=0, gradient=0, colour=0, otc=0, base=1.0, base_target=t)(ir, vis, fused, aux)[1]
             for t in ("base", "anchor")}
    assert terms["anchor"]["base"] < 1e-5 < 0.05 < terms["base"]["base"]
    with pytest.raises(ValueError, match="base"):
        FTPFusionLoss(base=1.0, base_target="anchor")(ir, vis, fused, {"base": anchor})
    with pytest.raises(ValueError, match="base_target"):
        FTPFusionLoss(base_target="gated")
