"""Faults over real DDS: bad inputs and a silent camera keep the nodes alive and show in /diagnostics.

The sync and fusion nodes run composed in this process (their own rclpy nodes, talking to the test's
publishers through Fast DDS on loopback); the test plays both cameras with hand-made images.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import ros_env
from ros_env import Probe, diagnostic_statuses

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ftpfusion_ros.ros.conversions import array_to_image  # noqa: E402
from ftpfusion_ros.ros.sync_node import SyncNode  # noqa: E402
from ftpfusion_ros.runtime.sync_policy import ApproximateTimePolicy  # noqa: E402

W, H = 160, 120
T0 = 1_000 * 1_000_000_000  # ns


def _header(stamp_ns: int, frame: str) -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return h


class Cameras:
    """Publishes IR/visible pairs from the test node."""

    def __init__(self, probe: Probe) -> None:
        qos = QoSProfile(depth=20)
        self.ir = probe.node.create_publisher(Image, "ir/image_raw", qos)
        self.vis = probe.node.create_publisher(Image, "visible/image_raw", qos)
        rng = np.random.default_rng(0)
        self.ir_img = rng.integers(0, 255, (H, W), dtype=np.uint8)
        self.vis_img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        self.k = 0

    def stamp(self) -> int:
        self.k += 1
        return T0 + self.k * 50_000_000

    def pair(self, ir: Image | None = None, vis: Image | None = None) -> int:
        s = self.stamp()
        ir = ir or array_to_image(self.ir_img, "mono8")
        vis = vis or array_to_image(self.vis_img, "bgr8")
        ir.header, vis.header = _header(s, "ir_camera"), _header(s, "visible_camera")
        self.ir.publish(ir)
        self.vis.publish(vis)
        return s


def _latest(diags: list, suffix: str) -> DiagnosticStatus | None:
    found = diagnostic_statuses(diags, suffix)
    return found[-1] if found else None


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture
def rig():
    probe = Probe()
    params = [Parameter("model", value="average"), Parameter("diagnostics_period", value=0.2),
              Parameter("silence_timeout", value=0.6), Parameter("queue_size", value=5),
              # in-process: keep this pytest process's torch thread count as it is
              Parameter("cpu_threads", value=torch.get_num_threads())] + ros_env.reliable_inputs(20)
    sync, fusion = probe.add_composed(params)
    cams = Cameras(probe)
    fused = probe.collect(Image, "fused/image")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    assert probe.spin_until(lambda: cams.vis.get_subscription_count() > 0 and cams.ir.get_subscription_count() > 0, 10)
    yield probe, cams, sync, fusion, fused, diags
    probe.close()


def test_bad_inputs_and_a_silent_camera_are_reported_and_survived(rig) -> None:
    probe, cams, sync, fusion, fused, diags = rig
    fusion_diag = "ftpfusion_fusion_node: fusion"

    for _ in range(3):
        cams.pair()
    assert probe.spin_until(lambda: len(fused) == 3, 10), "good pairs are fused"

    # 1. an encoding the engine cannot fuse
    f64 = Image(height=H, width=W, encoding="64FC1", step=8 * W)
    f64.data = bytes(8 * W * H)
    cams.pair(vis=f64)
    assert probe.spin_until(lambda: fusion.input_errors == 1, 10)
    assert probe.spin_until(lambda: (s := _latest(diags, fusion_diag)) is not None and s.level == DiagnosticStatus.ERROR
                            and "64FC1" in s.message, 5), "wrong encoding not reported"

    # 2. IR and visible of different shapes (no homography configured)
    cams.pair(ir=array_to_image(np.zeros((100, 100), np.uint8), "mono8"))
    assert probe.spin_until(lambda: fusion.input_errors == 2, 10)
    assert probe.spin_until(lambda: "aspect ratio" in _latest(diags, fusion_diag).message, 5), "size mismatch not reported"

    # 3. a truncated buffer (height x step larger than the data)
    short = array_to_image(cams.ir_img, "mono8")
    short.data = short.data[: W * H // 2]
    cams.pair(ir=short)
    assert probe.spin_until(lambda: fusion.input_errors == 3, 10)
    status = _latest(diags, fusion_diag)
    assert probe.spin_until(lambda: "data bytes" in _latest(diags, fusion_diag).message, 5)
    assert int(_values(_latest(diags, fusion_diag))["input_errors"]) == 3

    # still fusing afterwards
    for _ in range(3):
        cams.pair()
    assert probe.spin_until(lambda: len(fused) == 6, 10), "the node stopped fusing after bad inputs"
    assert fusion.pairs_fused == 6 and fusion.pairs_dropped == 3

    # 4. the IR camera goes silent: the synchronizer warns, the fusion node warns of no input
    received = sync.stats()["visible_received"]
    for _ in range(12):
        s = cams.stamp()
        cams.vis.publish(array_to_image(cams.vis_img, "bgr8", _header(s, "visible_camera")))
        probe.spin_for(0.1)
    assert probe.spin_until(lambda: sync.stats()["visible_received"] == received + 12, 5)
    assert probe.spin_until(lambda: "no IR images" in _latest(diags, "ftpfusion_sync_node: synchronizer").message, 5)
    status = _latest(diags, "ftpfusion_sync_node: synchronizer")
    assert status.level == DiagnosticStatus.WARN, status
    values = _values(status)
    assert float(values["ir_silent_s"]) > 0.6
    # counts, not rates: every visible frame arrived, and all but the queue's worth went unpaired
    assert probe.spin_until(lambda: int(_values(_latest(diags, "ftpfusion_sync_node: synchronizer"))
                                        ["frames_dropped_visible"]) >= 12 - sync.queue_size, 5)
    assert probe.spin_until(lambda: "no input pairs" in _latest(diags, fusion_diag).message, 5)
    assert _latest(diags, fusion_diag).level == DiagnosticStatus.WARN

    # and it comes back
    for _ in range(2):
        cams.pair()
    assert probe.spin_until(lambda: len(fused) == 8, 10)
    assert probe.spin_until(lambda: _latest(diags, "ftpfusion_sync_node: synchronizer").level == DiagnosticStatus.OK, 3)

    # 5. time jumps back (a bag starting over) while the visible queue is full of unpaired frames: each
    #    new (older) frame would be the oldest and evicted at once, unless the queues are cleared
    received = sync.stats()["visible_received"] + sync.queue_size + 1
    for _ in range(sync.queue_size + 1):
        cams.vis.publish(array_to_image(cams.vis_img, "bgr8", _header(cams.stamp(), "visible_camera")))
    assert probe.spin_until(lambda: sync.stats()["visible_received"] == received, 5)
    assert sync.stats()["frames_queued_visible"] == sync.queue_size
    cams.k = -1000
    for _ in range(3):
        cams.pair()
    assert probe.spin_until(lambda: len(fused) == 11, 10), "pairing stuck after a jump back in time"
    assert sync.time_jumps == 1


@pytest.mark.parametrize("backend", ["builtin", "message_filters"])
def test_sync_node_pairs_like_the_policy(backend: str) -> None:
    """The node's pairing over DDS equals ApproximateTimePolicy fed the same arrival sequence."""
    if backend == "message_filters":
        pytest.importorskip("message_filters")
    probe = Probe()
    try:
        got: list[tuple[int, int]] = []
        params = [Parameter("sync_backend", value=backend), Parameter("slop", value=0.015),
                  Parameter("queue_size", value=4), Parameter("diagnostics_period", value=0.0),
                  *ros_env.reliable_inputs(50)]
        node = probe.add(SyncNode(on_pair=lambda p: got.append((ros_env.stamp_ns(p.ir), ros_env.stamp_ns(p.visible))),
                                  context=probe.context, parameter_overrides=params))
        assert node.backend == backend
        cams = Cameras(probe)
        assert probe.spin_until(lambda: cams.vis.get_subscription_count() > 0 and cams.ir.get_subscription_count() > 0, 10)
        rng = random.Random(5)
        policy = ApproximateTimePolicy(2, queue_size=4, slop=0.015)
        expected: list[tuple[int, int]] = []
        events = []
        for k in range(40):
            for i in (0, 1):
                if rng.random() > 0.1:
                    events.append((k * 33_000_000 + rng.randint(-12_000_000, 12_000_000) + rng.randint(0, 40_000_000),
                                   i, T0 + k * 33_000_000 + rng.randint(-10_000_000, 10_000_000)))
        events.sort()
        for n, (_, i, stamp) in enumerate(events, 1):
            img = array_to_image(cams.ir_img if i == 0 else cams.vis_img, "mono8" if i == 0 else "bgr8",
                                 _header(stamp, "cam"))
            (cams.ir if i == 0 else cams.vis).publish(img)
            # one message at a time, so that the arrival order is the publishing order
            assert probe.spin_until(lambda: sum(node.stats()[k] for k in ("ir_received", "visible_received")) == n, 5)
            out = policy.add(i, stamp, stamp)
            if out is not None:
                expected.append(out)
        assert len(expected) > 20
        assert got == expected
        stats = node.stats()
        assert stats["pairs_formed"] == len(expected)
        assert stats["frames_dropped_ir"] == policy.stats.dropped[0]
        assert stats["frames_dropped_visible"] == policy.stats.dropped[1]
    finally:
        probe.close()


def test_model_options_parameter_reaches_the_engine_and_bad_keys_stop_the_node() -> None:
    """model_options overrides model config keys over the checkpoint's: FTPFusion without its stabiliser;
    a misspelt key is refused when the node starts, naming the key (not silently ignored)."""
    from ftpfusion_ros.ros.fusion_node import FusionNode

    probe = Probe()
    try:
        base = [Parameter("model", value="ftpfusion"), Parameter("allow_untrained", value=True),
                Parameter("cpu_threads", value=torch.get_num_threads())]
        node = FusionNode(context=probe.context,
                          parameter_overrides=base + [Parameter("model_options", value="stabiliser=false")])
        assert node.engine.model.stabiliser is None
        node.destroy_node()
        node = FusionNode(context=probe.context, parameter_overrides=base)
        assert node.engine.model.stabiliser is not None  # the default keeps it
        node.destroy_node()
        with pytest.raises(ValueError, match="stabilizer"):
            FusionNode(context=probe.context,
                       parameter_overrides=base + [Parameter("model_options", value="stabilizer=false")])
    finally:
        probe.close()
