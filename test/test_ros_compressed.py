"""Compressed camera topics over real DDS: a 16-bit PNG thermal camera at 9 Hz and a JPEG visible camera
at 30 Hz (image_transport's ``<topic>/compressed``), fused at the visible rate with ``pairing: latest_ir``;
undecodable frames are counted and reported, and good frames after them are fused again."""
from __future__ import annotations

import numpy as np
import torch

import ros_env
from ros_env import Probe, diagnostic_statuses

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ftpfusion_ros.ros.conversions import array_to_compressed  # noqa: E402
from ftpfusion_ros.ros.sync_node import SyncNode  # noqa: E402

W, H = 64, 48
T0 = 3_000 * 1_000_000_000  # ns


def _header(stamp_ns: int, frame: str) -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return h


def test_compressed_cameras_at_different_rates_and_bad_frames() -> None:
    probe = Probe()
    try:
        params = [Parameter("model", value="average"), Parameter("pairing", value="latest_ir"),
                  Parameter("ir_transport", value="compressed"), Parameter("visible_transport", value="compressed"),
                  Parameter("queue_size", value=50), Parameter("diagnostics_period", value=0.2),
                  # reliable: the test counts frames
                  Parameter("cpu_threads", value=torch.get_num_threads()),
                  *ros_env.reliable_inputs(50, ("/ir/image_raw/compressed", "/visible/image_raw/compressed"))]
        sync, fusion = probe.add_composed(params)
        assert sync.transports == ("compressed", "compressed")
        pubs = probe.cameras(50, visible_compressed=True, ir_compressed=True)
        fused = probe.collect(Image, "fused/image")
        aligned_ir = probe.collect(Image, "aligned/ir")
        diags = probe.collect(DiagnosticArray, "/diagnostics")

        y, x = np.mgrid[0:H, 0:W]
        counts = (7000 + 40 * x + 10 * y).astype(np.uint16)  # a 14-bit thermal scene
        vis = np.stack([x * 2 + y, x + y * 2, x * 3], -1).astype(np.uint8)
        sent = 0

        def publish(cam: int, stamp: int, msg: CompressedImage | None = None) -> None:
            nonlocal sent
            if msg is None:
                msg = (array_to_compressed(counts, "mono16", "png") if cam == 0
                       else array_to_compressed(vis, "bgr8", "jpeg"))
            msg.header = _header(stamp, ("ir", "visible")[cam])
            pubs[cam].publish(msg)
            sent += 1
            # one message at a time: the arrival order is the stamp order
            assert probe.spin_until(lambda: sync.stats()["ir_received"] + sync.stats()["visible_received"] == sent, 5)

        def play(start_ns: int, duration_ms: int = 1000) -> list[int]:
            events = sorted([(start_ns + int(k * 1e9 / 9), 0) for k in range(duration_ms * 9 // 1000)]
                            + [(start_ns + int(k * 1e9 / 30) + 1, 1) for k in range(duration_ms * 30 // 1000)])
            for stamp, cam in events:
                publish(cam, stamp)
            return [s for s, c in events if c == 1]

        vis_stamps = play(T0)
        assert len(vis_stamps) == 30
        assert probe.spin_until(lambda: len(fused) == 30, 30), f"{len(fused)} fused of 30"
        assert [ros_env.stamp_ns(m) for m in fused] == vis_stamps
        # the 16-bit PNG reached the engine as 16-bit counts: its gain control maps the scene's gradient
        assert probe.spin_until(lambda: len(aligned_ir) >= 1, 5)
        ir8 = np.frombuffer(aligned_ir[-1].data, np.uint8).reshape(H, W)
        assert ir8[:, -1].mean() > ir8[:, 0].mean() + 50

        # bad data: a truncated JPEG, then garbage on the IR topic (reused by the next visible frames)
        t = T0 + 2_000_000_000
        publish(0, t)
        jpeg = array_to_compressed(vis, "bgr8", "jpeg")
        jpeg.data = jpeg.data[: len(jpeg.data) // 2]
        publish(1, t + 10_000_000, jpeg)
        publish(0, t + 20_000_000, CompressedImage(format="png", data=b"\x89PNG garbage"))
        publish(1, t + 30_000_000)
        publish(1, t + 40_000_000)
        assert sync.bad_input == [1, 1]  # the bad IR frame is counted once, not once per visible frame

        def latest() -> DiagnosticStatus | None:
            found = diagnostic_statuses(diags, "synchronizer")
            return found[-1] if found else None

        assert probe.spin_until(lambda: latest() is not None and latest().level == DiagnosticStatus.ERROR, 5)
        values = {kv.key: kv.value for kv in latest().values}
        assert values["bad_input_ir"] == "1" and values["bad_input_visible"] == "1"
        assert "neither JPEG nor PNG" in values["last_error"] and values["last_error"] in latest().message

        # good frames again: fused as before
        more = play(T0 + 3_000_000_000)
        assert probe.spin_until(lambda: len(fused) == 60, 30), f"{len(fused)} fused of 60"
        assert [ros_env.stamp_ns(m) for m in fused[30:]] == more
        assert fusion.input_errors == 0  # nothing bad reached the engine
    finally:
        probe.close()


def test_remapping_the_base_topic_moves_its_compressed_topic() -> None:
    """As image_transport does: `-r ir/image_raw:=/flir/image_raw` with ir_transport compressed subscribes
    /flir/image_raw/compressed."""
    probe = Probe()
    try:
        node = SyncNode(on_pair=lambda p: None, context=probe.context,
                        cli_args=["--ros-args", "-r", "ir/image_raw:=/flir/image_raw"],
                        parameter_overrides=[Parameter("ir_transport", value="compressed"),
                                             Parameter("diagnostics_period", value=0.0)])
        try:
            topics = {s.topic_name: s.msg_type for s in node.subscriptions}
            assert topics["/flir/image_raw/compressed"] is CompressedImage
            assert topics["/visible/image_raw"] is Image
        finally:
            node.destroy_node()
    finally:
        probe.close()
