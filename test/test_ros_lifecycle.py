"""Managed nodes and run-time parameters over real DDS (loopback), through the standard services.

The composed process starts unconfigured; configure -> activate over lifecycle_msgs/srv/ChangeState makes
fused frames arrive, deactivate stops them; a bad model name fails configure with the reason in the
log and in /diagnostics. Parameters: a valid run-time change (rcl_interfaces/srv/SetParameters, what
`ros2 param set` calls) takes effect on the next frame, an invalid value and a read-only parameter are
refused with a reason. Frames come from this test (small images, counted), not from a simulator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ros_env
from ros_env import Probe, diagnostic_statuses, node_process, stamp_ns, stop

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ftpfusion_ros.ros.conversions import array_to_image, image_to_array  # noqa: E402

W, H = 64, 48
FUSION, SYNC = "/ftpfusion_fusion_node", "/ftpfusion_sync_node"
RELIABLE_INPUTS = {f"qos_overrides./{t}/image_raw.subscription.{k}": v
                   for t in ("ir", "visible") for k, v in (("reliability", "reliable"), ("depth", 50))}


class Cameras:
    """Publishes IR (mono16) / visible (bgr8) pairs with equal stamps from the probe."""

    def __init__(self, probe: Probe) -> None:
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.probe = probe
        self.ir = probe.node.create_publisher(Image, "/ir/image_raw", qos)
        self.vis = probe.node.create_publisher(Image, "/visible/image_raw", qos)
        self.t = 1_000_000_000
        rng = np.random.default_rng(0)
        self.ir_px = (rng.random((H, W)) * 2000 + 29000).astype(np.uint16)  # centi-kelvin, 17..37 degC
        self.vis_px = (rng.random((H, W, 3)) * 255).astype(np.uint8)

    def matched(self) -> bool:
        """Both cameras matched to the node's subscriptions and every subscription of the probe to its
        publisher (reliable, volatile: a message sent before the match would not be delivered)."""
        return (self.ir.get_subscription_count() >= 1 and self.vis.get_subscription_count() >= 1
                and all(sub.get_publisher_count() >= 1 for sub in self.probe.node.subscriptions))

    def warm_up(self, *outputs: list, timeout: float = 20.0) -> None:
        """Send pairs until every list in ``outputs`` got a message, then empty them: the node's publishers
        have then matched this probe's subscriptions too (discovery is not symmetric in time, and a node
        publishes its optional outputs only to matched subscribers)."""
        def arrived() -> bool:
            if not all(outputs):
                self.send(1)
            return all(outputs)

        assert self.probe.spin_until(arrived, timeout), "no output during warm-up"
        counts = None
        while counts != [len(out) for out in outputs]:  # until the warm-up frames still in flight are in
            counts = [len(out) for out in outputs]
            self.probe.spin_for(0.5)
        for out in outputs:
            out.clear()

    def send(self, n: int) -> list[int]:
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        stamps = []
        for _ in range(n):
            self.t += 50_000_000
            header = Header(stamp=Time(sec=self.t // 10**9, nanosec=self.t % 10**9), frame_id="visible_camera")
            self.ir.publish(array_to_image(self.ir_px, "mono16", header))
            self.vis.publish(array_to_image(self.vis_px, "bgr8", header))
            stamps.append(self.t)
            self.probe.spin_for(0.03)
        return stamps


def _set(probe: Probe, node: str, **values):
    params = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
    return probe.call(SetParameters, f"{node}/set_parameters", SetParameters.Request(parameters=params)).results


@pytest.fixture
def probe():
    p = Probe("ftpfusion_test_lifecycle")
    yield p
    p.close()


def test_composed_nodes_start_unconfigured_and_follow_the_lifecycle(probe: Probe, tmp_path: Path) -> None:
    fused = probe.collect(Image, "fused/image")
    cams = Cameras(probe)
    log = tmp_path / "composed.log"
    proc = node_process("composed", {"model": "average", "diagnostics_period": 0.0, **RELIABLE_INPUTS}, log=log)
    try:
        assert probe.lifecycle_state(FUSION) == State.PRIMARY_STATE_UNCONFIGURED
        assert probe.lifecycle_state(SYNC) == State.PRIMARY_STATE_UNCONFIGURED
        assert probe.node.count_subscribers("/visible/image_raw") == 0  # nothing subscribed yet
        cams.send(3)
        probe.spin_for(0.3)
        assert not fused

        for node in (FUSION, SYNC):  # the fusion node first: its model is loaded before pairs come
            assert probe.lifecycle_transition(node, Transition.TRANSITION_CONFIGURE)
            assert probe.lifecycle_state(node) == State.PRIMARY_STATE_INACTIVE
        assert probe.spin_until(lambda: probe.node.count_publishers("/fused/image") == 1, 10.0)
        for node in (FUSION, SYNC):
            assert probe.lifecycle_transition(node, Transition.TRANSITION_ACTIVATE)
            assert probe.lifecycle_state(node) == State.PRIMARY_STATE_ACTIVE
        assert probe.spin_until(cams.matched, 10.0)
        cams.warm_up(fused)
        sent = cams.send(8)
        assert probe.spin_until(lambda: len(fused) >= 8, 20.0), log.read_text()[-2000:]
        assert [stamp_ns(m) for m in fused] == sent  # every pair, in order
        assert all((m.encoding, m.width, m.height) == ("bgr8", W, H) for m in fused)

        # deactivated fusion node: pairs still formed by the sync node, nothing published
        assert probe.lifecycle_transition(FUSION, Transition.TRANSITION_DEACTIVATE)
        assert probe.lifecycle_state(FUSION) == State.PRIMARY_STATE_INACTIVE
        cams.send(5)
        probe.spin_for(0.5)
        assert len(fused) == 8
        # deactivated sync node: the cameras are no longer subscribed
        assert probe.lifecycle_transition(SYNC, Transition.TRANSITION_DEACTIVATE)
        assert probe.spin_until(lambda: probe.node.count_subscribers("/ir/image_raw") == 0, 10.0)
        # cleanup frees the model; a second configure + activate works again
        assert probe.lifecycle_transition(FUSION, Transition.TRANSITION_CLEANUP)
        assert probe.lifecycle_state(FUSION) == State.PRIMARY_STATE_UNCONFIGURED
        assert probe.spin_until(lambda: probe.node.count_publishers("/fused/image") == 0, 10.0)
        for node, transitions in ((FUSION, (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE)),
                                  (SYNC, (Transition.TRANSITION_ACTIVATE,))):
            for t in transitions:
                assert probe.lifecycle_transition(node, t)
        assert probe.spin_until(cams.matched, 10.0)
        cams.warm_up(fused)
        sent = cams.send(4)
        assert probe.spin_until(lambda: len(fused) >= 4, 20.0), log.read_text()[-2000:]
        assert [stamp_ns(m) for m in fused] == sent
        assert proc.poll() is None
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]


def test_a_bad_model_fails_configure_with_the_reason(probe: Probe, tmp_path: Path) -> None:
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    log = tmp_path / "fusion.log"
    proc = node_process("fusion_node", {"model": "no_such_model", "diagnostics_period": 0.2}, log=log)
    try:
        assert probe.lifecycle_state(FUSION) == State.PRIMARY_STATE_UNCONFIGURED
        assert not probe.lifecycle_transition(FUSION, Transition.TRANSITION_CONFIGURE)
        assert probe.lifecycle_state(FUSION) == State.PRIMARY_STATE_UNCONFIGURED
        assert probe.spin_until(lambda: any("no_such_model" in s.message for s in
                                            diagnostic_statuses(diags, "ftpfusion_fusion_node: fusion")), 10.0)
        status = [s for s in diagnostic_statuses(diags, "fusion") if "no_such_model" in s.message][-1]
        assert status.level == DiagnosticStatus.ERROR and "configure failed" in status.message
        assert proc.poll() is None  # the node stays up, unconfigured, for a corrected retry
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    assert "configure failed" in text and "no_such_model" in text and "Traceback" not in text


def test_run_time_parameters_over_set_parameters(probe: Probe, tmp_path: Path) -> None:
    """A valid change applies on the next frame; invalid values and read-only parameters are refused."""
    seg = probe.collect(Image, "fused/image_seg")
    aligned = probe.collect(Image, "aligned/ir")
    cams = Cameras(probe)
    log = tmp_path / "composed.log"
    proc = node_process("composed", {"autostart": True, "model": "average", "diagnostics_period": 0.0,
                                     "seg.width": 32, "seg.height": 24, **RELIABLE_INPUTS}, log=log)
    try:
        assert probe.spin_until(cams.matched, 30.0)
        cams.warm_up(seg, aligned)
        first = cams.send(3)
        assert probe.spin_until(lambda: len(seg) >= 3 and len(aligned) >= 3, 20.0), log.read_text()[-2000:]
        assert all((m.width, m.height) == (32, 24) for m in seg)

        # valid run-time changes: segmentation size, a fixed thermal window in degrees C for TLinear
        # centi-kelvin data, the sync node's slop and queue
        results = _set(probe, FUSION, seg__width=16, seg__height=12, agc__mode="fixed", agc__ir_unit="centikelvin",
                       agc__window_unit="celsius", agc__fixed_low=20.0, agc__fixed_high=30)
        assert all(r.successful for r in results), [r.reason for r in results]
        assert all(r.successful for r in _set(probe, SYNC, slop=0.01, queue_size=4))
        second = cams.send(3)
        assert probe.spin_until(lambda: len(seg) >= 6 and len(aligned) >= 6, 20.0), log.read_text()[-2000:]
        by_stamp = {stamp_ns(m): m for m in seg}
        assert all((by_stamp[s].width, by_stamp[s].height) == (32, 24) for s in first)
        assert all((by_stamp[s].width, by_stamp[s].height) == (16, 12) for s in second)  # the next frame on
        ir8 = image_to_array({stamp_ns(m): m for m in aligned}[second[0]]).astype(np.float64)
        expected = np.clip((cams.ir_px / 100.0 - 273.15 - 20.0) / 10.0, 0, 1) * 255
        assert np.abs(ir8 - expected).max() <= 1.5  # 20..30 degC -> black..white

        # refused: out of range, a wrong type, an inconsistent window, read-only ones
        for node, values, words in (
                (FUSION, {"queue_size": 0}, ("queue_size", "out of range")),
                (FUSION, {"flicker_warn": "high"}, ("flicker_warn", "number")),
                (FUSION, {"agc__fixed_high": 10.0}, ("fixed_high > fixed_low",)),
                (FUSION, {"seg__format": "jpeg"}, ("seg.format", "rgb8")),
                (SYNC, {"slop": -1.0}, ("slop", "out of range")),
                (FUSION, {"model": "laplacian"}, ("read-only", "model")),
                (SYNC, {"pairing": "latest_ir"}, ("read-only", "pairing"))):
            (result,) = _set(probe, node, **values)
            assert not result.successful, values
            assert all(w in result.reason for w in words), (values, result.reason)
        # the refused values left the node as it was: still fusing with the accepted settings
        third = cams.send(2)
        assert probe.spin_until(lambda: len(seg) >= 8, 20.0)
        assert {(m.width, m.height) for m in seg if stamp_ns(m) in third} == {(16, 12)}
        assert proc.poll() is None
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]


def test_composed_and_split_nodes_take_the_same_parameter_names(probe: Probe) -> None:
    """`-p name:=value` means the same on ftpfusion_composed and on the split executables: each node of
    the composed process declares exactly the parameters of its stand-alone twin, with the same
    descriptors (read-only or not), and every engine setting of the schema is a fusion node parameter."""
    from ftpfusion_ros.ros.composed import build_composed
    from ftpfusion_ros.ros.fusion_node import FusionNode
    from ftpfusion_ros.ros.sync_node import SyncNode
    from ftpfusion_ros.runtime.settings import ENGINE_SETTINGS

    def described(node) -> dict[str, tuple[bool, str]]:
        names = node.list_parameters([], 10).names
        return {n: (d.read_only, d.description)
                for n, d in zip(names, node.describe_parameters(names)) if not n.startswith("qos_overrides.")}

    kwargs = dict(context=probe.context, autostart=False, parameter_overrides=[Parameter("model", value="average")])
    sync, fusion = build_composed(**kwargs)
    alone = (SyncNode(**kwargs), FusionNode(**kwargs))
    try:
        for composed_node, split_node in zip((sync, fusion), alone):
            assert described(composed_node) == described(split_node)
        fusion_params = described(fusion)
        assert {s.name for s in ENGINE_SETTINGS} <= fusion_params.keys()
        assert fusion_params["model"][0] and not fusion_params["agc.mode"][0]  # read-only / run time
        rclpy_own = {"use_sim_time", "start_type_description_service"}
        assert [n for n, (_, desc) in fusion_params.items() if not desc and n not in rclpy_own] == []
    finally:
        for node in (sync, fusion, *alone):
            node.destroy_node()


def test_destroyed_and_half_built_nodes_leave_the_graph(probe: Probe) -> None:
    """A destroyed managed node and one whose construction failed (bad parameter) take their node and
    lifecycle services off the graph at once: a later node of the same name must not share service
    names with a dead one (a client then waited forever on it)."""
    import pytest as _pytest

    from ftpfusion_ros.ros.fusion_node import FusionNode
    from ftpfusion_ros.ros.sync_node import SyncNode

    name = "ftpfusion_graph_check"

    def on_graph() -> bool:
        services = {n for n, _ in probe.node.get_service_names_and_types()}
        return name in probe.node.get_node_names() or f"/{name}/get_state" in services

    node = FusionNode(node_name=name, context=probe.context, autostart=False,
                      parameter_overrides=[Parameter("model", value="average")])
    assert probe.spin_until(on_graph, 10.0)
    node.destroy_node()
    assert probe.spin_until(lambda: not on_graph(), 10.0)
    with _pytest.raises(ValueError, match="queue_size"):
        SyncNode(node_name=name, context=probe.context, parameter_overrides=[Parameter("queue_size", value=0)])
    with _pytest.raises(ValueError, match="no_such_model"):
        FusionNode(node_name=name, context=probe.context, parameter_overrides=[Parameter("model", value="no_such_model")])
    probe.spin_for(0.5)
    assert probe.spin_until(lambda: not on_graph(), 10.0)


def test_cleanup_frees_the_model_and_the_ring(probe: Probe) -> None:
    """After deactivate + cleanup nothing holds the model, the ring or the engine thread; a new configure
    builds them again."""
    import gc
    import weakref

    from ftpfusion_ros.ros.fusion_node import FusionNode

    node = FusionNode(node_name="ftpfusion_cleanup_check", context=probe.context,
                      parameter_overrides=[Parameter("model", value="average"), Parameter("diagnostics_period", value=0.0)])
    try:
        assert node.state_label == "active" and node.engine is not None
        model, ring, worker = weakref.ref(node.engine.model), weakref.ref(node.engine.ring), node._worker
        node.trigger_deactivate()
        node.trigger_cleanup()
        gc.collect()
        assert node.state_label == "unconfigured" and node.engine is None
        assert model() is None and ring() is None and not worker.is_alive()
        node.trigger_configure()
        assert node.state_label == "inactive" and node.engine is not None and node._worker.is_alive()
    finally:
        node.destroy_node()
