"""`ftpfusion fuse` end to end: frame folders, MP4 pairs, a rosbag; one PNG per input frame, same names."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene


@pytest.fixture
def sequence(tmp_path):
    scene = SyntheticScene(SceneConfig(width=64, height=48, seed=3))
    scene.write_folders(tmp_path / "data", 6, sequence="seq")
    return tmp_path / "data" / "seq"


def test_fuse_frame_folders_writes_one_png_per_frame_with_the_input_names(sequence, tmp_path):
    out = tmp_path / "fused"
    assert main(["fuse", "--ir", str(sequence / "ir"), "--vis", str(sequence / "vis"), "--out", str(out),
                 "--model", "max_luminance"]) == 0
    names = sorted(p.name for p in (sequence / "vis").iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    first = cv2.imread(str(out / names[0]))
    assert first.shape == (48, 64, 3)
    # max-luminance output is at least as bright as the visible frame everywhere (up to rounding)
    vis = cv2.imread(str(sequence / "vis" / names[0]))
    luma = lambda bgr: bgr.astype(float) @ [0.114, 0.587, 0.299]
    assert np.all(luma(first) >= luma(vis) - 1.5)


def test_fuse_with_the_flagship_model_and_lookahead(sequence, tmp_path, monkeypatch):
    out = tmp_path / "fused"
    # a real checkpoint of a small FTPFusion, saved by the project's own checkpoint code
    import torch
    from ftpfusion_ros.models import build_model
    from ftpfusion_ros.runtime import save_checkpoint
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model("ftpfusion", {"channels": [4, 8, 8]}), tmp_path / "ftp.pt",
                           {"channels": [4, 8, 8]})
    assert main(["fuse", "--ir", str(sequence / "ir"), "--vis", str(sequence / "vis"), "--out", str(out),
                 "--model", "ftpfusion", "--checkpoint", str(ckpt), "--lookahead", "1"]) == 0
    assert len(list(out.iterdir())) == 6


def test_model_options_switch_the_stabiliser_off_over_the_checkpoint(sequence, tmp_path, capsys):
    """--model-option changes a config key of the checkpoint's model (here: FTPFusion's weight-free
    stabiliser), so the same weights give a different, per-frame-base output; bad keys are one line."""
    import torch
    from ftpfusion_ros.models import build_model
    from ftpfusion_ros.runtime import EngineConfig, FusionEngine, save_checkpoint
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model("ftpfusion", {"channels": [4, 8, 8]}), tmp_path / "ftp.pt",
                           {"channels": [4, 8, 8]})
    engine = FusionEngine(EngineConfig(model="ftpfusion", checkpoint=str(ckpt), model_options={"stabiliser": False}))
    assert engine.model.stabiliser is None
    outs = {}
    for name, extra in (("on", []), ("off", ["--model-option", "stabiliser=false"])):
        assert main(["fuse", "--ir", str(sequence / "ir"), "--vis", str(sequence / "vis"), "--out",
                     str(tmp_path / name), "--model", "ftpfusion", "--checkpoint", str(ckpt), *extra]) == 0
        outs[name] = cv2.imread(str(tmp_path / name / "000006.png")).astype(int)
    assert np.abs(outs["on"] - outs["off"]).max() > 0
    assert main(["fuse", "--ir", str(sequence / "ir"), "--vis", str(sequence / "vis"), "--out",
                 str(tmp_path / "bad"), "--model", "ftpfusion", "--checkpoint", str(ckpt),
                 "--model-option", "stabilizer=false"]) == 2
    assert "stabilizer" in capsys.readouterr().err


def test_parse_model_options():
    from ftpfusion_ros.runtime import parse_model_options
    assert parse_model_options("stabiliser=false, stab_sigma=0.02") == {"stabiliser": False, "stab_sigma": 0.02}
    assert parse_model_options(["a=1", "b=x"]) == {"a": 1, "b": "x"}
    assert parse_model_options("") == {} == parse_model_options(None)
    with pytest.raises(ValueError, match="key=value"):
        parse_model_options("stabiliser")


def test_fuse_mp4_pair(tmp_path):
    scene = SyntheticScene(SceneConfig(width=64, height=48, seed=1))
    paths = {}
    for kind in ("ir", "vis"):
        paths[kind] = tmp_path / f"{kind}.mp4"
        writer = cv2.VideoWriter(str(paths[kind]), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
        for t in range(5):
            ir, vis = scene.frame(t)
            writer.write(cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR) if kind == "ir" else vis)
        writer.release()
    out = tmp_path / "fused"
    assert main(["fuse", "--ir", str(paths["ir"]), "--vis", str(paths["vis"]), "--out", str(out),
                 "--model", "average"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(1, 6)]


def test_fuse_rosbag(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    Image, Header, Time = (store.types[n] for n in
                           ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    scene = SyntheticScene(SceneConfig(width=32, height=24, seed=2, ir_bit_depth=16))

    def image(arr, enc, ns):
        step = arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
        return Image(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cam"),
                     height=arr.shape[0], width=arr.shape[1], encoding=enc, is_bigendian=0, step=step,
                     data=np.frombuffer(arr.tobytes(), np.uint8))

    bag = tmp_path / "bag"
    with Writer(bag, version=9) as writer:
        c_ir = writer.add_connection("/ir/image_raw", Image.__msgtype__, typestore=store)
        c_vis = writer.add_connection("/visible/image_raw", Image.__msgtype__, typestore=store)
        for t in range(4):
            ir, vis = scene.frame(t)
            ns = 10**9 + t * 100_000_000
            writer.write(c_ir, ns, store.serialize_cdr(image(ir, "mono16", ns), Image.__msgtype__))
            writer.write(c_vis, ns + 2_000_000, store.serialize_cdr(image(vis, "bgr8", ns + 2_000_000),
                                                                    Image.__msgtype__))
    out = tmp_path / "fused"
    assert main(["fuse", "--bag", str(bag), "--out", str(out), "--model", "average"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(1, 5)]


def test_fuse_errors_are_one_clear_line(sequence, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["fuse", "--ir", str(tmp_path / "nope"), "--vis", str(sequence / "vis"), "--out", out]) == 2
    assert "nope" in capsys.readouterr().err
    (sequence / "vis" / "000006.png").unlink()  # unequal lengths
    assert main(["fuse", "--ir", str(sequence / "ir"), "--vis", str(sequence / "vis"), "--out", out,
                 "--model", "average"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["fuse", "--ir", str(sequence / "ir"), "--out", out]) == 2
    assert main(["fuse", "--ir", str(sequence / "ir"), "--vis", str(sequence / "ir"), "--out", out,
                 "--model", "no_such_model"]) == 2
