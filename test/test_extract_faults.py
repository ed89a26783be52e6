"""`ftpfusion extract` on damaged and changing bags (issue 11, defect 7).

One malformed message costs its pair, named in the log and counted in the summary, not the whole
extraction; a camera that changes resolution mid-bag gives one sequence per size, each of which the
dataset readers (and so `fuse` and `train`) accept.
"""
from __future__ import annotations

import logging

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer as Writer2

from ftpfusion_ros.data.sequences import find_sequences
from test_rosbag_tools import IR_TOPIC, PERIOD, T0, TS2, VIS_TOPIC, _image_msg, extract

IMAGE = "sensor_msgs/msg/Image"


def _bag(path, frames):
    """frames: per pair (ir array, vis array, how to damage the visible message: None | "short" | "cdr")."""
    with Writer2(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        ir_c = writer.add_connection(IR_TOPIC, IMAGE, typestore=TS2)
        vis_c = writer.add_connection(VIS_TOPIC, IMAGE, typestore=TS2)
        for i, (ir, vis, damage) in enumerate(frames):
            t = T0 + i * PERIOD
            writer.write(ir_c, t, TS2.serialize_cdr(_image_msg(TS2, ir, "mono16", t, "ir"), IMAGE))
            msg = _image_msg(TS2, vis, "bgr8", t, "cam")
            if damage == "short":
                msg.data = msg.data[: msg.data.size // 2]  # height x step larger than the data
            raw = TS2.serialize_cdr(msg, IMAGE)
            if damage == "cdr":
                raw = raw[:40]  # cut inside the message: cannot be deserialised
            writer.write(vis_c, t + 1_000_000, raw)
    return path


def _frames(n, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 65536, (h, w), dtype=np.uint16), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for _ in range(n)]


def test_a_malformed_message_costs_its_pair_and_is_named(tmp_path, capsys, caplog):
    frames = [(ir, vis, {2: "short", 4: "cdr"}.get(i)) for i, (ir, vis) in enumerate(_frames(6))]
    bag = _bag(tmp_path / "damaged", frames)
    with caplog.at_level(logging.WARNING):
        assert extract(bag, tmp_path / "ds") == 0
    out = capsys.readouterr().out
    assert "wrote 4 pairs" in out and "skipped 2 malformed message(s)" in out
    named = " ".join(r.getMessage() for r in caplog.records)
    assert f"{VIS_TOPIC} message received at {(T0 + 2 * PERIOD + 1_000_000) / 1e9:.6f} s" in named
    assert "data bytes" in named or "needs step" in named
    assert "cannot be deserialised" in named
    (seq,) = find_sequences(tmp_path / "ds")
    got = [vis for _, _, vis in seq.frames()]
    want = [vis for i, (_, vis, damage) in enumerate(frames) if damage is None]
    assert len(got) == 4
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_a_size_change_gives_one_sequence_per_size(tmp_path, capsys):
    frames = [(ir, vis, None) for ir, vis in _frames(3)] + [(ir, vis, None) for ir, vis in _frames(2, 12, 16, 1)]
    bag = _bag(tmp_path / "rig", frames)
    assert extract(bag, tmp_path / "ds") == 0
    assert "one sequence per size" in capsys.readouterr().out
    seqs = {s.name: s for s in find_sequences(tmp_path / "ds")}
    assert sorted(seqs) == ["rig", "rig_02"]
    assert len(seqs["rig"]) == 3 and len(seqs["rig_02"]) == 2
    for name, shape in (("rig", (24, 32)), ("rig_02", (12, 16))):
        for _, ir, vis in seqs[name].frames():
            assert ir.shape == shape and vis.shape[:2] == shape
    _, ir, _ = next(seqs["rig_02"].frames())
    np.testing.assert_array_equal(ir, frames[3][0])


def test_bag_fuses_across_a_size_change(tmp_path, capsys):
    """`ftpfusion bag` takes a new resolution as a new stream (like the node): every pair fused at its
    own size, and the side-by-side video keeps every frame (letterboxed to the first size)."""
    import cv2

    from ftpfusion_ros.cli.main import main
    from test_rosbag_tools import read_bag

    frames = [(ir, vis, None) for ir, vis in _frames(3)] + [(ir, vis, None) for ir, vis in _frames(2, 12, 16, 1)]
    bag = _bag(tmp_path / "rig", frames)
    out, mp4 = tmp_path / "out", tmp_path / "side.mp4"
    assert main(["bag", str(bag), "--out", str(out), "--model", "average", "--mp4", str(mp4),
                 "--slop", "0.02"]) == 0, capsys.readouterr().err
    fused = read_bag(out)["/fused/image"]
    assert [(m.width, m.height) for _, m in fused] == [(32, 24)] * 3 + [(16, 12)] * 2
    video = cv2.VideoCapture(str(mp4))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    video.release()
