"""`ftpfusion demo` (what `make demo` runs): camera simulator + fusion over real DDS -> demo outputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2

import ros_env

ros_env.require_interfaces()

REPORT_KEYS = {"pairs_published", "pairs_fused", "pairs_dropped", "latency_ms_p50", "latency_ms_p99", "rate_hz",
               "size", "model"}


def test_demo_writes_video_contact_sheet_and_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "ftpfusion_ros.cli.main", "demo", "--out", str(out),
                          "--size", "160x120", "--rate", "10", "--duration", "2", "--model", "average"],
                         capture_output=True, text=True, timeout=150, env=ros_env.child_env())
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= report.keys()
    assert report["pairs_published"] == 20 and report["size"] == "160x120" and report["model"] == "average"
    # counts and consistency, not speed (the machine may be loaded): every pair fused or dropped
    assert report["pairs_fused"] + report["pairs_dropped"] == 20 and report["pairs_fused"] >= 1
    assert report["in_order"] and report["duplicates"] == 0 and report["frame_id"] == "visible_camera"
    assert 0 < report["latency_ms_p50"] <= report["latency_ms_p99"]
    assert report["engine_latency_ms_p50"] <= report["latency_ms_p50"]
    assert report["rate_hz"] > 0
    video = cv2.VideoCapture(str(out / "fused.mp4"))
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = video.read()
    video.release()
    assert ok and first.shape == (120, 160, 3) and frames == report["pairs_fused"]
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] == 3 * 160 and report["contact_sheet_rows"] >= 2
    assert sheet.shape[0] == 28 + 120 * report["contact_sheet_rows"]


def test_demo_rejects_a_bad_size() -> None:
    run = subprocess.run([sys.executable, "-m", "ftpfusion_ros.cli.main", "demo", "--size", "huge"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--size" in run.stderr
