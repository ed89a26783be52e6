"""Synthetic dual-camera scene: determinism, formats, physics-ish properties, perturbations, speed."""
from __future__ import annotations


import numpy as np
import pytest
import yaml

from ftpfusion_ros.data.sequences import find_sequences
from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene

QUIET = {"ir_noise": 0.0, "vis_noise": 0.0, "ir_fixed_pattern": 0.0}  # exact comparisons


def test_deterministic_per_seed_and_t():
    cfg = SceneConfig(width=96, height=72, seed=3, flicker=0.1, jitter=1.0, misalign=1.5)
    a, b = SyntheticScene(cfg), SyntheticScene(cfg)
    later = a.frame(9)                       # call order must not matter
    for t in (0, 4, 9):
        ir_a, vis_a = a.frame(t)
        ir_b, vis_b = b.frame(t)
        np.testing.assert_array_equal(ir_a, ir_b)
        np.testing.assert_array_equal(vis_a, vis_b)
    np.testing.assert_array_equal(later[0], a.frame(9)[0])
    other = SyntheticScene(SceneConfig(width=96, height=72, seed=4))
    assert not np.array_equal(other.frame(0)[1], a.frame(0)[1])
    assert not np.array_equal(a.frame(1)[0], a.frame(2)[0])   # temporal noise + motion


@pytest.mark.parametrize("depth", [8, 16])
def test_dtypes_and_shapes(depth):
    scene = SyntheticScene(SceneConfig(width=80, height=60, ir_bit_depth=depth))
    ir, vis = scene.frame(0)
    assert ir.shape == (60, 80) and vis.shape == (60, 80, 3)
    assert vis.dtype == np.uint8
    if depth == 8:
        assert ir.dtype == np.uint8
    else:
        cfg = scene.config
        assert ir.dtype == np.uint16
        assert ir.max() <= 16383                                  # 14-bit-like counts
        assert ir.max() > 255                                     # really beyond 8 bit
        assert cfg.ir_offset - 200 < np.median(ir) < cfg.ir_offset + cfg.ir_span
    with pytest.raises(ValueError):
        scene.frame(-1)


def test_odd_size_and_no_targets():
    scene = SyntheticScene(SceneConfig(width=33, height=27, n_people=0, n_vehicles=0, jitter=2, misalign=1))
    ir, vis = scene.frame(5)
    assert ir.shape == (27, 33) and vis.shape == (27, 33, 3)
    assert scene.boxes(5) == []


def test_targets_warmer_than_background():
    scene = SyntheticScene(SceneConfig(width=160, height=120, seed=1, n_people=3, n_vehicles=1))
    seen = 0
    for t in (0, 10, 20):
        ir, _ = scene.frame(t)
        boxes = scene.boxes(t)
        covered = np.zeros(ir.shape, bool)
        for _, x0, y0, x1, y1 in boxes:
            covered[y0:y1, x0:x1] = True
        background = float(np.median(ir[~covered]))
        for kind, x0, y0, x1, y1 in boxes:
            if x1 - x0 < 6 or y1 - y0 < 6:
                continue  # mostly outside the frame
            core = ir[y0 + (y1 - y0) // 3:y1 - (y1 - y0) // 3, x0 + (x1 - x0) // 3:x1 - (x1 - x0) // 3]
            assert float(core.mean()) > background + 25, (kind, t)
            seen += 1
    assert seen >= 4


def test_low_light_is_dark_but_textured():
    dark = SyntheticScene(SceneConfig(width=160, height=120, low_light=True)).frame(0)[1].astype(float)
    day = SyntheticScene(SceneConfig(width=160, height=120, low_light=False)).frame(0)[1].astype(float)
    assert dark.mean() < 0.45 * day.mean()
    ground = dark[80:, :, 1]                                       # below the horizon: asphalt and grass
    assert ground.std() > 3                                          # texture and noise, not a flat field


def test_flicker_changes_frame_means():
    def mean_spread(flicker: float) -> tuple[float, float]:
        scene = SyntheticScene(SceneConfig(width=64, height=48, n_people=0, n_vehicles=0, flicker=flicker))
        frames = [scene.frame(t) for t in range(12)]
        return (float(np.std([f[0].mean() for f in frames])), float(np.std([f[1].mean() for f in frames])))

    steady_ir, steady_vis = mean_spread(0.0)
    flick_ir, flick_vis = mean_spread(0.2)
    assert steady_ir < 0.3 and steady_vis < 0.3
    assert flick_ir > 5 * max(steady_ir, 0.05) and flick_vis > 5 * max(steady_vis, 0.05)


def test_jitter_shifts_content_and_keeps_the_scene():
    base = SceneConfig(width=96, height=72, seed=2, **QUIET)
    clean = SyntheticScene(base)
    shaky = SyntheticScene(SceneConfig(**{**base.to_dict(), "jitter": 2.0}))
    shifts = set()
    for t in range(8):
        dx, dy = shaky.jitter_offset(t)
        shifts.add((dx, dy))
        ir_c, vis_c = clean.frame(t)
        ir_s, vis_s = shaky.frame(t)
        # shaky[y, x] == clean[y + dy, x + dx] wherever both are defined
        ys, xs = slice(max(0, -dy), 72 - max(0, dy)), slice(max(0, -dx), 96 - max(0, dx))
        yc, xc = slice(max(0, dy), 72 + min(0, dy)), slice(max(0, dx), 96 + min(0, dx))
        np.testing.assert_array_equal(vis_s[ys, xs], vis_c[yc, xc])
        np.testing.assert_array_equal(ir_s[ys, xs], ir_c[yc, xc])
    assert len(shifts) >= 3 and any(s != (0, 0) for s in shifts)
    assert all(abs(dx) <= 6 and abs(dy) <= 6 for dx, dy in shifts)


def test_misalignment_warps_ir_only():
    base = SceneConfig(width=96, height=72, seed=5, **QUIET)
    clean = SyntheticScene(base)
    warped = SyntheticScene(SceneConfig(**{**base.to_dict(), "misalign": 2.0}))
    ir_c, vis_c = clean.frame(3)
    ir_w, vis_w = warped.frame(3)
    np.testing.assert_array_equal(vis_w, vis_c)
    assert np.abs(ir_w.astype(int) - ir_c.astype(int)).mean() > 0.5
    fx, fy = warped.misalignment_field(3)
    assert 0.3 < np.abs(np.stack([fx, fy])).max() <= 2 * 2.0 + 1e-5
    assert not np.allclose(warped.misalignment_field(40)[0], fx)      # drifts over time


def test_config_from_dict_and_yaml():
    cfg = SceneConfig.from_dict({"width": 64, "height": 48, "ir_bit_depth": 16, "flicker": 0.1})
    again = SceneConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg
    scene = SyntheticScene({"width": 64, "height": 48})
    assert scene.frame(0)[0].shape == (48, 64)
    with pytest.raises(ValueError, match="unknown scene config keys"):
        SceneConfig.from_dict({"widht": 64})
    with pytest.raises(ValueError, match="ir_bit_depth"):
        SceneConfig(ir_bit_depth=12)


@pytest.mark.parametrize("depth", [8, 16])
def test_write_folders_round_trip(tmp_path, depth):
    scene = SyntheticScene(SceneConfig(width=48, height=40, ir_bit_depth=depth))
    seq = scene.write_folders(tmp_path, 3, sequence="synth")
    assert (seq / "ir" / "000001.png").is_file() and (seq / "vis" / "000003.png").is_file()
    (pair,) = find_sequences(tmp_path)
    assert pair.name == "synth" and len(pair) == 3
    for t, (name, ir, vis) in enumerate(pair.frames()):
        ir0, vis0 = scene.frame(t)
        assert name == f"{t + 1:06d}.png"
        np.testing.assert_array_equal(ir, ir0)
        np.testing.assert_array_equal(vis, vis0)
