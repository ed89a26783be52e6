"""Cameras at different rates over real DDS: with ``pairing: latest_ir`` a slow thermal camera beside a
fast visible one still gives one fused frame per visible frame (counts and order, not timing)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ros_env
from ros_env import Probe, diagnostic_statuses

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ftpfusion_ros.ros.conversions import array_to_image  # noqa: E402
from ftpfusion_ros.ros.sync_node import SyncNode  # noqa: E402

W, H = 64, 48
T0 = 2_000 * 1_000_000_000  # ns
MS = 1_000_000


def _header(stamp_ns: int, frame: str) -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return h


def _events(duration_ms: int = 1000) -> list[tuple[int, int]]:
    """(camera, stamp) in stamp order: IR at 9 Hz, visible at 30 Hz (camera 0 = IR, 1 = visible)."""
    ir = [(0, T0 + int(k * 1e9 / 9)) for k in range(duration_ms * 9 // 1000)]
    vis = [(1, T0 + int(k * 1e9 / 30) + 1) for k in range(duration_ms * 30 // 1000)]
    return sorted(ir + vis, key=lambda e: e[1])


def _reliable_inputs() -> list[Parameter]:
    # reliable: this test counts frames, and a best-effort reader may lose one on a loaded machine
    return ros_env.reliable_inputs(50)


def test_latest_ir_fuses_every_visible_frame_of_a_faster_camera() -> None:
    probe = Probe()
    try:
        params = [Parameter("model", value="average"), Parameter("pairing", value="latest_ir"),
                  Parameter("max_ir_age", value=0.2), Parameter("queue_size", value=50),
                  Parameter("diagnostics_period", value=0.2),
                  Parameter("cpu_threads", value=torch.get_num_threads())] + _reliable_inputs()
        sync, fusion = probe.add_composed(params)
        pubs = probe.cameras(50)
        fused = probe.collect(Image, "fused/image")
        diags = probe.collect(DiagnosticArray, "/diagnostics")

        rng = np.random.default_rng(0)
        images = (rng.integers(0, 255, (H, W), dtype=np.uint8), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        events = _events()
        for n, (cam, stamp) in enumerate(events, 1):
            pubs[cam].publish(array_to_image(images[cam], ("mono8", "bgr8")[cam], _header(stamp, f"cam{cam}")))
            # one message at a time: the arrival order is the stamp order
            assert probe.spin_until(lambda: sum(sync.stats()[k] for k in ("ir_received", "visible_received")) == n, 5)
        vis_stamps = [s for c, s in events if c == 1]
        n_ir = len(events) - len(vis_stamps)
        assert (n_ir, len(vis_stamps)) == (9, 30)
        assert probe.spin_until(lambda: len(fused) == len(vis_stamps), 30), f"{len(fused)} fused of {len(vis_stamps)}"
        assert [ros_env.stamp_ns(m) for m in fused] == vis_stamps  # every visible frame, once, in order

        st = sync.stats()
        assert st["pairing"] == "latest_ir"
        assert st["pairs_formed"] == 30
        assert st["ir_reused"] == 30 - 9
        assert st["frames_dropped_visible"] == 0 and st["frames_dropped_ir"] == 0
        assert 0 < st["ir_age_max_ms"] <= 1000 / 9 + 1e-3
        assert fusion.pairs_fused == 30

        def reported() -> dict[str, str] | None:
            found = diagnostic_statuses(diags, "synchronizer")
            return {kv.key: kv.value for kv in found[-1].values} if found else None

        assert probe.spin_until(lambda: (reported() or {}).get("pairs_formed") == "30", 5)
        values = reported()
        assert values["ir_reused"] == "21" and values["pairing"] == "latest_ir"
        assert "ir_age_mean_ms" in values and "max_ir_age_ms" in values
    finally:
        probe.close()


def test_approximate_pairing_gives_the_slow_camera_rate_and_latest_ir_refuses_message_filters() -> None:
    """The same streams with the default pairing: only the visible frames within slop of an IR frame."""
    probe = Probe()
    try:
        got: list[tuple[int, int]] = []
        params = [Parameter("sync_backend", value="builtin"), Parameter("slop", value=0.02),
                  Parameter("queue_size", value=10), Parameter("diagnostics_period", value=0.0)] + _reliable_inputs()
        node = probe.add(SyncNode(on_pair=lambda p: got.append((ros_env.stamp_ns(p.ir), ros_env.stamp_ns(p.visible))),
                                  context=probe.context, parameter_overrides=params))
        assert node.pairing == "approximate"
        pubs = probe.cameras(50)
        img = array_to_image(np.zeros((H, W), np.uint8), "mono8")
        events = _events()
        for n, (cam, stamp) in enumerate(events, 1):
            img.header = _header(stamp, "cam")
            pubs[cam].publish(img)
            assert probe.spin_until(lambda: sum(node.stats()[k] for k in ("ir_received", "visible_received")) == n, 5)
        assert len(got) == 9  # one pair per IR frame: 9 Hz output
        assert all(abs(ir - vis) < 20 * MS for ir, vis in got)

        with pytest.raises(ValueError, match="latest_ir"):
            SyncNode(on_pair=lambda p: None, context=probe.context,
                     parameter_overrides=[Parameter("pairing", value="latest_ir"),
                                          Parameter("sync_backend", value="message_filters")])
    finally:
        probe.close()
