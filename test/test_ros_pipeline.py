"""The nodes over real DDS (loopback only): camera simulator -> sync -> fusion -> a test subscriber.

Each node runs in its own process, as deployed; the test process only observes. Small images and the
"average" model keep each test to a few seconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ros_env
from ros_env import Probe, diagnostic_statuses, node_process, stamp_ns, stop

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from ftpfusion_ros.msg import FramePair, FusionStatus  # noqa: E402
from ftpfusion_ros.ros.conversions import image_to_array  # noqa: E402

W, H, RATE, FRAMES = 160, 120, 20.0, 30
IR_OFFSET = 0.004  # s: IR stamps lag the visible ones, to see the skew travel through


@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.close()


def _wait_for_pipeline(probe: Probe, procs: list, timeout: float = 60.0) -> None:
    """Until the fusion side subscribes the IR camera and publishes fused/image (model loaded)."""
    def ready() -> bool:
        for proc in procs:
            assert proc.poll() is None, f"a node exited early with status {proc.returncode}"
        # 2 subscribers: the sync node's and this test's (_subscribe_cameras)
        return (probe.node.count_subscribers("/ir/image_raw") >= 2
                and probe.node.count_publishers("/fused/image") > 0)

    assert probe.spin_until(ready, timeout), "fusion pipeline did not come up"


def _subscribe_cameras(probe: Probe) -> tuple[list, list]:
    """The raw camera topics, reliable (as published): the test must see every frame to compare stamps."""
    return probe.collect(Image, "ir/image_raw"), probe.collect(Image, "visible/image_raw")


def _run_camera(probe: Probe, tmp_path: Path, fused: list, **params) -> dict:
    log = tmp_path / "camera_sim.log"
    # min_subscribers 2: both camera topics wait for the sync node's and this test's subscriptions
    sim = node_process("camera_sim", {"width": W, "height": H, "rate": RATE, "max_frames": FRAMES,
                                      "exit_when_done": True, "wait_for_subscribers": 20.0, "min_subscribers": 2,
                                      "ir_stamp_offset": IR_OFFSET, **params}, log=log)
    try:
        probe.spin_until(lambda: sim.poll() is not None, 60.0)
        # let the last frames drain through sync and fusion
        probe.spin_until(lambda: len(fused) >= FRAMES, 5.0)
        probe.spin_for(0.3)
    finally:
        stop(sim)
    summary = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert summary and summary[-1]["pairs_published"] == FRAMES, log.read_text()[-2000:]
    return summary[-1]


def _check_fused_stream(fused: list, visible: list) -> list[int]:
    stamps = [stamp_ns(m) for m in fused]
    visible_stamps = {stamp_ns(m) for m in visible}
    # How many get through depends on the machine's load (the fusion queue drops the oldest pair when
    # fusion falls behind): the counts are checked against the nodes' own accounting, not a rate.
    assert stamps, "nothing fused"
    assert all(a < b for a, b in zip(stamps, stamps[1:])), "fused frames out of order or duplicated"
    assert set(stamps) <= visible_stamps, "fused stamps must be the visible frames' stamps"
    for msg in fused:
        assert (msg.encoding, msg.width, msg.height) == ("bgr8", W, H)
        assert msg.header.frame_id == "visible_camera"
        img = image_to_array(msg)
        assert img.std() > 1.0  # a real picture, not a blank frame
    return stamps


def test_composed_pipeline_over_dds(probe: Probe, tmp_path: Path) -> None:
    fused = probe.collect(Image, "fused/image")
    status = probe.collect(FusionStatus, "fused/status")
    info = probe.collect(CameraInfo, "fused/camera_info")
    seg = probe.collect(Image, "fused/image_seg")
    aligned_ir = probe.collect(Image, "aligned/ir")
    aligned_vis = probe.collect(Image, "aligned/visible")
    _, visible = _subscribe_cameras(probe)
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    fusion = node_process("composed", {"autostart": True, "model": "average", "seg.width": 64, "seg.height": 48,
                                       "seg.format": "float", "diagnostics_period": 0.5},
                          log=tmp_path / "composed.log")
    try:
        _wait_for_pipeline(probe, [fusion])
        _run_camera(probe, tmp_path, fused)
        probe.spin_until(lambda: len(status) >= len(fused) and len(diags) >= 4, 3.0)
        assert fusion.poll() is None, "the composed node died"
    finally:
        assert stop(fusion) == 0, (tmp_path / "composed.log").read_text()[-3000:]

    stamps = _check_fused_stream(fused, visible)
    by_stamp = {stamp_ns(m): m for m in status}
    assert set(stamps) <= set(by_stamp)
    for s in stamps:
        st = by_stamp[s]
        assert st.skew_sec == pytest.approx(IR_OFFSET, abs=1e-6)
        assert st.ir_stamp.sec * 1_000_000_000 + st.ir_stamp.nanosec == s + round(IR_OFFSET * 1e9)
        assert st.model == "average" and st.device == "cpu" and st.latency_ms > 0
    assert {stamp_ns(m) for m in info} >= set(stamps[-5:])
    assert all((m.width, m.height) == (W, H) for m in info)
    # the simulator's calibration is passed on once its camera_info has arrived (not before the 1st image)
    assert info[-1].k[0] == pytest.approx(0.866 * W) and info[-1].header.frame_id == "visible_camera"
    assert seg and all((m.encoding, m.width, m.height) == ("32FC3", 64, 48) for m in seg)
    seg_px = image_to_array(seg[-1])
    assert seg_px.dtype == np.float32 and seg_px.min() < 0 < seg_px.max()  # normalised, not 0..255
    assert aligned_ir and all((m.encoding, m.width, m.height) == ("mono8", W, H) for m in aligned_ir)
    assert aligned_vis and all(m.encoding == "bgr8" for m in aligned_vis)
    assert {stamp_ns(m) for m in aligned_ir} <= {stamp_ns(m) for m in visible}

    fusion_diag = diagnostic_statuses(diags, "ftpfusion_fusion_node: fusion")
    sync_diag = diagnostic_statuses(diags, "ftpfusion_sync_node: synchronizer")
    assert fusion_diag and sync_diag
    values = {kv.key: kv.value for kv in fusion_diag[-1].values}
    assert values["device"] == "cpu"
    # every pair is accounted for: fused (and published, with its status) or dropped by the queue only
    last = status[-1]
    assert last.pairs_fused == len(status) == len(fused)
    assert last.pairs_received == last.pairs_fused + last.pairs_dropped
    assert values["input_errors"] == "0" and values["internal_errors"] == "0"
    assert int(values["pairs_dropped"]) == int(values["queue_overflows"])
    assert {"input_rate_hz", "pairs_dropped", "latency_ms_p50", "latency_ms_p99"} <= values.keys()
    # the average of the sources makes up no brightness change and passes at most the larger one
    assert float(values["flicker_score"]) < 0.5 and 0.0 <= float(values["flicker_ratio"]) <= 1.01
    assert any(s.level == DiagnosticStatus.OK for s in fusion_diag)
    sync_values = {kv.key: kv.value for kv in sync_diag[-1].values}
    assert int(sync_values["pairs_formed"]) >= last.pairs_received  # composed: every pair handed over
    assert {"ir_rate_hz", "visible_rate_hz", "frames_dropped_ir", "skew_mean_ms"} <= sync_values.keys()


def test_split_mode_over_frame_pair(probe: Probe, tmp_path: Path) -> None:
    fused = probe.collect(Image, "fused/image")
    pairs = probe.collect(FramePair, "frame_pair", reliable=False)
    ir_raw, visible = _subscribe_cameras(probe)
    fusion = node_process("fusion_node", {"autostart": True, "model": "average"}, log=tmp_path / "fusion.log")
    sync = node_process("sync_node", {"autostart": True, "slop": 0.01}, log=tmp_path / "sync.log")
    try:
        _wait_for_pipeline(probe, [fusion, sync])
        assert probe.spin_until(lambda: probe.node.count_subscribers("/frame_pair") >= 2, 20.0)
        _run_camera(probe, tmp_path, fused, ir_encoding="mono16")
        assert fusion.poll() is None and sync.poll() is None
    finally:
        assert stop(sync) == 0, (tmp_path / "sync.log").read_text()[-3000:]
        assert stop(fusion) == 0, (tmp_path / "fusion.log").read_text()[-3000:]
    _check_fused_stream(fused, visible)
    assert pairs, "no FramePair seen on /frame_pair"
    for p in pairs:
        assert p.ir.encoding == "mono16" and p.visible.encoding == "bgr8"
        assert p.header == p.visible.header and p.skew_sec == pytest.approx(IR_OFFSET, abs=1e-6)
        assert stamp_ns(p.ir) - stamp_ns(p.visible) == round(IR_OFFSET * 1e9)
    # camera_info arrives on its own topics: once seen, it rides along with every pair
    with_info = [p for p in pairs if len(p.visible_camera_info)]
    assert with_info and with_info[-1].visible_camera_info[0].width == W
    assert len(with_info[-1].ir_camera_info) == 1
