"""Acceptance over real DDS: a 16-bit thermal camera at 9 Hz (mono16 counts, then radiometric centi-kelvin,
then 32FC1 degrees C) beside a JPEG-compressed visible camera at 30 Hz.

- ``pairing: latest_ir``: every visible frame is fused, in order (>= 90 % required; all are here, since the
  messages arrive in stamp order); the thermal unit and a fixed window in degrees C are switched at run
  time through the parameters, and the three encodings of one scene give the same picture;
- ``pairing: approximate``: only pairs within ``slop``;
- the same recording as a bag through ``ftpfusion fuse --bag`` (with the same settings as flags) gives the
  same pairs and the same fused pixels as the node;
- a bad frame (all-NaN temperatures) gives an ERROR diagnostic and the next good frames are fused.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

import ros_env
from ros_env import Probe, diagnostic_statuses, stamp_ns

ros_env.require_interfaces()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ftpfusion_ros.cli.main import main as cli  # noqa: E402
from ftpfusion_ros.ros.conversions import array_to_compressed, array_to_image, image_to_array  # noqa: E402
from ftpfusion_ros.ros.sync_node import SyncNode  # noqa: E402

W, H = 64, 48
T0 = 5_000 * 1_000_000_000
SLOP = 0.02
y, x = np.mgrid[0:H, 0:W]
CELSIUS = 15.0 + 25.0 * (x / (W - 1)) * 0.6 + 10.0 * (y / (H - 1))  # a 15..40 degC scene
COUNTS = (7000 + 40 * x + 10 * y).astype(np.uint16)                   # a 14-bit camera without radiometry
CENTIKELVIN = np.round((CELSIUS + 273.15) * 100).astype(np.uint16)    # Lepton TLinear
VIS = np.stack([x * 2 + y, x + y * 2, x * 3], -1).astype(np.uint8)
FIXED_CELSIUS = {"agc.mode": "fixed", "agc.window_unit": "celsius", "agc.fixed_low": 15.0, "agc.fixed_high": 40.0}


def _header(ns: int, frame: str) -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = divmod(ns, 1_000_000_000)
    return h


def _events(start: int, ms: int = 1000) -> list[tuple[int, int]]:
    """(stamp, camera) in stamp order: IR at 9 Hz, visible at 30 Hz, 1 ns after the frame period."""
    return sorted([(start + int(k * 1e9 / 9), 0) for k in range(ms * 9 // 1000)]
                  + [(start + int(k * 1e9 / 30) + 1, 1) for k in range(ms * 30 // 1000)])


class Rig:
    def __init__(self, probe: Probe, pairing: str) -> None:
        params = [Parameter("model", value="average"), Parameter("pairing", value=pairing),
                  Parameter("slop", value=SLOP), Parameter("queue_size", value=50),
                  Parameter("visible_transport", value="compressed"), Parameter("diagnostics_period", value=0.2),
                  Parameter("cpu_threads", value=torch.get_num_threads()),
                  *ros_env.reliable_inputs(50, ("/ir/image_raw", "/visible/image_raw/compressed"))]
        self.probe = probe
        self.sync, self.fusion = probe.add_composed(params)
        self.pubs = probe.cameras(50, visible_compressed=True)
        self.fused = probe.collect(Image, "fused/image")
        self.aligned = probe.collect(Image, "aligned/ir")
        self.diags = probe.collect(DiagnosticArray, "/diagnostics")
        self.sent = 0

    def publish(self, cam: int, stamp: int, ir: np.ndarray, ir_encoding: str) -> None:
        msg = (array_to_image(ir, ir_encoding, _header(stamp, "ir")) if cam == 0
               else array_to_compressed(VIS, "bgr8", "jpeg", _header(stamp, "visible")))
        self.pubs[cam].publish(msg)
        self.sent += 1
        # one message at a time: the arrival order is the stamp order
        st = self.sync.stats
        assert self.probe.spin_until(lambda: st()["ir_received"] + st()["visible_received"] == self.sent, 5)

    def play(self, start: int, ir: np.ndarray, ir_encoding: str) -> list[tuple[int, int]]:
        events = _events(start)
        for stamp, cam in events:
            self.publish(cam, stamp, ir, ir_encoding)
        return events

    def set(self, **values) -> None:
        results = self.fusion.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        assert all(r.successful for r in results), [r.reason for r in results]


def _aligned_at(rig: Rig, stamp: int) -> np.ndarray:
    return image_to_array(next(m for m in rig.aligned if stamp_ns(m) == stamp)).astype(int)


def _write_bag(path: Path, events: list[tuple[int, int]], ir: np.ndarray, ir_encoding: str) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    types = {n: store.types[n] for n in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                                         "std_msgs/msg/Header", "builtin_interfaces/msg/Time")}
    Img, Comp, Hdr, Time = types.values()

    def header(ns: int, frame: str):
        return Hdr(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame)

    with Writer(path, version=9) as writer:
        conns = (writer.add_connection("/ir/image_raw", Img.__msgtype__, typestore=store),
                 writer.add_connection("/visible/image_raw/compressed", Comp.__msgtype__, typestore=store))
        for stamp, cam in events:
            if cam == 0:
                ros = array_to_image(ir, ir_encoding)
                msg = Img(header=header(stamp, "ir"), height=ros.height, width=ros.width, encoding=ros.encoding,
                          is_bigendian=ros.is_bigendian, step=ros.step, data=np.frombuffer(bytes(ros.data), np.uint8))
            else:
                ros = array_to_compressed(VIS, "bgr8", "jpeg")
                msg = Comp(header=header(stamp, "visible"), format=ros.format,
                           data=np.frombuffer(bytes(ros.data), np.uint8))
            writer.write(conns[cam], stamp, store.serialize_cdr(msg, msg.__msgtype__))


def test_latest_ir_with_a_slow_16bit_camera_and_a_jpeg_camera(tmp_path: Path) -> None:
    probe = Probe()
    try:
        rig = Rig(probe, "latest_ir")
        # 1. raw counts, smoothed percentile gain control (the default)
        events = rig.play(T0, COUNTS, "mono16")
        vis = [s for s, c in events if c == 1]
        assert probe.spin_until(lambda: len(rig.fused) == len(vis), 30), f"{len(rig.fused)} fused of {len(vis)}"
        assert len(vis) == 30 and [stamp_ns(m) for m in rig.fused] == vis  # every visible frame, in order
        assert rig.sync.stats()["ir_reused"] == 30 - 9

        # 2. the same camera switched to radiometric output (TLinear): unit and a fixed window in degrees C
        # set at run time, applied from the next frame
        rig.set(**{"agc.ir_unit": "centikelvin", **FIXED_CELSIUS})
        events2 = rig.play(T0 + 2_000_000_000, CENTIKELVIN, "mono16")
        vis2 = [s for s, c in events2 if c == 1]
        assert probe.spin_until(lambda: len(rig.fused) == 60 and len(rig.aligned) >= 60, 30), len(rig.fused)
        assert [stamp_ns(m) for m in rig.fused[30:]] == vis2
        want = np.round(np.clip((CELSIUS - 15.0) / 25.0, 0, 1) * 255)
        assert np.abs(_aligned_at(rig, vis2[0]) - want).max() <= 1
        node_fused = [image_to_array(m) for m in rig.fused[30:]]

        # 3. a 32FC1 temperature camera (degrees C) with the same window: the same picture of the scene;
        # an all-NaN frame first is bad input (ERROR diagnostic), the good frames after it are fused
        rig.set(**{"agc.ir_unit": "celsius"})
        t3 = T0 + 4_000_000_000
        rig.publish(0, t3 - 50_000_000, np.full((H, W), np.nan, np.float32), "32FC1")
        rig.publish(1, t3 - 40_000_000, CELSIUS.astype(np.float32), "32FC1")

        def error_reported() -> bool:
            found = diagnostic_statuses(rig.diags, "ftpfusion_fusion_node: fusion")
            return bool(found) and found[-1].level == DiagnosticStatus.ERROR and "no finite values" in found[-1].message

        assert probe.spin_until(error_reported, 5)
        assert rig.fusion.input_errors == 1
        events3 = rig.play(t3, CELSIUS.astype(np.float32), "32FC1")
        vis3 = [s for s, c in events3 if c == 1]
        assert probe.spin_until(lambda: len(rig.fused) == 90, 30), len(rig.fused)
        assert [stamp_ns(m) for m in rig.fused[60:]] == vis3
        assert np.abs(_aligned_at(rig, vis3[0]) - _aligned_at(rig, vis2[0])).max() <= 1
        assert rig.fusion.internal_errors == 0
    finally:
        probe.close()

    # 4. the radiometric recording as a bag through `ftpfusion fuse --bag`, with the node's settings as
    # flags: the same pairs (one output per visible frame, in order) and the same fused pixels
    bag = tmp_path / "bag"
    _write_bag(bag, events2, CENTIKELVIN, "mono16")
    out = tmp_path / "fused"
    assert cli(["fuse", "--bag", str(bag), "--vis-topic", "/visible/image_raw/compressed", "--out", str(out),
                "--model", "average", "--pairing", "latest_ir", "--slop", str(SLOP), "--agc-ir-unit", "centikelvin",
                "--agc-mode", "fixed", "--agc-window-unit", "celsius", "--agc-fixed-low", "15",
                "--agc-fixed-high", "40"]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == len(node_fused) == 30
    for path, node_img in zip(files, node_fused):
        np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), node_img, err_msg=path.name)


def test_approximate_pairs_only_within_slop(tmp_path: Path) -> None:
    """The same cameras with the default pairing: only frames within slop are paired (a visible frame
    every 1/9 s at best), and the bag tools form exactly these pairs."""
    from ftpfusion_ros.data.rosbag_io import SyncedBag

    probe = Probe()
    got: list[tuple[int, int]] = []
    try:
        params = [Parameter("slop", value=SLOP), Parameter("queue_size", value=50),
                  Parameter("visible_transport", value="compressed"),
                  *ros_env.reliable_inputs(50, ("/ir/image_raw", "/visible/image_raw/compressed"))]
        sync = probe.add(SyncNode(on_pair=lambda p: got.append((stamp_ns(p.ir), stamp_ns(p.visible))),
                                  context=probe.context, parameter_overrides=params))
        pubs = probe.cameras(50, visible_compressed=True)
        events = _events(T0)
        for n, (stamp, cam) in enumerate(events, 1):
            msg = (array_to_image(COUNTS, "mono16", _header(stamp, "ir")) if cam == 0
                   else array_to_compressed(VIS, "bgr8", "jpeg", _header(stamp, "visible")))
            pubs[cam].publish(msg)
            assert probe.spin_until(lambda: sync.stats()["ir_received"] + sync.stats()["visible_received"] == n, 5)
    finally:
        probe.close()
    ir = [s for s, c in events if c == 0]
    assert got and all(abs(i - v) <= SLOP * 1e9 for i, v in got)
    assert len(got) == sum(any(abs(i - v) <= SLOP * 1e9 for v in (s for s, c in events if c == 1)) for i in ir)
    assert [v for _, v in got] == sorted(v for _, v in got)

    bag = tmp_path / "bag"
    _write_bag(bag, events, COUNTS, "mono16")
    offline = [(p.ir.stamp_ns, p.vis.stamp_ns)
               for p in SyncedBag(bag, "/ir/image_raw", "/visible/image_raw/compressed", slop=SLOP, queue_size=50)]
    assert offline == got
