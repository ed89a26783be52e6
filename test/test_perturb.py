"""FTPFusion's perturbation protocol: parsing, determinism, each corruption's effect and strength."""
import cv2
import numpy as np
import pytest

from ftpfusion_ros.data.perturb import ClipPerturber, PerturbConfig, parse_perturb, perturb_clip


def _scene(rng, shape=(60, 80)):
    img = cv2.GaussianBlur(rng.uniform(0, 255, shape), (0, 0), 2.0)
    img = ((img - img.min()) / (img.max() - img.min()) * 200 + 25).astype(np.uint8)
    vis = cv2.merge([img, np.roll(img, 3, 1), img // 2 + 60])
    ir = np.ascontiguousarray(np.roll(img, 5, 0))
    return ir, vis


@pytest.fixture
def pair(rng):
    return _scene(rng)


def test_parse():
    cfg = parse_perturb("flicker=1,jitter=0.25,misalign=2", seed=3)
    assert (cfg.flicker, cfg.jitter, cfg.misalign, cfg.offset, cfg.seed) == (1.0, 0.25, 2.0, 0, 3)
    assert cfg.active and cfg.describe() == "flicker=1,jitter=0.25,misalign=2"
    assert parse_perturb("offset=2,flicker_on=both").offset == 2
    assert not parse_perturb(None).active and parse_perturb("clean").describe() == "clean"
    for bad in ("flicker", "wobble=1", "flicker=-1", "flicker=x", "offset=1.5", "jitter_on=left", "flicker=30"):
        with pytest.raises(ValueError):
            parse_perturb(bad)


def test_zero_strength_is_identity(pair):
    ir, vis = pair
    p = ClipPerturber(PerturbConfig(), "seq")
    ir2, vis2 = p(0, ir, vis)
    assert np.array_equal(ir2, ir) and np.array_equal(vis2, vis)


def test_deterministic_per_seed_sequence_and_frame(pair):
    ir, vis = pair
    cfg = PerturbConfig(flicker=1, jitter=0.5, misalign=2, seed=1)
    seq_a = [ClipPerturber(cfg, "a")(t, ir, vis) for t in range(4)]
    again = [ClipPerturber(cfg, "a")(t, ir, vis) for t in range(4)]
    for (i1, v1), (i2, v2) in zip(seq_a, again):
        assert np.array_equal(i1, i2) and np.array_equal(v1, v2)
    # frame 3 alone (fresh perturber, no history) equals frame 3 of the run: order does not matter
    i3, v3 = ClipPerturber(cfg, "a")(3, ir, vis)
    assert np.array_equal(i3, seq_a[3][0]) and np.array_equal(v3, seq_a[3][1])
    other_seed = ClipPerturber(PerturbConfig(flicker=1, jitter=0.5, misalign=2, seed=2), "a")(3, ir, vis)
    other_seq = ClipPerturber(cfg, "b")(3, ir, vis)
    assert not np.array_equal(other_seed[1], v3)
    assert not np.array_equal(other_seq[1], v3)


def test_flicker_is_a_global_gain_and_offset_of_the_visible_camera(pair):
    ir, vis = pair
    p = ClipPerturber(PerturbConfig(flicker=1.0, seed=0), "s")
    for t in range(5):
        ir2, vis2 = p(t, ir, vis)
        assert np.array_equal(ir2, ir)  # IR untouched by default
        gain, offset = p.flicker_params(t)["vis"]
        assert abs(gain - 1) <= 0.04 and abs(offset) <= 4.0
        expected = np.clip(np.rint(vis.astype(np.float32) * gain + offset), 0, 255)
        assert np.array_equal(vis2, expected.astype(np.uint8))


def test_flicker_on_16bit_ir_keeps_dtype(rng):
    ir16 = (rng.uniform(1000, 60000, (20, 30))).astype(np.uint16)
    vis = np.zeros((20, 30, 3), np.uint8)
    p = ClipPerturber(PerturbConfig(flicker=1.5, flicker_on="ir"), "s")
    ir2, vis2 = p(0, ir16, vis)
    gain, offset = p.flicker_params(0)["ir"]
    assert ir2.dtype == np.uint16 and np.array_equal(vis2, vis)
    expected = np.clip(np.rint(ir16.astype(np.float32) * gain + offset * 257), 0, 65535).astype(np.uint16)
    assert np.array_equal(ir2, expected)


def test_jitter_shakes_both_cameras_by_the_same_shift():
    # on linear ramps bilinear resampling is exact, so a shift d shows as (slope * d) inside the frame
    # (float frames: 8-bit rounding of a smooth ramp is biased and would hide sub-pixel shifts)
    h, w = 60, 80
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp_x = 1.3 * gx + 10
    ramp_y = 2.7 * gy + 10
    vis = cv2.merge([ramp_x, ramp_y, ramp_x])
    p = ClipPerturber(PerturbConfig(jitter=1.0, seed=4), "s")
    inner = (slice(5, -5), slice(5, -5))
    for t in range(4):
        dx, dy = p.jitter_shift(t)
        assert abs(dx) <= 3 and abs(dy) <= 3 and (dx, dy) != (0.0, 0.0)
        ir_x, vis2 = p(t, ramp_x, vis)
        ir_y, _ = p(t, ramp_y, vis)
        # output(x) = input(x + d): on a ramp of slope k the values rise by k * d
        for img, src, k, d in ((ir_x, ramp_x, 1.3, dx), (ir_y, ramp_y, 2.7, dy),
                               (vis2[:, :, 0], ramp_x, 1.3, dx), (vis2[:, :, 1], ramp_y, 2.7, dy)):
            measured = (img[inner].astype(float) - src[inner]).mean() / k
            assert measured == pytest.approx(d, abs=0.01)


def test_misalignment_warps_ir_only_and_grows_with_strength(pair):
    ir, vis = pair
    diffs = []
    for m in (0.5, 1.0, 2.0, 4.0):
        p = ClipPerturber(PerturbConfig(misalign=m, seed=0), "s")
        ir2, vis2 = p(2, ir, vis)
        assert np.array_equal(vis2, vis)
        fx, fy = p.misalign_field(2, ir.shape)
        assert np.abs(fx).max() <= 1.2 * m and np.abs(fy).max() <= 1.2 * m  # bicubic overshoot is small
        assert np.abs(np.diff(fx, axis=1)).max() < 0.2 * m  # smooth: a local warp, not noise
        diffs.append(np.abs(ir2.astype(float) - ir).mean())
    assert all(x < y for x, y in zip(diffs, diffs[1:])), diffs


def test_misalignment_varies_smoothly_in_time(pair):
    ir, _ = pair
    p = ClipPerturber(PerturbConfig(misalign=2.0, misalign_period=4), "s")
    fields = [p.misalign_field(t, ir.shape)[0] for t in range(9)]
    steps = [np.abs(b - a).max() for a, b in zip(fields, fields[1:])]
    assert max(steps) <= 4 * 2.0 / 4 * 1.2  # at most the keyframe difference / period per frame
    assert np.abs(fields[0] - fields[8]).max() > 0.1  # but it does move


def test_offset_delays_ir(pair):
    ir, vis = pair
    irs = [np.full_like(ir, k) for k in range(5)]
    out_ir, out_vis = perturb_clip(irs, [vis] * 5, PerturbConfig(offset=2), "s")
    assert [int(x[0, 0]) for x in out_ir] == [0, 0, 0, 1, 2]
    assert all(np.array_equal(v, vis) for v in out_vis)


def test_temporal_variation_grows_with_flicker_strength(pair):
    # FTPFusion app. B, table 4: flicker raises the sequence's temporal variation energy with strength
    ir, vis = pair
    energies = []
    for s in (0.0, 0.5, 1.0, 2.0):
        _, vs = perturb_clip([ir] * 8, [vis] * 8, PerturbConfig(flicker=s, seed=0), "s")
        v = np.stack(vs).astype(float)
        energies.append(float((np.diff(v, axis=0) ** 2).mean()))
    assert energies[0] == 0.0
    assert all(x < y for x, y in zip(energies, energies[1:])), energies
