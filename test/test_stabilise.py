"""The temporal stabiliser (nn/stabilise.py): shift estimation, de-flicker, jitter filtering, no ghosting,
and its effect on FTPFusion's temporal metrics, on synthetic video with known corruptions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ftpfusion_ros.data.perturb import ClipPerturber, PerturbConfig
from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene
from ftpfusion_ros.metrics.temporal import biswe
from ftpfusion_ros.models import build_model
from ftpfusion_ros.nn.filters import gaussian_blur
from ftpfusion_ros.nn.stabilise import TemporalStabiliser
from ftpfusion_ros.runtime.checkpoint import save_checkpoint
from ftpfusion_ros.runtime.engine import EngineConfig, FusionEngine


def _texture(h: int = 96, w: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return gaussian_blur(torch.rand(1, 1, h, w, generator=g), 1.5).clamp(0, 1)


def _shifted(x: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """x moved by (dx, dy): out(p) = x(p - d)."""
    return TemporalStabiliser.translate(x, torch.tensor([[-dx, -dy]]))


@pytest.mark.parametrize("d", [(1.3, -0.4), (0.25, 0.1), (-2.0, 1.7), (-0.4, 0.35)])
def test_phase_correlation_recovers_sub_pixel_shifts(d):
    st = TemporalStabiliser()
    t = _texture()
    s = _shifted(t, *d)
    est = st.shift(st.frame_stats(t, t)["spec"], st.frame_stats(s, s)["spec"], (48, 64))[0]
    assert abs(float(est[0]) - d[0]) < 0.15 and abs(float(est[1]) - d[1]) < 0.15
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    if max(map(abs, d)) > 1:  # below a pixel, bilinear resampling blur is as large as the shift's error
        assert (st.translate(s, est[None]) - t)[inner].abs().mean() < 0.3 * (s - t)[inner].abs().mean()


def test_deflicker_maps_every_frame_onto_the_window_statistics():
    st = TemporalStabiliser()
    base = _texture()
    gains, offsets = [1.0, 1.04, 0.96, 1.02, 0.98], [0.0, 0.015, -0.01, 0.005, -0.02]
    frames = [(g * base + o).clamp(0, 1) for g, o in zip(gains, offsets)]
    ab = st.photometric([st.frame_stats(f, f)["stats"] for f in frames])  # (1, T, 4)
    fixed = [ab[0, i, 2] * f + ab[0, i, 3] for i, f in enumerate(frames)]
    means = torch.stack([f.mean() for f in fixed])
    raw = torch.stack([f.mean() for f in frames])
    assert means.std() < 1e-4 < raw.std()
    torch.testing.assert_close(fixed[1], fixed[3], atol=1e-3, rtol=0)  # gain and offset both undone


def test_temporal_filter_averages_jitter_but_does_not_ghost_a_moving_object():
    st = TemporalStabiliser(sigma=0.03, neighbour_weight=1.0, radius=4)
    bg = _texture(seed=1) * 0.6
    frames, shifts = [], [(0.0, 0.0), (0.4, -0.3), (-0.3, 0.2), (0.2, 0.4), (-0.4, -0.2)]
    for i, d in enumerate(shifts):
        f = _shifted(bg, *d).clone()
        f[..., 40:56, 10 + 15 * i:26 + 15 * i] = 1.0  # a hot object moving 15 px per frame
        frames.append(f)
    entries = [st.frame_stats(f, f) for f in frames]
    out, gain = st(frames, frames, entries, [4])
    assert out.shape == (1, 1, 96, 128) and gain.shape == (1, 4)
    obj = (..., slice(40, 56), slice(70, 86))
    assert (out[obj] - 1.0).abs().max() < 0.02  # the object stays where it is in frame t, at full strength
    ghost = (..., slice(40, 56), slice(10, 26))  # where the object was 4 frames ago
    torch.testing.assert_close(out[ghost], frames[4][ghost], atol=0.02, rtol=0)
    # static background: the output is closer to the clean (unjittered) frame-4 content than the input
    # is to the average of its aligned neighbours' disagreement
    bg_region = (..., slice(64, 90), slice(8, 120))
    assert (out[bg_region] - frames[4][bg_region]).abs().mean() < 0.02


def _perturbed_synthetic(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    scene = SyntheticScene(SceneConfig(width=160, height=120, seed=3, low_light=False))
    pert = ClipPerturber(PerturbConfig(flicker=1.5, jitter=0.3, seed=1), "synthetic")
    irs, viss = [], []
    for t in range(n):
        ir, vis = scene.frame(t)
        ir, vis = pert(t, ir, vis)
        irs.append(ir)
        viss.append(vis)
    return np.stack(irs), np.stack(viss)


def test_ftpfusion_with_the_stabiliser_is_steadier_on_flickering_jittering_video(tmp_path):
    """End to end through the streaming engine: BiSWE of the fused video drops by a quarter or more."""
    irs, viss = _perturbed_synthetic()
    torch.manual_seed(0)
    scores = {}
    for stab in (True, False):
        config = {"channels": [8, 16, 32], "stabiliser": stab}
        path = save_checkpoint(build_model("ftpfusion", config), tmp_path / f"stab_{stab}.pt", config)
        engine = FusionEngine(EngineConfig(model="ftpfusion", checkpoint=str(path), device="cpu"))
        fused = [engine.push(ir, vis).fused_bgr for ir, vis in zip(irs, viss)]
        y = lambda bgr: (0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2]).astype(np.float32)
        scores[stab] = biswe([y(f) for f in fused], [i.astype(np.float32) for i in irs],
                             [y(v) for v in viss])
    assert scores[True] < 0.75 * scores[False], scores


def test_training_targets_are_the_deflickered_sources():
    """forward_train hands the loss sources mapped onto the clip statistics: a flickering visible clip
    becomes steady, a clean static clip stays what it was."""
    model = build_model("ftpfusion", {"channels": [8, 16, 32], "train_targets": "clip"}).train()
    frame = _texture(48, 64).expand(1, 3, 48, 64)
    gains = torch.tensor([1.0, 1.05, 0.95, 1.03, 0.97])
    vis = torch.stack([(g * frame).clamp(0, 1) for g in gains], 2)  # (1, 3, 5, H, W)
    ir = _texture(48, 64, seed=5)[:, :, None].expand(1, 1, 5, 48, 64)
    fused, aux = model.forward_train(ir, vis)
    assert fused.shape == vis.shape and set(aux) == {"ir", "vis"}
    means = aux["vis"].mean((0, 1, 3, 4))
    assert means.std() < 0.1 * vis.mean((0, 1, 3, 4)).std()
    torch.testing.assert_close(aux["ir"], ir, atol=1e-5, rtol=0)
    off = build_model("ftpfusion", {"channels": [8, 16, 32], "stabiliser": False, "train_targets": "clip"}).train()
    assert off.forward_train(ir, vis)[1] == {}


def test_a_second_base_is_filtered_with_the_first_bases_shifts():
    """also=("max",): channel 0 is exactly the single-base output; channel 1 is the max fusion filtered with
    the shifts of the laplacian base's spectra (what a max stabiliser gives when handed those spectra)."""
    bg = _texture(seed=2)
    irs = [_shifted(bg * 0.8, dx, dy) for dx, dy in [(0.0, 0.0), (0.5, -0.3), (-0.4, 0.2), (0.3, 0.4), (-0.2, -0.5)]]
    ys = [_shifted(_texture(seed=3), dx, dy) for dx, dy in [(0.0, 0.0), (0.5, -0.3), (-0.4, 0.2), (0.3, 0.4), (-0.2, -0.5)]]
    both = TemporalStabiliser(sigma=0.05, neighbour_weight=1.0, radius=4, base="laplacian", also=("max",))
    one = TemporalStabiliser(sigma=0.05, neighbour_weight=1.0, radius=4, base="laplacian")
    entries = [both.frame_stats(i, y) for i, y in zip(irs, ys)]
    out, gain = both(irs, ys, entries, [3, 4])
    assert out.shape == (2, 2, 96, 128)
    ref, ref_gain = one(irs, ys, entries, [3, 4])
    torch.testing.assert_close(out[:, :1], ref, atol=0, rtol=0)
    torch.testing.assert_close(gain, ref_gain, atol=0, rtol=0)
    max_out, _ = TemporalStabiliser(sigma=0.05, neighbour_weight=1.0, radius=4, base="max")(irs, ys, entries, [3, 4])
    torch.testing.assert_close(out[:, 1:], max_out, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="stabiliser base"):
        TemporalStabiliser(also=("median",))
