"""`ftpfusion extract` and `ftpfusion bag` on small bags written here with rosbags (rosbag2 mcap and
sqlite3, ROS 1): approximate-time pairing, lossless 16-bit thermal, timestamps, bag copying, fused topics,
the side-by-side video and the error messages."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.data.sequences import find_sequences
from ftpfusion_ros.data.rosbag_io import SyncedBag, image_to_array, vis_to_bgr
from ftpfusion_ros.runtime import EngineConfig, FusionEngine

TS2 = get_typestore(Stores.LATEST)
TS1 = get_typestore(Stores.ROS1_NOETIC)
IR_TOPIC, VIS_TOPIC, OTHER_TOPIC = "/ir/image_raw", "/visible/image_raw", "/chatter"
H, W = 24, 32
N_PAIRS = 5
T0 = 1_700_000_000 * 10**9
PERIOD = 100_000_000          # 10 Hz
VIS_OFFSET = 7_000_000        # visible stamps 7 ms after IR: skew_ns = -7 ms
STRAY_IR = T0 + 2 * PERIOD + PERIOD // 2   # an IR frame 43 ms from any visible frame: never paired
SLOP = "0.02"


def ir_image(i: int) -> np.ndarray:
    """16-bit thermal frame using the whole range (a lossy or 8-bit path would change it)."""
    return np.random.default_rng(100 + i).integers(0, 65536, size=(H, W), dtype=np.uint16)


def vis_image(i: int) -> np.ndarray:
    return np.random.default_rng(200 + i).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _image_msg(ts, arr, encoding, stamp_ns, frame_id):
    Image, Header, Time = (ts.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                 "builtin_interfaces/msg/Time"))
    sec, nsec = divmod(stamp_ns, 10**9)
    hdr = (Header(seq=0, stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id) if ts is TS1
           else Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id))
    channels = arr.shape[2] if arr.ndim == 3 else 1
    return Image(header=hdr, height=arr.shape[0], width=arr.shape[1], encoding=encoding, is_bigendian=0,
                 step=arr.shape[1] * channels * arr.itemsize, data=np.ascontiguousarray(arr).reshape(-1).view(np.uint8))


def _compressed_msg(ts, arr, fmt, ext, stamp_ns, frame_id):
    CompressedImage, Header, Time = (ts.types[n] for n in ("sensor_msgs/msg/CompressedImage",
                                                           "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    ok, buf = cv2.imencode(ext, arr)
    assert ok
    sec, nsec = divmod(stamp_ns, 10**9)
    return CompressedImage(header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id), format=fmt,
                           data=buf.reshape(-1))


def bag_messages(ts, compressed=False, zero_vis_stamps=False):
    """(topic, msgtype, receive time, message) in receive order: N_PAIRS IR/visible pairs, one stray IR
    frame, and a non-image topic."""
    String = ts.types["std_msgs/msg/String"]
    out = []
    for i in range(N_PAIRS):
        t_ir, t_vis = T0 + i * PERIOD, T0 + i * PERIOD + VIS_OFFSET
        if compressed:
            out.append((IR_TOPIC, "sensor_msgs/msg/CompressedImage", t_ir + 2_000_000,
                        _compressed_msg(ts, ir_image(i), "mono16; png compressed", ".png", t_ir, "ir")))
            out.append((VIS_TOPIC, "sensor_msgs/msg/CompressedImage", t_vis + 1_000_000,
                        _compressed_msg(ts, vis_image(i), "bgr8; png compressed bgr8", ".png", t_vis, "cam")))
        else:
            out.append((IR_TOPIC, "sensor_msgs/msg/Image", t_ir + 2_000_000,
                        _image_msg(ts, ir_image(i), "mono16", t_ir, "ir")))
            out.append((VIS_TOPIC, "sensor_msgs/msg/Image", t_vis + 1_000_000,
                        _image_msg(ts, vis_image(i), "bgr8", 0 if zero_vis_stamps else t_vis, "cam")))
        out.append((OTHER_TOPIC, "std_msgs/msg/String", t_ir + 3_000_000, String(data=f"hello {i}")))
    out.append((IR_TOPIC, out[0][1], STRAY_IR + 2_000_000,
                _image_msg(ts, ir_image(99), "mono16", STRAY_IR, "ir") if not compressed else
                _compressed_msg(ts, ir_image(99), "mono16; png compressed", ".png", STRAY_IR, "ir")))
    return sorted(out, key=lambda m: m[2])


def write_bag(path: Path, kind: str, **kwargs) -> Path:
    """kind: mcap | sqlite3 (rosbag2) | ros1."""
    if kind == "ros1":
        path = path.with_suffix(".bag")
        with Writer1(path) as writer:
            conns = {}
            for topic, msgtype, t, msg in bag_messages(TS1, **kwargs):
                if topic not in conns:
                    conns[topic] = writer.add_connection(topic, msgtype, typestore=TS1)
                writer.write(conns[topic], t, TS1.serialize_ros1(msg, msgtype))
        return path
    plugin = StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3
    with Writer2(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for topic, msgtype, t, msg in bag_messages(TS2, **kwargs):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS2)
            writer.write(conns[topic], t, TS2.serialize_cdr(msg, msgtype))
    return path


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    """{topic: [(receive time, message)]} of a bag."""
    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def extract(bag: Path, out: Path, *extra: str) -> int:
    return main(["extract", str(bag), "--ir-topic", IR_TOPIC, "--vis-topic", VIS_TOPIC, "--out", str(out),
                 "--slop", SLOP, *extra])


# --- extract ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mcap", "sqlite3", "ros1"])
def test_extract_pairs_frames_losslessly(tmp_path, kind):
    bag = write_bag(tmp_path / "rig_run", kind)
    assert extract(bag, tmp_path / "ds") == 0
    seq = tmp_path / "ds" / "rig_run"  # default sequence name: the bag's name without suffix
    ir_files = sorted((seq / "ir").glob("*.png"))
    vis_files = sorted((seq / "vis").glob("*.png"))
    assert [p.name for p in ir_files] == [f"{i:06d}.png" for i in range(1, N_PAIRS + 1)]
    assert [p.name for p in vis_files] == [p.name for p in ir_files]  # the stray IR frame was not paired
    for i, (ir_path, vis_path) in enumerate(zip(ir_files, vis_files)):
        ir = cv2.imread(str(ir_path), cv2.IMREAD_UNCHANGED)
        assert ir.dtype == np.uint16 and ir.shape == (H, W)
        np.testing.assert_array_equal(ir, ir_image(i))  # 16-bit, bit-exact
        np.testing.assert_array_equal(cv2.imread(str(vis_path), cv2.IMREAD_UNCHANGED), vis_image(i))
    with (seq / "timestamps.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["frame", "ir_stamp_ns", "vis_stamp_ns", "skew_ns"]
    assert len(rows) == N_PAIRS
    for i, row in enumerate(rows):
        assert row["frame"] == f"{i + 1:06d}"
        assert int(row["ir_stamp_ns"]) == T0 + i * PERIOD
        assert int(row["vis_stamp_ns"]) == T0 + i * PERIOD + VIS_OFFSET
        assert int(row["skew_ns"]) == -VIS_OFFSET
    if kind == "mcap":  # the dataset readers take the extracted sequence as it is, 16-bit included
        (pair,) = find_sequences(tmp_path / "ds")
        assert pair.name == "rig_run" and len(pair) == N_PAIRS
        name, ir, vis = next(pair.frames())
        np.testing.assert_array_equal(ir, ir_image(0))
        np.testing.assert_array_equal(vis, vis_image(0))


def test_extract_compressed_topics_keep_16_bit(tmp_path):
    bag = write_bag(tmp_path / "compressed", "mcap", compressed=True)
    assert extract(bag, tmp_path / "ds", "--sequence", "seq_a") == 0
    seq = tmp_path / "ds" / "seq_a"
    assert len(list((seq / "ir").glob("*.png"))) == N_PAIRS
    for i in range(N_PAIRS):
        name = f"{i + 1:06d}.png"
        np.testing.assert_array_equal(cv2.imread(str(seq / "ir" / name), cv2.IMREAD_UNCHANGED), ir_image(i))
        np.testing.assert_array_equal(cv2.imread(str(seq / "vis" / name)), vis_image(i))


def test_zero_header_stamp_falls_back_to_receive_time(tmp_path):
    bag = write_bag(tmp_path / "nostamp", "mcap", zero_vis_stamps=True)
    assert extract(bag, tmp_path / "ds") == 0
    with (tmp_path / "ds" / "nostamp" / "timestamps.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_PAIRS
    # visible receive time = stamp + 1 ms
    assert [int(r["vis_stamp_ns"]) for r in rows] == [T0 + i * PERIOD + VIS_OFFSET + 1_000_000
                                                      for i in range(N_PAIRS)]


def test_extract_refuses_to_overwrite_without_flag(tmp_path, capsys):
    bag = write_bag(tmp_path / "rig", "mcap")
    assert extract(bag, tmp_path / "ds") == 0
    assert extract(bag, tmp_path / "ds") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert extract(bag, tmp_path / "ds", "--overwrite") == 0
    assert len(list((tmp_path / "ds" / "rig" / "ir").glob("*.png"))) == N_PAIRS


# --- decoding --------------------------------------------------------------------------------------------
def test_image_decoding_honours_step_and_endianness():
    Image, Header = TS2.types["sensor_msgs/msg/Image"], TS2.types["std_msgs/msg/Header"]
    hdr = Header(stamp=TS2.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="")
    ir = ir_image(0)
    step = W * 2 + 6  # padded rows
    padded = np.zeros((H, step), np.uint8)
    padded[:, :W * 2] = ir.astype(">u2").view(np.uint8).reshape(H, W * 2)
    msg = Image(header=hdr, height=H, width=W, encoding="mono16", is_bigendian=1, step=step,
                data=padded.reshape(-1))
    arr, enc = image_to_array(msg)
    assert enc == "mono16" and arr.dtype == np.uint16 and arr.dtype.isnative
    np.testing.assert_array_equal(arr, ir)

    rgb = vis_image(0)[:, :, ::-1]
    msg = Image(header=hdr, height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
                data=np.ascontiguousarray(rgb).reshape(-1))
    arr, enc = image_to_array(msg)
    np.testing.assert_array_equal(vis_to_bgr(arr, enc), vis_image(0))

    short = Image(header=hdr, height=H, width=W, encoding="mono16", is_bigendian=0, step=W * 2,
                  data=np.zeros(W * 2 * H - 1, np.uint8))
    with pytest.raises(ValueError, match="malformed"):
        image_to_array(short)


# --- bag -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,storage", [("mcap", "mcap"), ("ros1", "sqlite3")])
def test_bag_adds_fused_topics_and_keeps_everything(tmp_path, kind, storage):
    src = write_bag(tmp_path / "input", kind)
    out, mp4 = tmp_path / "fused_bag", tmp_path / "video" / "side.mp4"
    rc = main(["bag", str(src), "--out", str(out), "--storage", storage, "--mp4", str(mp4), "--model", "average",
               "--device", "cpu", "--ir-topic", IR_TOPIC, "--vis-topic", VIS_TOPIC, "--slop", SLOP])
    assert rc == 0
    before, after = read_bag(src), read_bag(out)
    assert set(after) == set(before) | {"/fused/image", "/aligned/ir", "/aligned/visible"}
    for topic, msgs in before.items():  # every original message, with its receive time
        assert [t for t, _ in after[topic]] == [t for t, _ in msgs]
    assert [m.data for _, m in after[OTHER_TOPIC]] == [f"hello {i}" for i in range(N_PAIRS)]
    np.testing.assert_array_equal(image_to_array(after[IR_TOPIC][0][1])[0], ir_image(0))

    vis_msgs = before[VIS_TOPIC]
    engine = FusionEngine(EngineConfig(model="average", device="cpu"))
    expected = [engine.push(ir_image(i), vis_image(i), "mono16", "bgr8") for i in range(N_PAIRS)]
    for topic, encoding in (("/fused/image", "bgr8"), ("/aligned/ir", "mono8"), ("/aligned/visible", "bgr8")):
        msgs = after[topic]
        assert len(msgs) == N_PAIRS
        for i, (t, m) in enumerate(msgs):
            vis_t, vis_m = vis_msgs[i]
            assert t == vis_t  # receive time of the visible frame
            assert (m.header.stamp.sec, m.header.stamp.nanosec) == (vis_m.header.stamp.sec, vis_m.header.stamp.nanosec)
            assert m.header.frame_id == "cam"
            arr, enc = image_to_array(m)
            assert enc == encoding and arr.shape[:2] == (H, W)
    for (_, m), ref in zip(after["/fused/image"], expected):  # the same engine, the same frames
        np.testing.assert_array_equal(image_to_array(m)[0], ref.fused_bgr)

    cap = cv2.VideoCapture(str(mp4))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == N_PAIRS
    assert frames[0].shape == (H, 3 * W, 3)


def test_bag_prefix_and_sqlite_input(tmp_path):
    src = write_bag(tmp_path / "input", "sqlite3")
    out = tmp_path / "out"
    assert main(["bag", str(src), "--out", str(out), "--model", "average", "--device", "cpu",
                 "--prefix", "/rig1/", "--slop", SLOP, "--no-aligned",  # default topic names used here
                 "--window", "3", "--lookahead", "2"]) == 0  # look-ahead: the last results come from flush()
    after = read_bag(out)
    assert len(after["/rig1/fused/image"]) == N_PAIRS
    assert "/fused/image" not in after and "/rig1/aligned/ir" not in after
    stamps = [[(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in after[t]] for t in (VIS_TOPIC, "/rig1/fused/image")]
    assert stamps[0] == stamps[1]
    synced = SyncedBag(out, IR_TOPIC, "rig1/fused/image", slop=0.02)  # topics with or without leading slash
    frames = list(synced.engine_frames())
    assert [f[0] for f in frames] == [f"{i:06d}" for i in range(1, N_PAIRS + 1)]
    assert frames[0][3:] == ("mono16", "bgr8") and frames[0][1].dtype == np.uint16


# --- errors ----------------------------------------------------------------------------------------------
def test_clear_errors(tmp_path, capsys):
    bag = write_bag(tmp_path / "rig", "mcap")

    def err(argv):
        assert main(argv) == 2
        return capsys.readouterr().err

    assert "bag not found" in err(["extract", str(tmp_path / "nope.bag"), "--out", str(tmp_path / "ds")])
    msg = err(["extract", str(bag), "--ir-topic", "/thermal/image", "--out", str(tmp_path / "ds")])
    assert "'/thermal/image' not found" in msg and IR_TOPIC in msg and VIS_TOPIC in msg
    assert "not an image" in err(["extract", str(bag), "--ir-topic", OTHER_TOPIC, "--out", str(tmp_path / "ds")])
    msg = err(["extract", str(bag), "--slop", "0.001", "--out", str(tmp_path / "ds")])
    assert "no IR/visible pairs within slop" in msg and "6 IR messages" in msg
    assert not (tmp_path / "ds" / "rig").exists()  # nothing half-written left behind
    msg = err(["bag", str(bag), "--out", str(tmp_path / "o"), "--model", "average", "--slop", "0.001"])
    assert "no IR/visible pairs" in msg and not (tmp_path / "o").exists()
    (tmp_path / "exists").mkdir()
    assert "exists already" in err(["bag", str(bag), "--out", str(tmp_path / "exists"), "--model", "average"])


def test_unsupported_encoding_is_reported(tmp_path, capsys):
    path = tmp_path / "weird"
    with Writer2(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        ir_c = writer.add_connection(IR_TOPIC, "sensor_msgs/msg/Image", typestore=TS2)
        vis_c = writer.add_connection(VIS_TOPIC, "sensor_msgs/msg/Image", typestore=TS2)
        writer.write(ir_c, T0, TS2.serialize_cdr(_image_msg(TS2, ir_image(0), "mono16", T0, "ir"),
                                                 "sensor_msgs/msg/Image"))
        vis = _image_msg(TS2, vis_image(0), "bgr8", T0, "cam")
        vis.encoding = "hsv_fancy"
        writer.write(vis_c, T0 + 1, TS2.serialize_cdr(vis, "sensor_msgs/msg/Image"))
    assert main(["extract", str(path), "--out", str(tmp_path / "ds")]) == 2
    assert "unsupported image encoding 'hsv_fancy'" in capsys.readouterr().err
