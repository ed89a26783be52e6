"""Offset-aware temporal consistency loss (losses/otc.py)."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ftpfusion_ros.losses.otc import (OTCLoss, estimate_shift, lowpass_normalise, matching_cost, shift_grid,
                                      warp_translate)

@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster than two and does not spin-wait on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SIZE = 64


def _scene(seed: int = 0, size: int = 160) -> np.ndarray:
    """A textured grey image (blurred noise plus a few bright blobs), float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0)
    for _ in range(6):
        cx, cy, r = rng.integers(20, size - 20, 2).tolist() + [int(rng.integers(4, 10))]
        cv2.circle(img, (cx, cy), r, float(img.max()), -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    return (img - img.min()) / (img.max() - img.min())


def _translated(img: np.ndarray, dx: float, dy: float, size: int = SIZE) -> np.ndarray:
    """Centre crop of `img` with its content moved by (dx, dy) pixels: out(p) = img(p - (dx, dy))
    (bicubic, OpenCV: independent of the bilinear warp under test)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(img, m, img.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    o = (img.shape[0] - size) // 2
    return moved[o:o + size, o:o + size]


def _clip(frames: list[np.ndarray], channels: int = 1) -> torch.Tensor:
    x = torch.from_numpy(np.stack(frames)).clamp(0, 1)[None, None]
    return x.expand(1, channels, *x.shape[2:]).contiguous()


def test_matching_cost_equals_a_loop_over_replicate_padded_shifts():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 9, 11, generator=g, dtype=torch.float64)
    b = torch.randn(3, 9, 11, generator=g, dtype=torch.float64)
    r = 2
    cost = matching_cost(a, b, r)
    padded = F.pad(a[:, None], (r,) * 4, mode="replicate")[:, 0]
    for k, (dx, dy) in enumerate(shift_grid(r).long().tolist()):
        shifted = padded[:, r + dy:r + dy + 9, r + dx:r + dx + 11]  # shifted(p) = a(p + d)
        assert torch.allclose(cost[:, k], ((shifted - b) ** 2).mean((-1, -2)), atol=1e-10)


def test_matching_cost_custom_backward_is_correct():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: matching_cost(x, y, 1), (a, b))


def test_warp_translate_integer_and_zero_shifts():
    x = torch.rand(2, 10, 12)
    assert torch.allclose(warp_translate(x, torch.zeros(2, 2)), x, atol=1e-6)
    out = warp_translate(x, torch.tensor([[2.0, -1.0], [0.0, 0.0]]))
    ref = F.pad(x[:1, None], (3, 3, 3, 3), mode="replicate")[0, 0, 3 - 1:3 - 1 + 10, 3 + 2:3 + 2 + 12]
    assert torch.allclose(out[0], ref, atol=1e-5)  # out(p) = x(p + (2, -1)), border replicated
    half = warp_translate(x[:1], torch.tensor([[0.5, 0.0]]))
    assert torch.allclose(half[0, :, :-1], 0.5 * (x[0, :, :-1] + x[0, :, 1:]), atol=1e-6)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.4, -0.7), (1.3, 0.25), (-2.2, 1.5), (0.5, 0.5)])
def test_estimated_shift_recovers_a_known_subpixel_translation(shift):
    img = _scene(0)
    dx, dy = shift
    centre = _translated(img, 0, 0)
    neighbour = _translated(img, dx, dy)  # content moved by +shift: neighbour(p + shift) == centre(p)
    low = lowpass_normalise(_clip([neighbour, centre]))
    est, reliability = estimate_shift(low[:, 0], low[:, 1])
    assert est[0, 0].item() == pytest.approx(dx, abs=0.1)
    assert est[0, 1].item() == pytest.approx(dy, abs=0.1)
    assert 0.3 < reliability.item() <= 1.0


def test_reliability_is_low_without_structure():
    flat = np.full((SIZE, SIZE), 0.4, np.float32)
    low = lowpass_normalise(_clip([flat, flat]))
    est, reliability = estimate_shift(low[:, 0], low[:, 1])
    assert reliability.item() < 0.05
    assert est.abs().max().item() < 1e-4  # uniform distribution over a symmetric window


def _static_sources(t: int = 5):
    ir = _scene(1)
    vis = _scene(2)
    return [_translated(ir, 0, 0)] * t, [_translated(vis, 0, 0)] * t, ir, vis


def _fuse(ir_frames, vis_frames):
    return [np.maximum(a, b) for a, b in zip(ir_frames, vis_frames)]


def test_otc_is_zero_for_a_static_identical_clip():
    ir_f, vis_f, _, _ = _static_sources()
    loss, terms = OTCLoss()(_clip(ir_f), _clip(vis_f, 3), _clip(_fuse(ir_f, vis_f), 3))
    assert loss.item() < 1e-4
    assert all(v.item() < 1e-4 for v in terms.values())


def _jitter(rng, amplitude: float, t: int = 5) -> list[tuple[float, float]]:
    shifts = [tuple((rng.uniform(-1, 1, 2) * amplitude).tolist()) for _ in range(t)]
    shifts[t // 2] = (0.0, 0.0)
    return shifts


def test_otc_grows_with_jitter_injected_into_the_fused_video():
    ir_f, vis_f, ir, vis = _static_sources()
    fused_img = np.maximum(ir, vis)
    otc = OTCLoss()
    values = []
    for amplitude in (0.0, 0.5, 1.0, 2.0):
        shifts = _jitter(np.random.default_rng(0), amplitude)
        fused = [_translated(fused_img, dx, dy) for dx, dy in shifts]
        values.append(otc(_clip(ir_f), _clip(vis_f, 3), _clip(fused, 3))[0].item())
    assert values[0] < 1e-4
    assert values[0] < values[1] < values[2] < values[3]
    assert values[3] > 0.1


def test_otc_does_not_penalise_a_fused_video_that_follows_the_sources_motion():
    _, _, ir, vis = _static_sources()
    shifts = _jitter(np.random.default_rng(3), 1.5)
    ir_f = [_translated(ir, dx, dy) for dx, dy in shifts]
    vis_f = [_translated(vis, dx, dy) for dx, dy in shifts]
    otc = OTCLoss()
    following = otc(_clip(ir_f), _clip(vis_f, 3), _clip(_fuse(ir_f, vis_f), 3))[0].item()
    frozen = otc(_clip(ir_f), _clip(vis_f, 3), _clip([np.maximum(ir_f[2], vis_f[2])] * 5, 3))[0].item()
    assert following < 0.2 * frozen


def test_otc_gradients_and_degenerate_clips():
    ir_f, vis_f, ir, vis = _static_sources(3)
    fused = _clip([_translated(np.maximum(ir, vis), 1.0 * k, 0.0) for k in range(3)], 3).requires_grad_(True)
    loss, _ = OTCLoss()(_clip(ir_f), _clip(vis_f, 3), fused)
    loss.backward()
    assert torch.isfinite(fused.grad).all() and fused.grad.abs().sum() > 0
    single = torch.rand(1, 3, 1, 16, 16, requires_grad=True)
    zero, _ = OTCLoss()(torch.rand(1, 1, 1, 16, 16), torch.rand(1, 3, 1, 16, 16), single)
    assert zero.item() == 0
    zero.backward()  # still part of the graph
    with pytest.raises(ValueError):
        OTCLoss(radius=0)
    with pytest.raises(ValueError):
        OTCLoss(tau=0)
