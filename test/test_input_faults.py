"""Degenerate and non-finite input frames through the streaming engine (issue 11, defects 1 and 2).

Thermal cameras send all-zero frames at start-up and during flat-field correction, radiometric
cameras mark invalid pixels as NaN, and a stream may switch from temperatures (32FC1) to counts
(mono16). None of these may leave the gain control stuck, reach the temporal ring as NaN, or be
treated as an internal error: they are bad input (InputError) or are mapped sensibly.
"""
from __future__ import annotations

import numpy as np
import pytest

from ftpfusion_ros.runtime import AGCConfig, EngineConfig, FusionEngine, InputError, ThermalAGC

H, W = 48, 64
ONE_SECOND = 10  # frames at 10 Hz: the gain control must recover within this many


def scene16(t: int, base: float = 20000.0) -> np.ndarray:
    """A 16-bit thermal scene with ~8,000 counts of contrast that drifts slowly."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = base + 4000 * (1 + np.sin(x / 7 + t * 0.1)) + 2000 * np.cos(y / 5)
    return img.astype(np.uint16)


def visible(t: int) -> np.ndarray:
    rng = np.random.default_rng(t)
    return rng.integers(0, 255, (H, W, 3), dtype=np.uint8)


def _aligned_ir(engine: FusionEngine, ir: np.ndarray, enc: str, t: int) -> np.ndarray:
    return engine.push(ir, visible(t), enc, "bgr8").aligned_ir.astype(np.float32)


def test_one_all_zero_frame_does_not_stick_the_gain_control():
    reference, engine = FusionEngine(EngineConfig(model="average")), FusionEngine(EngineConfig(model="average"))
    for t in range(20):
        _aligned_ir(reference, scene16(t), "mono16", t)
        _aligned_ir(engine, scene16(t), "mono16", t)
    engine.push(np.zeros((H, W), np.uint16), visible(99), "mono16", "bgr8")  # flat-field / start-up frame
    diffs = []
    for t in range(20, 20 + ONE_SECOND):
        want = _aligned_ir(reference, scene16(t), "mono16", t)
        got = _aligned_ir(engine, scene16(t), "mono16", t)
        diffs.append(float(np.abs(got - want).mean()))
    assert diffs[-1] < 2.0, f"IR still off after one second: mean |diff| per frame {diffs}"
    assert float((got >= 254).mean()) < 0.05, "IR saturated white"


@pytest.mark.parametrize("first", ["zeros", "flat_noise"])
def test_gain_control_starting_on_degenerate_frames_finds_the_scene_within_a_second(first):
    rng = np.random.default_rng(1)
    engine = FusionEngine(EngineConfig(model="average"))
    for t in range(5):
        frame = (np.zeros((H, W), np.uint16) if first == "zeros"
                 else (100 + rng.integers(0, 4, (H, W))).astype(np.uint16))
        engine.push(frame, visible(t), "mono16", "bgr8")
    for t in range(ONE_SECOND):
        ir8 = _aligned_ir(engine, scene16(t), "mono16", t)
    assert ir8.std() > 40, "no contrast left in the IR"
    assert float((ir8 >= 254).mean()) < 0.05 and float((ir8 <= 1).mean()) < 0.05


def test_switch_from_temperatures_to_counts_reacquires_the_window():
    engine = FusionEngine(EngineConfig(model="average"))
    for t in range(20):
        kelvin = scene16(t).astype(np.float32) / 100.0 + 100.0  # ~300 K
        engine.push(kelvin, visible(t), "32FC1", "bgr8")
    for t in range(ONE_SECOND):
        ir8 = _aligned_ir(engine, scene16(t), "mono16", t)
    assert ir8.std() > 40 and float((ir8 >= 254).mean()) < 0.05


def test_agc_reacquires_a_scene_outside_its_window_but_not_for_a_hot_object():
    agc = ThermalAGC(AGCConfig())
    for t in range(10):
        agc(scene16(t))
    before = agc.window
    hot = scene16(10)
    hot[10:30, 20:40] = 60000  # a hot object covering 12% of the view: smoothed, not a jump
    agc(hot)
    assert agc.window[1] - before[1] < 0.05 * (before[1] - before[0]) + 1
    agc(scene16(11, base=45000.0))  # the whole scene far above the window: taken at once
    assert agc.window[0] > 40000


def test_visible_frame_with_nan_is_rejected_and_never_reaches_the_ring():
    """With the default model (FTPFusion, 9-frame ring): a NaN pixel is bad input, and the frames after
    it are fused exactly as if it had never arrived (before the fix they came out black)."""
    reference, engine = FusionEngine(EngineConfig()), FusionEngine(EngineConfig())
    assert engine.model_name == "ftpfusion"
    rng = np.random.default_rng(2)
    frames = [(rng.integers(0, 255, (H, W), dtype=np.uint8), rng.random((H, W), dtype=np.float32))
              for _ in range(8)]
    for ir, vis in frames[:4]:
        reference.push(ir, vis, "mono8", "32FC1")
        engine.push(ir, vis, "mono8", "32FC1")
    for bad_value in (np.nan, np.inf):
        bad = frames[4][1].copy()
        bad[5, 7] = bad_value
        fill = engine.ring.fill
        with pytest.raises(InputError, match="non-finite"):
            engine.push(frames[4][0], bad, "mono8", "32FC1")
        assert engine.ring.fill == fill
    for ir, vis in frames[4:]:
        want = reference.push(ir, vis, "mono8", "32FC1").fused_bgr
        got = engine.push(ir, vis, "mono8", "32FC1").fused_bgr
        np.testing.assert_array_equal(got, want)
        assert got.mean() > 20, "fused frame black"


@pytest.mark.parametrize("mode", ["percentile", "fixed"])
def test_all_nan_ir_is_bad_input_and_partial_nan_is_mapped(mode):
    agc = AGCConfig(mode=mode, fixed_low=250.0, fixed_high=350.0)
    engine = FusionEngine(EngineConfig(model="average", agc=agc))
    kelvin = scene16(0).astype(np.float32) / 100.0 + 100.0
    engine.push(kelvin, visible(0), "32FC1", "bgr8")
    with pytest.raises(InputError, match="no finite values"):
        engine.push(np.full((H, W), np.nan, np.float32), visible(1), "32FC1", "bgr8")
    holes = kelvin.copy()
    holes[::3, ::3] = np.nan  # invalid pixels of a radiometric camera: shown cold, never NaN downstream
    res = engine.push(holes, visible(2), "32FC1", "bgr8")
    assert res.aligned_ir[0, 0] == 0 and res.aligned_ir.std() > 20
    assert res.fused_bgr.std() > 10


@pytest.mark.parametrize("encoding, code", [("yuv422", "COLOR_YUV2BGR_UYVY"), ("yuyv", "COLOR_YUV2BGR_YUYV"),
                                            ("bayer_rggb8", "COLOR_BayerBG2BGR")])
def test_packed_yuv_and_bayer_visible_frames_are_converted_like_opencv(encoding, code):
    """What `extract` and `fuse --bag` convert, the engine (and so the live node) takes too."""
    import cv2

    rng = np.random.default_rng(3)
    raw = rng.integers(0, 255, (H, W, 2) if encoding.startswith("y") else (H, W), dtype=np.uint8)
    want = cv2.cvtColor(raw, getattr(cv2, code))
    engine = FusionEngine(EngineConfig(model="average"))
    res = engine.push(rng.integers(0, 255, (H, W), dtype=np.uint8), raw, "mono8", encoding)
    np.testing.assert_array_equal(res.aligned_vis_bgr, want)
    as_bgr = FusionEngine(EngineConfig(model="average")).push(
        np.zeros((H, W), np.uint8), want, "mono8", "bgr8").aligned_vis_bgr
    np.testing.assert_array_equal(res.aligned_vis_bgr, as_bgr)
