"""`--pairing latest_ir` offline: a bag of a 9 Hz thermal camera beside a 30 Hz visible camera gives one
fused frame per visible frame, with exactly the pairs the sync node's policy forms in receive order."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.data.rosbag_io import SyncedBag
from ftpfusion_ros.runtime.sync_policy import LatestIrPolicy

STORE = get_typestore(Stores.LATEST)
Image, Header, Time = (STORE.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                "builtin_interfaces/msg/Time"))
T0 = 10**9
H, W = 24, 32


def _image(arr: np.ndarray, enc: str, ns: int):
    step = arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    return Image(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cam"),
                 height=arr.shape[0], width=arr.shape[1], encoding=enc, is_bigendian=0, step=step,
                 data=np.frombuffer(arr.tobytes(), np.uint8))


def _write_bag(path: Path) -> list[tuple[int, int]]:
    """One second of 9 Hz IR (received 15 ms after its stamp) and 30 Hz visible (received 2 ms after);
    returns the (camera, stamp) events in receive order (camera 0 = IR)."""
    events = [(T0 + int(k * 1e9 / 9), 15_000_000, 0) for k in range(9)]
    events += [(T0 + int(k * 1e9 / 30) + 1, 2_000_000, 1) for k in range(30)]
    events.sort(key=lambda e: e[0] + e[1])
    rng = np.random.default_rng(0)
    with Writer(path, version=9) as writer:
        conns = [writer.add_connection(t, Image.__msgtype__, typestore=STORE)
                 for t in ("/ir/image_raw", "/visible/image_raw")]
        for stamp, delay, cam in events:
            arr = (rng.integers(0, 65536, (H, W), dtype=np.uint16) if cam == 0
                   else rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
            msg = _image(arr, ("mono16", "bgr8")[cam], stamp)
            writer.write(conns[cam], stamp + delay, STORE.serialize_cdr(msg, Image.__msgtype__))
    return [(cam, stamp) for stamp, _, cam in events]


def test_latest_ir_pairs_of_a_bag_are_the_sync_nodes(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    events = _write_bag(bag)
    policy = LatestIrPolicy(queue_size=10, max_ir_age=0.2, future_tolerance=0.05)  # the CLI's defaults
    expected = [out for cam, stamp in events if (out := policy.add(cam, stamp, stamp)) is not None]
    synced = SyncedBag(bag, "/ir/image_raw", "/visible/image_raw", slop=0.05, pairing="latest_ir")
    got = [(p.ir.stamp_ns, p.vis.stamp_ns) for p in synced]
    assert got == expected
    # with the IR arriving 15 ms late, a few visible frames come before the IR frame of their time: they are
    # paired with the IR frame before; only the very first, received before any IR frame, is not fused
    assert [v for _, v in got] == [s for c, s in events if c == 1][1:]
    assert synced.stats.visible_no_ir == 1 and synced.stats.ir_reused == 29 - 9

    approximate = list(SyncedBag(bag, "/ir/image_raw", "/visible/image_raw", slop=0.02))
    assert len(approximate) == 9  # the slow camera's rate

    out = tmp_path / "fused"
    assert main(["fuse", "--bag", str(bag), "--out", str(out), "--model", "average", "--pairing", "latest_ir"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(1, 30)]


def test_too_old_ir_leaves_visible_frames_unfused(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_bag(bag)
    # 9 Hz IR is up to 111 ms old: with max 50 ms only the visible frames shortly after an IR frame pair
    synced = SyncedBag(bag, "/ir/image_raw", "/visible/image_raw", slop=0.0, pairing="latest_ir", max_ir_age=0.05)
    got = [(p.ir.stamp_ns, p.vis.stamp_ns) for p in synced]
    assert 0 < len(got) < 30
    assert all(0 <= v - i <= 50_000_000 for i, v in got)
    assert synced.stats.visible_ir_too_old == 30 - len(got) - synced.stats.visible_no_ir
