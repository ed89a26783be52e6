"""Diagnostics with expected-rate bounds and stamp-age checks (diagnostic_updater's FrequencyStatus and
TimeStampStatus semantics, hand-written): the checks themselves, and the nodes reporting them over DDS,
with bounds changed at run time."""
from __future__ import annotations

import numpy as np
import torch

import ros_env
from ros_env import Probe, diagnostic_statuses

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ftpfusion_ros.ros.conversions import array_to_image  # noqa: E402
from ftpfusion_ros.ros.diagnostics import ERROR, OK, WARN, FrequencyCheck, StampAgeCheck  # noqa: E402

W, H = 32, 24


def test_frequency_check_bounds_with_tolerance() -> None:
    check = FrequencyCheck("fused output", min_hz=10.0, max_hz=30.0, tolerance=0.1)
    assert check.status(0.0, 0)[0] == ERROR  # no events at all
    assert check.status(9.5, 20) == (OK, "")  # within 10 % of the minimum
    level, message = check.status(8.0, 20)
    assert level == WARN and "too low" in message and "8.0 Hz < 10 Hz" in message
    level, message = check.status(40.0, 20)
    assert level == WARN and "too high" in message
    assert FrequencyCheck("x").status(0.0, 0) == (OK, "")  # no bounds: nothing to say


def test_stamp_age_check_counts_per_period() -> None:
    check = StampAgeCheck("stamps", min_age=-1.0, max_age=2.0)
    for age in (0.1, 0.2, 3.0, -1.5):
        check.add(age)
    values: dict = {}
    level, message = check.report(values, "input")
    assert level == WARN and "1 stamp(s) older than 2 s" in message
    assert values["input_stamps_too_old"] == 1 and values["input_stamps_too_new"] == 1
    assert values["input_age_max_s"] == 3.0 and values["input_age_min_s"] == -1.5
    assert check.report({}, "input") == (OK, "")  # a new period
    off = StampAgeCheck("stamps", max_age=0.0)
    off.add(1e6)
    assert off.report({}, "input")[0] == OK


def test_nodes_report_rate_bounds_and_old_stamps() -> None:
    probe = Probe()
    try:
        params = [Parameter("model", value="average"), Parameter("diagnostics_period", value=0.2),
                  Parameter("cpu_threads", value=torch.get_num_threads()),
                  Parameter("silence_timeout", value=60.0),
                  Parameter("expected_rate.min_hz", value=500.0),          # fused output: unreachable
                  Parameter("expected_rate.visible_min_hz", value=500.0),  # visible camera: the same
                  Parameter("stamp_age.max", value=0.0),                   # stamp-age check off for now
                  *ros_env.reliable_inputs(20)]
        sync, fusion = probe.add_composed(params)
        pubs = probe.cameras(20)
        diags = probe.collect(DiagnosticArray, "/diagnostics")
        rng = np.random.default_rng(0)
        ir, vis = rng.integers(0, 255, (H, W), np.uint8), rng.integers(0, 255, (H, W, 3), np.uint8)

        def send(n: int, stamp_of) -> None:
            for k in range(n):
                ns = stamp_of(k)
                header = Header(frame_id="cam")
                header.stamp.sec, header.stamp.nanosec = divmod(ns, 1_000_000_000)
                pubs[0].publish(array_to_image(ir, "mono8", header))
                pubs[1].publish(array_to_image(vis, "bgr8", header))
                probe.spin_for(0.05)

        def latest(suffix: str) -> DiagnosticStatus | None:
            found = diagnostic_statuses(diags, suffix)
            return found[-1] if found else None

        def says(suffix: str, level: int, text: str) -> bool:
            s = latest(suffix)
            return s is not None and s.level == level and text in s.message

        now = lambda: probe.node.get_clock().now().nanoseconds  # noqa: E731
        send(6, lambda k: now())
        assert probe.spin_until(lambda: says("fusion", WARN, "frequency too low")
                                and says("synchronizer", WARN, "visible camera: frequency too low"), 5)
        values = {kv.key: kv.value for kv in latest("fusion").values}
        assert values["expected_rate_min_hz"] == "500.000"

        # bounds lifted and the stamp-age check switched on at run time: stamps an hour old are reported
        for node, names in ((fusion, ("expected_rate.min_hz",)), (sync, ("expected_rate.visible_min_hz",))):
            results = node.set_parameters([Parameter(n, value=0.0) for n in names]
                                          + [Parameter("stamp_age.max", value=5.0)])
            assert all(r.successful for r in results), [r.reason for r in results]
        n_diags = len(diags)
        send(6, lambda k: now() - 3600 * 10**9)
        assert probe.spin_until(lambda: len(diags) > n_diags + 2 and says("fusion", WARN, "older than 5 s")
                                and says("synchronizer", WARN, "older than 5 s"), 5)
        values = {kv.key: kv.value for kv in latest("synchronizer").values}
        assert float(values["visible_age_max_s"]) > 3500

        # current stamps again: OK
        send(6, lambda k: now())
        assert probe.spin_until(lambda: says("fusion", OK, "fusing at") and says("synchronizer", OK, "pairing at"), 5)
    finally:
        probe.close()


def test_new_bounds_keep_the_period_recorded_so_far() -> None:
    """A run-time change of the bounds (set_bounds) applies from the next stamp and keeps what the current
    period recorded, in both nodes alike."""
    check = StampAgeCheck("stamps", -1.0, 5.0)
    check.add(7.0)                       # too old under the first bounds
    check.set_bounds(-1.0, 10.0)
    check.add(8.0)                       # fine under the new ones
    values: dict = {}
    level, message = check.report(values, "ir")
    assert (level, values["ir_stamps_too_old"], values["ir_age_max_s"]) == (WARN, 1, 8.0)
    rate = FrequencyCheck("camera", 10.0, 0.0)
    rate.set_bounds(0.0, 0.0)
    assert rate.status(0.0, 0) == (OK, "")
