"""The weight-free frontier and a learned model's gain at equal warp (ftpfusion_ros.evaluation.frontier)."""
from __future__ import annotations

import pytest

from ftpfusion_ros.evaluation.frontier import (DEFAULT_SWEEP, curve_value, frontier_table, gain_at_equal_warp,
                                               upper_frontier)
from ftpfusion_ros.models import build_model


def test_upper_frontier_drops_points_another_beats_on_both():
    pts = [(4.0, 0.74), (3.6, 0.70), (4.4, 0.765), (4.2, 0.73), (5.0, 0.76)]
    assert upper_frontier(pts) == [(3.6, 0.70), (4.0, 0.74), (4.4, 0.765)]


def test_curve_value_interpolates_and_does_not_extrapolate():
    pts = [(4.0, 0.74), (4.4, 0.76)]
    assert curve_value(pts, 4.2) == pytest.approx(0.75)
    assert curve_value(pts, 4.0) == pytest.approx(0.74)
    assert curve_value(pts, 3.9) is None and curve_value(pts, 4.5) is None
    assert curve_value([(4.0, 0.74)], 4.0) == pytest.approx(0.74)
    assert curve_value([], 4.0) is None


def test_gain_at_equal_warp_is_the_height_above_the_curve():
    free = [(3.6, 0.70), (4.0, 0.74), (4.4, 0.76)]
    # on the line between two weight-free points: nothing gained; above it: the difference
    assert gain_at_equal_warp(free, (4.2, 0.75)) == pytest.approx(0.0, abs=1e-12)
    assert gain_at_equal_warp(free, (4.2, 0.78)) == pytest.approx(0.03)
    assert gain_at_equal_warp(free, (3.8, 0.69)) == pytest.approx(-0.03)
    assert gain_at_equal_warp(free, (5.0, 0.80)) is None


def test_frontier_table_scores_learned_rows_only():
    means = {"base": {"qabf": 0.74, "biswe": 4.0}, "keep": {"qabf": 0.76, "biswe": 4.4},
             "net": {"qabf": 0.77, "biswe": 4.2}}
    rows = {r["label"]: r for r in frontier_table(means, ["net"])}
    assert rows["net"]["gain_at_equal_warp"] == pytest.approx(0.02)
    assert "gain_at_equal_warp" not in rows["base"]


def test_default_sweep_builds_weight_free_models():
    for label, options in DEFAULT_SWEEP.items():
        m = build_model("ftpfusion", options)
        assert not m.refine_enabled, label


def test_frontier_script_places_the_packaged_network_on_real_runs(tmp_path):
    """scripts/frontier.py end to end on a tiny synthetic sequence: every weight-free point and the
    packaged checkpoint stream through the engine, and the report holds a gain (or 'outside') per setting."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene

    root = tmp_path / "data"
    SyntheticScene(SceneConfig(width=64, height=48, seed=0)).write_folders(root, 6, sequence="seq_a")
    script = Path(__file__).resolve().parents[1] / "scripts" / "frontier.py"
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(script), "--data", str(root), "--frames", "6", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((out / "frontier.json").read_text())
    assert set(report["settings"]) == {"clean", "perturbed"}
    for setting, rows in report["settings"].items():
        labels = [r["label"] for r in rows]
        assert labels == [*DEFAULT_SWEEP, "learned: packaged"]
        assert "gain_at_equal_warp" in rows[-1]
        assert (out / f"frontier_{setting}.png").stat().st_size > 0
    assert "learned: packaged" in run.stdout
    bad = subprocess.run([sys.executable, str(script), "--data", str(root), "--sequences", "nope", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "nope" in bad.stderr
