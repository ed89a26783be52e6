"""The node's online flicker score: hand values, properties, cost."""

import numpy as np
import pytest

from ftpfusion_ros.metrics import bgr_to_y, clip_flicker
from ftpfusion_ros.metrics.online import FlickerMonitor, excess_change, luma_mean


def test_excess_change_by_hand():
    assert excess_change(14.0, 10.0, 11.0, (10.0, 10.0, 10.0)) == pytest.approx(3.0)
    assert excess_change(12.0, 12.0, 10.0, (10.0, 10.0, 10.0)) == 0.0  # follows the IR change
    assert excess_change(9.0, 10.0, 8.0, (10.0, 10.0, 10.0)) == 0.0    # within the larger source change


def test_monitor_scores_made_up_brightness_changes_only():
    mon = FlickerMonitor(halflife=5)
    for _ in range(20):
        assert mon.update(100.0, 80.0, 120.0) == 0.0  # steady scene
    mon.reset()
    for t in range(20):  # fused follows a source that flickers: not the fusion's fault
        v = 100.0 + (5.0 if t % 2 else -5.0)
        assert mon.update(v, 80.0, v) == 0.0
    mon.reset()
    mon.update(100.0, 80.0, 120.0)
    assert mon.update(106.0, 80.0, 121.0) == pytest.approx(5.0)  # first difference initialises the EMA
    scores = [mon.update(100.0 + (6.0 if t % 2 else 0.0), 80.0, 121.0) for t in range(30)]
    assert scores[-1] > 4.0  # keeps flickering by 6 levels against a steady scene
    assert mon.fused_change > mon.source_change


def test_monitor_decays_when_flicker_stops():
    mon = FlickerMonitor(halflife=3)
    for t in range(10):
        mon.update(100.0 + (8.0 if t % 2 else 0.0), 50.0, 50.0)
    high = mon.score
    for _ in range(15):
        mon.update(100.0, 50.0, 50.0)
    assert mon.score < high / 16


def test_monitor_rejects_bad_input():
    with pytest.raises(ValueError):
        FlickerMonitor(halflife=0)
    with pytest.raises(ValueError):
        FlickerMonitor().update(float("nan"), 1.0, 1.0)


def test_luma_mean_matches_bt601(rng):
    bgr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert luma_mean(bgr) == pytest.approx(float(bgr_to_y(bgr).mean()), rel=1e-6)
    mono = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    assert luma_mean(mono) == pytest.approx(float(mono.mean()))


def test_clip_flicker_matches_monitor_differences():
    f = np.array([10.0, 14.0, 12.0])[:, None, None] * np.ones((1, 3, 3))
    a = np.full((3, 3, 3), 10.0)
    b = np.array([10.0, 11.0, 10.0])[:, None, None] * np.ones((1, 3, 3))
    assert clip_flicker(f, a, b) == pytest.approx(2.0)
