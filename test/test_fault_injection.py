"""Fault injection: a table of bad and unusual inputs through the fusion node over real DDS.

The fusion node runs split (FramePair input, as between separate sync and fusion processes) in this
process's own rclpy context; the test publishes each FramePair over Fast DDS on loopback and watches
fused/image and /diagnostics. For every entry of the table it checks:

- the outcome: rejected as bad input (counted in ``input_errors``, never ``internal_errors``) with the
  right message in /diagnostics, or accepted and handled as specified (size change, time jump, ...);
- the node is alive (its worker thread runs, nothing internal went wrong);
- the next good pair is fused *correctly*: the published frame equals, pixel for pixel, what a fresh
  engine makes of that pair (the "average" model is frame-wise, so the right answer does not depend on
  what came before), not merely that something was published.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

import ros_env
from ros_env import Probe, diagnostic_statuses, stamp_ns

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ftpfusion_ros.msg import FramePair  # noqa: E402
from ftpfusion_ros.ros.conversions import array_to_image, image_to_array  # noqa: E402
from ftpfusion_ros.ros.fusion_node import FusionNode  # noqa: E402
from ftpfusion_ros.ros.pairs import ImagePair, pair_to_msg  # noqa: E402
from ftpfusion_ros.runtime import EngineConfig, FusionEngine  # noqa: E402

W, H = 64, 48
T0 = 2_000 * 1_000_000_000
PERIOD = 50_000_000  # ns between pairs (20 Hz stamps; the test publishes as fast as the node takes them)
DIAG = "ftpfusion_fusion_node: fusion"
QUEUE = 2


def _header(stamp: int, frame: str) -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = divmod(stamp, 1_000_000_000)
    return h


class Rig:
    """The fusion node, a FramePair publisher and the collected outputs."""

    def __init__(self) -> None:
        self.probe = Probe("ftpfusion_fault_injection")
        params = [Parameter("model", value="average"), Parameter("diagnostics_period", value=0.1),
                  Parameter("silence_timeout", value=0.5), Parameter("queue_size", value=QUEUE),
                  Parameter("cpu_threads", value=torch.get_num_threads())] + ros_env.reliable_inputs(100, ("/frame_pair",))
        self.node = self.probe.add(FusionNode(context=self.probe.context, parameter_overrides=params))
        self.pub = self.probe.node.create_publisher(FramePair, "frame_pair", QoSProfile(depth=100))
        self.fused = self.probe.collect(Image, "fused/image", depth=200)
        self.diags = self.probe.collect(DiagnosticArray, "/diagnostics", depth=200)
        self.rng = np.random.default_rng(11)
        self.stamp = T0
        assert self.probe.spin_until(lambda: self.pub.get_subscription_count() > 0, 10), "node not subscribed"

    def next_stamp(self) -> int:
        self.stamp += PERIOD
        return self.stamp

    def send(self, ir: Image, vis: Image, stamp: int | None = None) -> int:
        stamp = self.next_stamp() if stamp is None else stamp
        ir.header, vis.header = _header(stamp, "ir_camera"), _header(stamp, "visible_camera")
        self.pub.publish(pair_to_msg(ImagePair(ir=ir, visible=vis, skew_sec=0.0), FramePair))
        return stamp

    def good_arrays(self, w: int = W, h: int = H) -> tuple[np.ndarray, np.ndarray]:
        return (self.rng.integers(0, 256, (h, w), dtype=np.uint8),
                self.rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

    def send_good(self, w: int = W, h: int = H) -> tuple[int, np.ndarray]:
        """A valid pair; returns its stamp and the fused frame a fresh engine makes of it."""
        ir, vis = self.good_arrays(w, h)
        want = FusionEngine(EngineConfig(model="average")).push(ir, vis, "mono8", "bgr8").fused_bgr
        return self.send(array_to_image(ir, "mono8"), array_to_image(vis, "bgr8")), want

    def fused_at(self, stamp: int) -> Image | None:
        return next((m for m in self.fused if stamp_ns(m) == stamp), None)

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        return self.probe.spin_until(predicate, timeout)

    def latest_diag(self) -> DiagnosticStatus | None:
        found = diagnostic_statuses(self.diags, DIAG)
        return found[-1] if found else None

    def idle(self) -> bool:
        with self.node._cv:
            return not self.node._pending

    def close(self) -> None:
        self.probe.close()


@pytest.fixture(scope="module")
def rig():
    r = Rig()
    yield r
    r.close()


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


# -- the table -----------------------------------------------------------------------------------------
def _img(encoding: str, w: int, h: int, step: int, data: bytes | np.ndarray, bigendian: int = 0) -> Image:
    msg = Image(height=h, width=w, encoding=encoding, step=step, is_bigendian=bigendian)
    msg.data = bytes(data) if not isinstance(data, np.ndarray) else data.tobytes()
    return msg


def _mono8(w: int = W, h: int = H) -> Image:
    return array_to_image(np.full((h, w), 128, np.uint8), "mono8")


def _bgr8(w: int = W, h: int = H) -> Image:
    return array_to_image(np.full((h, w, 3), 90, np.uint8), "bgr8")


def _float_vis(value: float) -> Image:
    arr = np.full((H, W), 0.5, np.float32)
    arr[3, 4] = value
    return array_to_image(arr, "32FC1")


def _float_ir(fill: float, holes: bool = False) -> Image:
    arr = np.full((H, W), fill, np.float32)
    if holes:
        arr = np.linspace(290.0, 310.0, H * W, dtype=np.float32).reshape(H, W)
        arr[::4, ::4] = np.nan
    return array_to_image(arr, "32FC1")


@dataclass
class Case:
    name: str
    send: Callable[[Rig], int]   # publishes the fault; returns how many pairs it published
    expect: str                  # "rejected" | "accepted" | "warn" | "param_refused"
    message: str = ""            # substring of the diagnostic (rejected / warn) or of the refusal reason
    counter: str = ""            # for "accepted": a node counter that must go up by one


def _pair(ir: Callable[[], Image], vis: Callable[[], Image]) -> Callable[[Rig], int]:
    def send(rig: Rig) -> int:
        rig.send(ir(), vis())
        return 1
    return send


def _out_of_order(ms: int) -> Callable[[Rig], int]:
    def send(rig: Rig) -> int:
        rig.send(_mono8(), _bgr8(), stamp=rig.stamp - ms * 1_000_000)
        return 1
    return send


def _jump_back(rig: Rig) -> int:
    rig.stamp -= 5_000_000_000  # a bag starting over: the stream goes on from the older time
    rig.send(_mono8(), _bgr8())
    return 1


def _burst(rig: Rig) -> int:
    for _ in range(20):
        ir, vis = rig.good_arrays()
        rig.send(array_to_image(ir, "mono8"), array_to_image(vis, "bgr8"))
    return 20


def _silence(rig: Rig) -> int:
    rig.probe.spin_for(1.0)  # silence_timeout is 0.5 s
    return 0


def _set_param(name: str, value) -> Callable[[Rig], int]:
    def send(rig: Rig) -> int:
        rig.param_result = rig.probe.call(SetParameters, "/ftpfusion_fusion_node/set_parameters", SetParameters.Request(
            parameters=[ParameterMsg(name=name, value=Parameter(name, value=value).get_parameter_value())])).results[0]
        return 0
    return send


CASES = [
    # encodings the node cannot take
    Case("unknown visible encoding", _pair(_mono8, lambda: _img("foo", W, H, 3 * W, bytes(3 * W * H))),
         "rejected", "unsupported image encoding 'foo'"),
    Case("float64 IR", _pair(lambda: _img("64FC1", W, H, 8 * W, bytes(8 * W * H)), _bgr8),
         "rejected", "unsupported image encoding '64FC1'"),
    Case("encoding in upper case", _pair(_mono8, lambda: _img("BGR8", W, H, 3 * W, bytes(3 * W * H))),
         "rejected", "unsupported image encoding 'BGR8'"),
    # buffers that do not match their header
    Case("truncated visible data", _pair(_mono8, lambda: _img("bgr8", W, H, 3 * W, bytes(3 * W * H // 2))),
         "rejected", "data bytes"),
    Case("truncated IR data", _pair(lambda: _img("mono8", W, H, W, bytes(W * H - 1)), _bgr8),
         "rejected", "data bytes"),
    Case("mono16 IR with an odd byte count", _pair(lambda: _img("mono16", W, H, 2 * W, bytes(2 * W * H - 1)), _bgr8),
         "rejected", "data bytes"),
    Case("step smaller than a row", _pair(_mono8, lambda: _img("bgr8", W, H, W, bytes(3 * W * H))),
         "rejected", "step"),
    Case("rgb8 claimed, mono data", _pair(_mono8, lambda: _img("rgb8", W, H, W, bytes(W * H))),
         "rejected", "step"),
    Case("zero width", _pair(_mono8, lambda: _img("bgr8", 0, H, 0, b"")), "rejected", "empty image"),
    Case("huge size claimed, tiny buffer", _pair(_mono8, lambda: _img("bgr8", 100_000, 100_000, 300_000, bytes(64))),
         "rejected", "data bytes"),
    Case("bayer16 claimed, 8-bit data", _pair(_mono8, lambda: _img("bayer_rggb16", W, H, W, bytes(W * H))),
         "rejected", "step"),
    # sizes
    Case("IR of another aspect ratio", _pair(lambda: _mono8(40, 40), _bgr8), "rejected", "aspect ratio"),
    Case("IR of 1x1 pixel", _pair(lambda: _mono8(1, 1), _bgr8), "rejected", "too small"),
    Case("yuv422 of odd width", _pair(lambda: _mono8(63, H), lambda: _img("yuv422", 63, H, 126, bytes(126 * H))),
         "rejected", "even width"),
    # non-finite values
    Case("NaN pixel in a 32FC1 visible frame", _pair(_mono8, lambda: _float_vis(np.nan)), "rejected", "non-finite"),
    Case("+inf pixel in a 32FC1 visible frame", _pair(_mono8, lambda: _float_vis(np.inf)), "rejected", "non-finite"),
    Case("all-NaN 32FC1 IR frame", _pair(lambda: _float_ir(np.nan), _bgr8), "rejected", "no finite values"),
    Case("all -inf 32FC1 IR frame", _pair(lambda: _float_ir(-np.inf), _bgr8), "rejected", "no finite values"),
    # stamps
    Case("pair 100 ms out of order", _out_of_order(100), "rejected", "out of order"),
    Case("pair 900 ms out of order", _out_of_order(900), "rejected", "out of order"),
    Case("time jumps back 5 s", _jump_back, "accepted", counter="time_jumps"),
    # unusual but valid input: fused, not counted as errors
    Case("visible resolution changes", _pair(lambda: _mono8(32, 24), lambda: _bgr8(32, 24)),
         "accepted", counter="size_changes"),
    Case("all-zero mono16 IR (start-up / flat-field frame)",
         _pair(lambda: array_to_image(np.zeros((H, W), np.uint16), "mono16"), _bgr8), "accepted"),
    Case("big-endian mono16 IR", _pair(lambda: _img("mono16", W, H, 2 * W, np.full((H, W), 30000, ">u2"), 1), _bgr8),
         "accepted"),
    Case("32FC1 IR with NaN holes", _pair(lambda: _float_ir(0.0, holes=True), _bgr8), "accepted"),
    Case("yuv422 visible", _pair(_mono8, lambda: _img("yuv422", W, H, 2 * W, np.full((H, W, 2), 128, np.uint8))),
         "accepted"),
    Case("bayer_rggb8 visible", _pair(_mono8, lambda: _img("bayer_rggb8", W, H, W, np.full((H, W), 77, np.uint8))),
         "accepted"),
    # load and silence
    Case("burst of 20 pairs at once", _burst, "accepted", counter="queue_overflows"),
    Case("input goes silent", _silence, "warn", "no input pairs"),
    # parameters set at run time: read-only ones and invalid values of run-time ones refused with the
    # reason, node unaffected
    Case("queue_size set to 'ten' at run time", _set_param("queue_size", "ten"), "param_refused",
         "'queue_size' must be an integer"),
    Case("cpu_threads set to -1 at run time", _set_param("cpu_threads", -1), "param_refused", "read-only"),
    Case("silence_timeout set to -1 at run time", _set_param("silence_timeout", -1.0), "param_refused",
         "silence_timeout out of range"),
    Case("model switched at run time", _set_param("model", "max_luminance"), "param_refused", "read-only"),
]


def test_the_table_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_is_handled_and_good_input_afterwards_is_fused_correctly(rig: Rig, case: Case) -> None:
    node = rig.node
    assert rig.wait(rig.idle, 10.0)
    before = dict(node.stats())
    n_diags, n_fused = len(rig.diags), len(rig.fused)

    published = case.send(rig)

    if case.expect == "rejected":
        assert rig.wait(lambda: node.input_errors == before["input_errors"] + published), \
            f"not counted as bad input: {node.stats()}"
        assert rig.wait(lambda: (s := rig.latest_diag()) is not None and len(rig.diags) > n_diags
                        and s.level == DiagnosticStatus.ERROR and case.message in s.message, 5.0), \
            f"diagnostic does not say {case.message!r}: {rig.latest_diag()}"
        assert node.pairs_fused == before["pairs_fused"], "a rejected pair was published"
    elif case.expect == "accepted":
        assert rig.wait(lambda: node.pairs_fused + node.queue_overflows
                        >= before["pairs_fused"] + before["queue_overflows"] + published), node.stats()
        assert node.input_errors == before["input_errors"], node.last_error
        if case.counter:
            assert rig.wait(lambda: node.stats()[case.counter] > before[case.counter], 5.0), node.stats()
            assert rig.wait(lambda: int(_values(rig.latest_diag())[case.counter]) > before[case.counter], 5.0), \
                "the diagnostic does not show it"
    elif case.expect == "warn":
        assert rig.wait(lambda: (s := rig.latest_diag()) is not None and s.level == DiagnosticStatus.WARN
                        and case.message in s.message, 5.0), rig.latest_diag()
    elif case.expect == "param_refused":
        result = rig.param_result
        assert not result.successful and case.message in result.reason, result
        assert rig.wait(lambda: len(rig.diags) > n_diags, 5.0)
    else:
        raise AssertionError(case.expect)

    # alive, nothing internal, and the next good pair fused exactly right
    assert node._worker.is_alive()
    assert node.internal_errors == 0, node.last_error
    assert rig.wait(rig.idle, 10.0)
    stamp, want = rig.send_good()
    assert rig.wait(lambda: rig.fused_at(stamp) is not None), f"good pair after {case.name!r} not fused"
    got = image_to_array(rig.fused_at(stamp))
    np.testing.assert_array_equal(got, want, err_msg=f"good pair after {case.name!r} fused wrongly")
    stamps = [stamp_ns(m) for m in rig.fused[n_fused:]]
    assert stamps == sorted(set(stamps)), "fused frames out of order or repeated"


def test_fused_output_of_accepted_unusual_input_is_right(rig: Rig) -> None:
    """The accepted oddities are not merely published: each equals the engine's output for the same
    frames given in a standard encoding."""
    import cv2

    yuv = rig.rng.integers(0, 256, (H, W, 2), dtype=np.uint8)
    ir = rig.rng.integers(0, 256, (H, W), dtype=np.uint8)
    stamp = rig.send(array_to_image(ir, "mono8"), _img("yuv422", W, H, 2 * W, yuv))
    want = FusionEngine(EngineConfig(model="average")).push(
        ir, cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_UYVY), "mono8", "bgr8").fused_bgr
    assert rig.wait(lambda: rig.fused_at(stamp) is not None)
    np.testing.assert_array_equal(image_to_array(rig.fused_at(stamp)), want)

    counts = rig.rng.integers(20000, 30000, (H, W)).astype(np.uint16)
    vis = rig.rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    big_endian = _img("mono16", W, H, 2 * W, counts.astype(">u2"), 1)
    stamp = rig.send(big_endian, array_to_image(vis, "bgr8"))
    assert rig.wait(lambda: rig.fused_at(stamp) is not None)
    ref = FusionEngine(EngineConfig(model="average"))
    assert rig.wait(rig.idle)
    # the node's AGC has history; a fresh one maps the frame from its own percentiles, as the node's
    # does when the frame lies outside its current window; compare the IR's structure instead
    got = image_to_array(rig.fused_at(stamp)).astype(np.float32)
    want = ref.push(counts, vis, "mono16", "bgr8").fused_bgr.astype(np.float32)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.95


def test_a_frame_finishing_after_shutdown_is_not_an_error() -> None:
    """SIGINT/SIGTERM shut the rclpy context down while the worker may still be fusing a frame: its
    publish then fails, which is the end of the process, not an internal error with a traceback."""
    probe = Probe("ftpfusion_test_shutdown")
    node = FusionNode(context=probe.context, parameter_overrides=[
        Parameter("model", value="average"), Parameter("diagnostics_period", value=0.0),
        Parameter("cpu_threads", value=torch.get_num_threads())])
    ir, vis = np.zeros((H, W), np.uint8), np.zeros((H, W, 3), np.uint8)
    pair = ImagePair(ir=array_to_image(ir, "mono8", _header(T0, "ir")),
                     visible=array_to_image(vis, "bgr8", _header(T0, "vis")), skew_sec=0.0)
    import rclpy

    rclpy.shutdown(context=probe.context)  # what the signal handler does
    node._fuse(pair)                       # the frame the worker was busy with
    assert node.internal_errors == 0 and node.last_error == ""
    node.destroy_node()
