"""Temporal fusion metrics and optical flow: hand values with stub flows, properties with real flow."""
import math

import cv2
import numpy as np
import pytest

from ftpfusion_ros.metrics import TEMPORAL_METRICS, get_flow, temporal_metrics, video_flows
from ftpfusion_ros.metrics import temporal as T
from ftpfusion_ros.metrics.flow import FlowEstimator, consistency_mask, warp


class ZeroFlow(FlowEstimator):
    name = label = "zero"

    def __call__(self, a, b):
        return np.zeros((*a.shape, 2), np.float32)


class MeanShiftFlow(FlowEstimator):
    """Stub: a uniform horizontal flow equal to the change of the frame mean (a known, hand-checkable flow)."""

    name = label = "mean-shift"

    def __call__(self, a, b):
        flow = np.zeros((*a.shape, 2), np.float32)
        flow[..., 0] = float(np.mean(b, dtype=np.float64) - np.mean(a, dtype=np.float64))
        return flow


def _const_clip(values, shape=(6, 7)):
    return np.stack([np.full(shape, v, np.float32) for v in values])


def _moving_scene(rng, t_len=8, shape=(72, 96), speed=1.0, seed_offset=0):
    """A textured scene translating right by `speed` px per frame (sub-pixel via remap)."""
    h, w = shape
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h + 20, w + 40)), (0, 0), 2.5)
    big = (big - big.min()) / (big.max() - big.min()) * 200 + 25
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    frames = [cv2.remap(big.astype(np.float32), gx + 10 - speed * t, gy + 10, cv2.INTER_LINEAR) for t in range(t_len)]
    return np.stack(frames)


@pytest.fixture
def clips(rng):
    a = _moving_scene(rng)
    b = _moving_scene(np.random.default_rng(7))
    f = 0.5 * a + 0.5 * b
    return f, a, b


# ------------------------------------------------------------------------------------- flow basics
def test_flow_convention_and_warp(rng):
    img = _moving_scene(rng, t_len=1)[0]
    shifted = np.roll(img, 2, axis=1)  # content moves right by 2 px: a(x) = b(x + 2)
    flow = get_flow("dis_medium")(img, shifted)
    inner = (slice(10, -10), slice(10, -10))
    assert np.median(flow[inner][..., 0]) == pytest.approx(2.0, abs=0.2)
    assert np.median(flow[inner][..., 1]) == pytest.approx(0.0, abs=0.2)
    back = warp(shifted, flow)
    assert np.abs(back - img)[inner].mean() < 2.0
    for name in ("farneback", "dis_fast"):
        assert np.median(get_flow(name)(img, shifted)[inner][..., 0]) == pytest.approx(2.0, abs=0.3)


def test_flow_errors():
    with pytest.raises(ValueError, match="unknown flow"):
        get_flow("sea_raft")
    with pytest.raises(ValueError, match="weights"):
        get_flow("raft_small")  # learned flows need a local weights file: nothing is downloaded


def test_consistency_mask():
    fwd = np.ones((4, 5, 2), np.float32)
    assert consistency_mask(fwd, -fwd).all()
    assert not consistency_mask(fwd, fwd).any()  # |1 + 1| = 2 px > 1 px


# ----------------------------------------------------------------------------------- hand values
def test_biswe_and_flowd_by_hand_with_zero_flow():
    f = _const_clip([0, 2, 6])
    a = b = _const_clip([5, 5, 5])
    # zero flow: every pixel passes the consistency check; centre t=1: |2-0| + |2-6| = 6
    assert T.biswe(f, a, b, flow=ZeroFlow()) == pytest.approx(6.0)
    # flowD: mean of |2-0| and |6-2|
    assert T.flowd(f, a, b, flow=ZeroFlow()) == pytest.approx(3.0)


def test_ms2r_by_hand_with_stub_flow():
    f = _const_clip([0, 1, 3])   # fused flows 1, 2 -> change of motion (1, 0)
    a = _const_clip([0, 1, 2])   # IR flows 1, 1 -> no change: |D_IR| = 1
    b = _const_clip([0, 1, 3])   # visible moves like the fused video: |D_VIS| = 0
    assert T.ms2r(f, a, b, flow=MeanShiftFlow()) == pytest.approx(0.5)


def test_flicker_by_hand():
    f = _const_clip([10, 14, 12])
    a = _const_clip([10, 10, 10])
    b = _const_clip([10, 11, 10])
    # excess |dF| - max(|dA|, |dB|): 4 - 1 = 3, then 2 - 1 = 1
    assert temporal_metrics(f, a, b, ["flicker"])["flicker"] == pytest.approx(2.0)


def test_flicker_ratio_by_hand_and_for_mixing_fusions():
    a = _const_clip([10, 10, 10])
    b = _const_clip([10, 11, 10])
    # |dF| = 4, 2 against max(|dA|, |dB|) = 1, 1
    assert temporal_metrics(_const_clip([10, 14, 12]), a, b, ["flicker_ratio"])["flicker_ratio"] == pytest.approx(3.0)
    b = _const_clip([100, 104, 98, 103])
    steady = _const_clip([50, 50, 50, 50])
    ratio = lambda f: temporal_metrics(f, steady, b, ["flicker_ratio"])["flicker_ratio"]
    assert ratio(b) == pytest.approx(1.0)  # passes the flickering camera through
    assert ratio((steady + b) / 2) == pytest.approx(0.5)  # the average halves it
    assert ratio(steady) == pytest.approx(0.0)  # holds steady
    assert math.isnan(temporal_metrics(steady, steady, steady, ["flicker_ratio"])["flicker_ratio"])


def test_short_clips_give_nan():
    one = _const_clip([1])
    two = _const_clip([1, 2])
    vals = temporal_metrics(one, one, one, flow=ZeroFlow())
    assert all(math.isnan(v) for v in vals.values())
    assert math.isnan(T.biswe(two, two, two, flow=ZeroFlow()))
    assert T.flowd(two, two, two, flow=ZeroFlow()) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ properties
def test_static_identical_clip_scores_zero(rng):
    frame = _moving_scene(rng, t_len=1)[0]
    clip = np.stack([frame] * 5)
    vals = temporal_metrics(clip, clip, clip)
    for name in ("biswe", "ms2r", "flowd", "mmci_approx", "flicker"):
        assert vals[name] == pytest.approx(0.0, abs=1e-6), name
    assert math.isnan(vals["tcpe_approx"])  # nothing changes: no temporal trend to preserve


def test_moving_scene_is_mostly_compensated(clips):
    f, a, b = clips
    vals = temporal_metrics(f, a, b)
    frame_diff = np.abs(np.diff(f, axis=0)).mean()
    assert vals["biswe"] < frame_diff  # warping along the flow explains most of the change (2 directions)
    assert vals["flowd"] < 0.5 * frame_diff
    assert vals["ms2r"] < 0.3
    assert vals["flicker"] < 0.1


@pytest.mark.parametrize("name", ["biswe", "flowd", "mmci_approx", "flicker"])
def test_monotonic_with_growing_fused_flicker(clips, rng, name):
    f, a, b = clips
    offsets = rng.choice([-1.0, 1.0], f.shape[0])[:, None, None]
    vals = [temporal_metrics(np.clip(f + s * offsets, 0, 255), a, b, [name])[name] for s in (0, 2, 5, 10)]
    assert all(x < y for x, y in zip(vals, vals[1:])), vals


def test_ms2r_grows_with_fused_jitter(clips, rng):
    f, a, b = clips
    shifts = rng.choice([-1.0, 1.0], f.shape[0])
    h, w = f.shape[1:]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    vals = []
    for s in (0.0, 0.5, 1.0, 2.0):
        jittered = np.stack([cv2.remap(f[t], (gx + s * shifts[t]).astype(np.float32), gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                             for t in range(f.shape[0])])
        vals.append(T.ms2r(jittered, a, b))
    assert all(x < y for x, y in zip(vals, vals[1:])), vals


def test_mmci_grows_with_modality_drift(clips):
    _, a, b = clips
    t = np.arange(a.shape[0])[:, None, None]
    vals = []
    for amp in (0.0, 0.1, 0.2, 0.4):
        alpha = 0.5 + amp * np.where(t % 2 == 0, 1.0, -1.0)  # the mixing weight swings frame to frame
        vals.append(T.mmci_approx(alpha * a + (1 - alpha) * b, a, b))
    assert vals[0] < 0.02
    assert all(x < y for x, y in zip(vals, vals[1:])), vals


def test_tcpe_grows_with_temporal_shuffle(rng):
    t_len = 12
    a = _moving_scene(rng, t_len=t_len)
    b = _moving_scene(np.random.default_rng(3), t_len=t_len)
    # both sources change contrast over time (a trend the fused video should follow)
    gain = (1.0 + 0.5 * np.sin(np.arange(t_len) / 2.0))[:, None, None]
    a = np.clip(128 + (a - 128) * gain, 0, 255)
    b = np.clip(128 + (b - 128) * gain[::-1], 0, 255)
    f = 0.5 * a + 0.5 * b
    assert T.tcpe_approx(a, a, a) == pytest.approx(0.0, abs=1e-9)  # F = A = B: perfect correlation
    base = T.tcpe_approx(f, a, b)
    partial = f[[1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10]]
    reversed_ = f[::-1]
    vals = [base, T.tcpe_approx(partial, a, b), T.tcpe_approx(reversed_, a, b)]
    assert all(x < y for x, y in zip(vals, vals[1:])), vals


def test_swapped_sources_give_the_same_value(clips):
    f, a, b = clips
    v1 = temporal_metrics(f, a, b, ["biswe", "ms2r", "flicker"])
    v2 = temporal_metrics(f, b, a, ["biswe", "ms2r", "flicker"])
    for k in v1:
        assert v2[k] == pytest.approx(v1[k], rel=1e-6), k


def test_precomputed_flows_and_stream_agree(clips):
    f, a, b = clips
    est = get_flow("dis_fast")
    flows = {"fused": video_flows(f, est), "ir": video_flows(a, est), "vis": video_flows(b, est)}
    direct = temporal_metrics(f, a, b, flow=est)
    shared = temporal_metrics(f, a, b, flows=flows, flow=est)
    # one stream fed frame by frame with shared source flows (what the evaluation runner does)
    stream = T.TemporalStream(flow=est)
    prev = None
    for t in range(f.shape[0]):
        step = stream.source_flows(*prev, a[t], b[t]) if prev is not None else None
        stream.push(f[t], a[t], b[t], step)
        prev = (a[t], b[t])
    for name in TEMPORAL_METRICS:
        assert shared[name] == pytest.approx(direct[name], rel=1e-6), name
        assert stream.result()[name] == pytest.approx(direct[name], rel=1e-6), name


def test_input_checks(clips):
    f, a, b = clips
    with pytest.raises(ValueError, match="differ in shape"):
        temporal_metrics(f, a[:-1], b)
    with pytest.raises(ValueError, match="not a temporal metric"):
        temporal_metrics(f, a, b, ["vif"])
    with pytest.raises(ValueError, match="flows"):
        T.biswe(f, a, b, flows={"ir": video_flows(a[:3], ZeroFlow())})
