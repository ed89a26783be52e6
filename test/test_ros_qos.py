"""QoS through rclpy's standard overrides (``qos_overrides.<topic>.<subscription|publisher>.<policy>``):
REP-2003 defaults, and an override that changes what the DDS endpoints actually use."""
from __future__ import annotations

import subprocess
import sys

import torch

import ros_env
from ros_env import Probe

ros_env.require_interfaces()

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy  # noqa: E402



def _endpoint(infos: list, node_name: str):
    found = [i for i in infos if i.node_name == node_name]
    assert len(found) == 1, [i.node_name for i in infos]
    return found[0].qos_profile


def test_defaults_and_overrides_reach_the_dds_endpoints() -> None:
    probe = Probe()
    try:
        overrides = {"qos_overrides./ir/image_raw.subscription.reliability": "reliable",
                     "qos_overrides./ir/image_raw.subscription.depth": 7,
                     "qos_overrides./fused/image.publisher.reliability": "best_effort",
                     "qos_overrides./fused/image.publisher.durability": "transient_local"}
        params = [Parameter("model", value="average"), Parameter("diagnostics_period", value=0.0),
                  Parameter("cpu_threads", value=torch.get_num_threads())]
        params += [Parameter(k, value=v) for k, v in overrides.items()]
        sync, fusion = probe.add_composed(params)
        node = probe.node

        def endpoints() -> tuple:
            return (node.get_subscriptions_info_by_topic("/ir/image_raw"),
                    node.get_subscriptions_info_by_topic("/visible/image_raw"),
                    node.get_publishers_info_by_topic("/fused/image"),
                    node.get_publishers_info_by_topic("/fused/status"))

        assert probe.spin_until(lambda: all(endpoints()), 10)
        ir_sub, vis_sub, fused_pub, status_pub = endpoints()
        ir = _endpoint(ir_sub, "ftpfusion_sync_node")
        assert ir.reliability == ReliabilityPolicy.RELIABLE  # overridden
        # discovery does not carry the history depth: the subscription's own profile does
        ir_local = [s for s in sync.subscriptions if s.topic_name == "/ir/image_raw"]
        assert [s.qos_profile.depth for s in ir_local] == [7]
        vis = _endpoint(vis_sub, "ftpfusion_sync_node")
        assert vis.reliability == ReliabilityPolicy.BEST_EFFORT  # REP-2003 sensor data: the default
        fused = _endpoint(fused_pub, "ftpfusion_fusion_node")
        assert fused.reliability == ReliabilityPolicy.BEST_EFFORT and fused.durability == DurabilityPolicy.TRANSIENT_LOCAL
        status = _endpoint(status_pub, "ftpfusion_fusion_node")
        assert status.reliability == ReliabilityPolicy.RELIABLE  # publishers' default

        # the parameters are the standard read-only ones: visible to `ros2 param`, not changeable at run time
        assert sync.get_parameter("qos_overrides./ir/image_raw.subscription.reliability").value == "reliable"
        assert sync.get_parameter("qos_overrides./visible/image_raw.subscription.reliability").value == "best_effort"
        result = sync.set_parameters([Parameter("qos_overrides./ir/image_raw.subscription.depth", value=3)])
        assert not result[0].successful
    finally:
        probe.close()


def test_command_line_override_and_a_bad_value(tmp_path) -> None:
    """`-p qos_overrides...:=...` on the executable; a value rclpy cannot apply ends with one line naming it."""
    cmd = [sys.executable, "-m", "ftpfusion_ros.ros.sync_node", "--ros-args", "-p", "autostart:=true", "-p",
           "qos_overrides./ir/image_raw.subscription.reliability:=sometimes"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=ros_env.child_env(), cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "qos_overrides./ir/image_raw.subscription" in lines[-1] and "sometimes" in lines[-1]
    assert "Traceback" not in out.stderr
