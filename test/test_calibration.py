"""`ftpfusion calibrate` and registration files: known IR->visible mappings are recovered from the
synthetic scene and from frames made here, degenerate input is refused without writing anything, and
the engine front ends (`fuse --registration`, EngineConfig.registration_file) apply the file."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.data.sequences import write_pair_folders
from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene
from ftpfusion_ros.runtime import EngineConfig, FusionEngine
from ftpfusion_ros.runtime.calibration import (CalibrationError, corners, estimate_from_scenes,
                                               estimate_from_target, map_points, parse_target)
from ftpfusion_ros.runtime.registration import load_registration, save_registration

VIS_W, VIS_H = 320, 240


def warp_of(scale: float, angle_deg: float, tx: float, ty: float, ir_size: tuple[int, int] = (VIS_W, VIS_H),
            base: float = 1.0) -> np.ndarray:
    """G: visible pixel -> IR pixel of an IR camera rotated/scaled about the centres and shifted; the
    IR -> visible truth is inv(G). `base` is the IR camera's own pixel scale (e.g. 0.5 at half resolution)."""
    a = math.radians(angle_deg)
    centre = np.array([[1, 0, -(VIS_W - 1) / 2], [0, 1, -(VIS_H - 1) / 2], [0, 0, 1]])
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    out = np.array([[1, 0, (ir_size[0] - 1) / 2 + tx], [0, 1, (ir_size[1] - 1) / 2 + ty], [0, 0, 1]])
    return out @ np.diag([scale * base, scale * base, 1.0]) @ rot @ centre


def corner_error(h: np.ndarray, g: np.ndarray, ir_size: tuple[int, int]) -> float:
    """Mean distance (visible pixels) between the IR image corners mapped by h and by the truth inv(g)."""
    c = corners(ir_size)
    return float(np.linalg.norm(map_points(h, c) - map_points(np.linalg.inv(g), c), axis=1).mean())


def synthetic_pairs(g: np.ndarray, ir_size: tuple[int, int], n: int = 8) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The project's synthetic street scene by day, IR warped onto another camera's pixel grid."""
    scene = SyntheticScene(SceneConfig(width=VIS_W, height=VIS_H, seed=3, low_light=False))
    return [(name, cv2.warpPerspective(ir, g, ir_size), vis) for name, ir, vis in list(scene.frames(5 * n))[::5]]


def made_scene(seed: int, t: int) -> np.ndarray:
    """A grey scene made here: rectangles and discs of random brightness, two of them moving."""
    rng = np.random.default_rng(seed)
    img = np.full((VIS_H, VIS_W), 110, np.uint8)
    for k in range(40):
        x, y = int(rng.integers(0, VIS_W)), int(rng.integers(0, VIS_H))
        if k < 2:
            x = (x + 6 * t) % VIS_W
        v = int(rng.integers(0, 256))
        if k % 2:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(8, 50)), y + int(rng.integers(8, 50))), v, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(4, 25)), v, -1)
    return img


def made_pairs(g: np.ndarray, ir_size: tuple[int, int], n: int = 6, seed: int = 1, ir_seed: int | None = None
               ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Visible = the made scene; IR = the scene with inverted contrast (warm where visible is dark), blurred
    like thermal optics, warped onto the IR grid. `ir_seed` other than `seed`: an unrelated IR scene."""
    noise = np.random.default_rng(99)
    out = []
    for t in range(n):
        grey = made_scene(seed, t)
        vis = cv2.cvtColor(np.clip(grey + noise.normal(0, 3, grey.shape), 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        src = made_scene(ir_seed if ir_seed is not None else seed, t)
        ir = cv2.GaussianBlur(255 - src, (0, 0), 1.2)
        ir = np.clip(ir + noise.normal(0, 2, ir.shape), 0, 255).astype(np.uint8)
        # outside the scene made here the IR camera sees nothing: constant fill, as warped test clips have
        out.append((f"{t + 1:06d}", cv2.warpPerspective(ir, g, ir_size), vis))
    return out


# ------------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("g, ir_size", [
    (warp_of(1.25, 5, 20, -15), (VIS_W, VIS_H)),                         # IR zoomed in, rotated, shifted
    (warp_of(0.8, -4, -15, -20, (320, 256), base=1.2), (320, 256)),      # other resolution and aspect
], ids=["zoom1.25_rot5", "320x256_rot-4"])
def test_recovers_known_mapping_on_the_synthetic_scene(g, ir_size):
    reg = estimate_from_scenes(synthetic_pairs(g, ir_size))
    assert reg.ir_size == ir_size and reg.vis_size == (VIS_W, VIS_H)
    assert corner_error(reg.homography, g, ir_size) < 2.0
    assert reg.residual_px < 2.0 and len(reg.frames_used) == 8


def test_recovers_inverted_contrast_at_lower_ir_resolution():
    # warm objects bright in IR where visible is dark, IR camera at 160x128 with a 0.8x wider field of view
    g = warp_of(0.8, 5, 12, -10, (160, 128), base=0.5)
    reg = estimate_from_scenes(made_pairs(g, (160, 128)))
    assert corner_error(reg.homography, g, (160, 128)) < 2.0


def test_affine_model_has_no_perspective_terms():
    g = warp_of(1.1, -5, -20, 20)
    reg = estimate_from_scenes(made_pairs(g, (VIS_W, VIS_H)), model="affine")
    assert reg.model == "affine"
    np.testing.assert_allclose(reg.homography[2], [0.0, 0.0, 1.0], atol=1e-12)
    assert corner_error(reg.homography, g, (VIS_W, VIS_H)) < 2.0


# ------------------------------------------------------------------------------- refusals
def test_refuses_degenerate_input():
    g = warp_of(1.0, 0, 0, 0)
    good = made_pairs(g, (VIS_W, VIS_H), n=4)
    cases = {
        "uniform IR": [(n, np.full_like(i, 80), v) for n, i, v in good],
        "black visible": [(n, i, np.zeros_like(v)) for n, i, v in good],
        "too few frames": good[:2],
        "unrelated scenes": made_pairs(g, (VIS_W, VIS_H), n=4, ir_seed=7),
        "no frames": [],
    }
    for what, pairs in cases.items():
        with pytest.raises(CalibrationError) as info:
            estimate_from_scenes(pairs)
        assert "\n" not in str(info.value), what


# ------------------------------------------------------------------------------- heated targets
def _target_image(kind: str, cols: int, rows: int) -> np.ndarray:
    """A dark-on-light target (visible look) on a 320x240 canvas."""
    img = np.full((VIS_H, VIS_W), 200, np.uint8)
    if kind == "checkerboard":  # cols x rows inner corners: (cols + 1) x (rows + 1) squares
        sq, x0, y0 = 22, 60, 40
        for r in range(rows + 1):
            for c in range(cols + 1):
                if (r + c) % 2 == 0:
                    top_left, bottom_right = (x0 + c * sq, y0 + r * sq), (x0 + (c + 1) * sq - 1, y0 + (r + 1) * sq - 1)
                    cv2.rectangle(img, top_left, bottom_right, 30, -1)
    else:
        for r in range(rows):
            for c in range(cols):
                cv2.circle(img, (80 + c * 30, 60 + r * 30), 9, 30, -1, lineType=cv2.LINE_AA)
    return img


@pytest.mark.parametrize("spec", ["checkerboard:7x5", "circles:6x4"])
def test_heated_target_in_both_cameras(spec):
    kind, cols, rows = parse_target(spec)
    ir_size = (160, 128)
    g = warp_of(0.9, 4, 6, -5, ir_size, base=0.5)
    pairs = []
    for t in range(3):
        # the target moves between frames; the heated pattern is bright in IR (inverted) and blurred
        shift = np.float32([[1, 0, 8 * t - 8], [0, 1, 4 * t - 4]])
        vis = cv2.warpAffine(_target_image(kind, cols, rows), shift, (VIS_W, VIS_H), borderValue=200)
        ir = cv2.warpPerspective(cv2.GaussianBlur(255 - vis, (0, 0), 1.0), g, ir_size)
        pairs.append((f"{t:06d}", ir, cv2.cvtColor(vis, cv2.COLOR_GRAY2BGR)))
    reg = estimate_from_target(pairs, spec)
    assert len(reg.frames_used) == 3
    assert corner_error(reg.homography, g, ir_size) < 1.5
    with pytest.raises(CalibrationError):  # a target of another size is not there
        estimate_from_target(pairs, f"{kind}:{cols + 2}x{rows}")


# ------------------------------------------------------------------------------- files and engine
def test_registration_file_is_rescaled_for_resized_streams_and_refused_for_others(tmp_path):
    h = np.array([[1.1, 0.02, 5.0], [-0.02, 1.1, -7.0], [0.0, 0.0, 1.0]])
    path = save_registration(tmp_path / "reg.yaml", {"homography": h.tolist(), "ir_size": [320, 256],
                                                     "vis_size": [640, 480]})
    reg = load_registration(path)
    np.testing.assert_allclose(reg.for_sizes((320, 256), (640, 480)), h)
    # both streams at half resolution: the same physical mapping
    half = reg.for_sizes((160, 128), (320, 240))
    p = np.array([[100.0, 80.0]])
    np.testing.assert_allclose(map_points(half, p / 2), map_points(h, p) / 2, atol=1e-9)
    with pytest.raises(ValueError, match="aspect ratio"):
        reg.for_sizes((320, 240), (640, 480))
    (tmp_path / "bad.yaml").write_text("model: affine\n")
    with pytest.raises(ValueError, match="no 'homography'"):
        load_registration(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="not both"):
        FusionEngine(EngineConfig(model="average", registration_file=str(path), homography=h.ravel().tolist()))


def _folders(root: Path, pairs) -> tuple[Path, Path]:
    seq = write_pair_folders(root, "seq", pairs)
    return seq / "ir", seq / "vis"


def test_calibrate_cli_then_fuse_with_the_registration(tmp_path, capsys):
    ir_size = (320, 256)
    g = warp_of(1.15, 3, 15, 10, ir_size, base=1.1)
    pairs = synthetic_pairs(g, ir_size)
    ir_dir, vis_dir = _folders(tmp_path / "data", pairs)
    out = tmp_path / "reg" / "registration.yaml"
    assert main(["calibrate", "--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "residual" in printed and "homography" in printed
    data = yaml.safe_load(out.read_text())
    h = np.array(data["homography"], dtype=float)
    assert h.shape == (3, 3) and data["ir_size"] == [320, 256] and data["vis_size"] == [VIS_W, VIS_H]
    assert corner_error(h, g, ir_size) < 2.0
    assert {"model", "residual_px", "frames_used", "method"} <= set(data)
    overlay = cv2.imread(str(out.with_name("registration_overlay.png")))
    assert overlay is not None and overlay.shape == (VIS_H, VIS_W, 3)

    # the engine applies the file: IR comes out on the visible grid, aligned with the unwarped IR
    scene = SyntheticScene(SceneConfig(width=VIS_W, height=VIS_H, seed=3, low_light=False))
    _, ir_true, vis = next(iter(scene.frames(1)))
    ir_cam = cv2.warpPerspective(ir_true, g, ir_size)
    inner = (slice(40, 200), slice(40, 280))

    def aligned(cfg: EngineConfig) -> np.ndarray:
        engine = FusionEngine(cfg)
        res = engine.push(ir_cam, vis) or engine.flush()[0]
        return res.aligned_ir.astype(np.float32)

    with_file = aligned(EngineConfig(model="average", registration_file=str(out)))
    assert with_file.shape == (VIS_H, VIS_W)
    assert np.abs(with_file[inner] - ir_true[inner]).mean() < 6.0
    # (without a registration the engine refuses the other aspect ratio; the identity is the naive mapping)
    without = aligned(EngineConfig(model="average", homography=[1.0, 0, 0, 0, 1, 0, 0, 0, 1]))
    assert np.abs(without[inner] - ir_true[inner]).mean() > 2 * np.abs(with_file[inner] - ir_true[inner]).mean()

    fused = tmp_path / "fused"
    assert main(["fuse", "--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(fused), "--model", "average",
                 "--registration", str(out)]) == 0
    assert len(list(fused.glob("*.png"))) == len(pairs)


def test_calibrate_cli_refuses_degenerate_input_and_writes_nothing(tmp_path, capsys):
    g = warp_of(1.0, 0, 0, 0)
    pairs = [(n, np.full_like(i, 120), v) for n, i, v in made_pairs(g, (VIS_W, VIS_H), n=4)]
    ir_dir, vis_dir = _folders(tmp_path / "data", pairs)
    out = tmp_path / "registration.yaml"
    assert main(["calibrate", "--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("ftpfusion calibrate: error:") and "\n" not in err
    assert list(tmp_path.glob("registration*")) == []
    # one modality missing
    assert main(["calibrate", "--ir", str(ir_dir), "--out", str(out)]) != 0
    assert "--vis missing" in capsys.readouterr().err
    assert not out.exists()
    # a missing registration file is a one-line error of the engine front ends too
    assert main(["fuse", "--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(tmp_path / "f"),
                 "--model", "average", "--registration", str(out)]) != 0
    assert "does not exist" in capsys.readouterr().err


def test_calibrate_cli_reads_a_rosbag(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.LATEST)
    Image, Header, Time = (ts.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                 "builtin_interfaces/msg/Time"))

    def msg(arr: np.ndarray, enc: str, stamp: int):
        sec, nsec = divmod(stamp, 10**9)
        ch = arr.shape[2] if arr.ndim == 3 else 1
        return Image(header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id="cam"), height=arr.shape[0],
                     width=arr.shape[1], encoding=enc, is_bigendian=0, step=arr.shape[1] * ch,
                     data=np.ascontiguousarray(arr).reshape(-1))

    g = warp_of(0.9, -3, -10, 8)
    bag = tmp_path / "rig"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        c_ir = writer.add_connection("/ir/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        c_vis = writer.add_connection("/visible/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        for i, (_, ir, vis) in enumerate(made_pairs(g, (VIS_W, VIS_H), n=6)):
            t = 1_700_000_000 * 10**9 + i * 100_000_000
            writer.write(c_ir, t, ts.serialize_cdr(msg(ir, "mono8", t), "sensor_msgs/msg/Image"))
            writer.write(c_vis, t + 1_000_000, ts.serialize_cdr(msg(vis, "bgr8", t + 1_000_000),
                                                                 "sensor_msgs/msg/Image"))
    out = tmp_path / "reg.yaml"
    assert main(["calibrate", "--bag", str(bag), "--out", str(out), "--no-overlay", "--model", "affine"]) == 0
    h = np.array(yaml.safe_load(out.read_text())["homography"], dtype=float)
    assert corner_error(h, g, (VIS_W, VIS_H)) < 2.0


def test_eval_with_a_registration_scores_the_aligned_fusion(tmp_path, capsys):
    import json

    g = warp_of(1.1, 3, 12, 8)
    ir_dir, vis_dir = _folders(tmp_path / "data", synthetic_pairs(g, (VIS_W, VIS_H), n=3))
    reg = save_registration(tmp_path / "reg.yaml", {"homography": np.linalg.inv(g).tolist(),
                                                    "ir_size": [VIS_W, VIS_H], "vis_size": [VIS_W, VIS_H]})
    qabf = {}
    for name, extra in (("registered", ["--registration", str(reg)]), ("raw", [])):
        out = tmp_path / name
        assert main(["eval", "--ir", str(ir_dir), "--vis", str(vis_dir), "--models", "max_luminance", "--out",
                     str(out), "--metrics", "qabf", "--no-plots", "--no-progress", *extra]) == 0
        qabf[name] = json.loads((out / "metrics.json").read_text())["models"]["max_luminance"]["mean"]["qabf"]
    # the metric sees the engine's registered IR: fusing aligned inputs transfers more of their edges
    assert qabf["registered"] > qabf["raw"]
    assert main(["eval", "--ir", str(ir_dir), "--vis", str(vis_dir), "--pred", str(vis_dir), "--out",
                 str(tmp_path / "p"), "--registration", str(reg)]) != 0
    assert "--registration applies to --models" in capsys.readouterr().err


# ------------------------------------------------------------------------------- camera_info + TF
def test_homography_from_intrinsics_and_extrinsics_maps_points_of_the_plane():
    from ftpfusion_ros.runtime.registration import (homography_from_cameras, quaternion_matrix,
                                                    registration_from_cameras)

    k_ir = [400.0, 0.0, 160.0, 0.0, 400.0, 128.0, 0.0, 0.0, 1.0]           # 320x256, ~44 deg
    k_vis = [600.0, 0.0, 320.0, 0.0, 600.0, 240.0, 0.0, 0.0, 1.0]          # 640x480, ~56 deg
    yaw = math.radians(2.0)  # IR camera turned 2 deg about the visible camera's vertical axis
    quat = (0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2))
    t = (-0.06, 0.01, 0.0)   # 6 cm baseline
    r = quaternion_matrix(*quat)
    depth = 8.0
    h = homography_from_cameras(k_ir, k_vis, r, t, depth)
    # project points of the plane z_ir = depth into both cameras: the homography must agree
    ki, kv = np.reshape(k_ir, (3, 3)), np.reshape(k_vis, (3, 3))
    pts = np.array([[x, y, depth] for x in (-3.0, 0.0, 2.5) for y in (-2.0, 1.5)])
    uv_ir = (pts @ ki.T)[:, :2] / depth
    cam_vis = pts @ r.T + np.asarray(t)
    uv_vis = (cam_vis @ kv.T)[:, :2] / cam_vis[:, 2:3]
    np.testing.assert_allclose(map_points(h, uv_ir), uv_vis, atol=1e-6)
    # same cameras, no offset: identity; far away the baseline stops mattering
    np.testing.assert_allclose(homography_from_cameras(k_vis, k_vis, np.eye(3), (0, 0, 0), 5.0), np.eye(3),
                               atol=1e-12)
    far = homography_from_cameras(k_ir, k_vis, r, t, 1e6)
    np.testing.assert_allclose(far, homography_from_cameras(k_ir, k_vis, r, (0, 0, 0), 1.0), atol=1e-4)
    reg = registration_from_cameras(k_ir, (320, 256), k_vis, (640, 480), t, quat, depth)
    np.testing.assert_allclose(reg.for_sizes((320, 256), (640, 480)), h)
    with pytest.raises(ValueError, match="intrinsics"):
        homography_from_cameras([0.0] * 9, k_vis, r, t, depth)
    with pytest.raises(ValueError, match="depth"):
        homography_from_cameras(k_ir, k_vis, r, t, 0.0)
