"""`ftpfusion fuse --images` and `ftpfusion eval --images`: folders of independent IR/visible pairs of
different sizes (TNO / RoadScene / MSRS layout), each pair fused on its own, spatial metrics only."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.data.image_pairs import find_image_pairs
from ftpfusion_ros.data.sequences import read_ir_image, read_vis_image
from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene
from ftpfusion_ros.metrics import SPATIAL_METRICS, TEMPORAL_METRICS
from ftpfusion_ros.runtime import EngineConfig, FusionEngine

#: name -> visible size (W, H); "01" and "02" share a size so that state kept between pairs would show
SIZES = {"01": (64, 48), "02": (64, 48), "03": (80, 64), "10": (96, 72)}
MODELS = ["average", "laplacian", "ftpfusion"]
ROWS = [*MODELS, "ftpfusion (base)"]  # every learned model is followed by its weight-free base


def _write(path: Path, img: np.ndarray) -> None:
    assert cv2.imwrite(str(path), img), path


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """MSRS-style ROOT/{ir,vi}/NAME.* with the storage variants benchmarks use."""
    root = tmp_path_factory.mktemp("bench")
    (root / "ir").mkdir()
    (root / "vi").mkdir()
    for seed, (name, (w, h)) in enumerate(SIZES.items()):
        cfg = SceneConfig(width=w, height=h, seed=seed, ir_bit_depth=16 if name == "03" else 8)
        ir, vis = SyntheticScene(cfg).frame(0)
        if name == "02":  # IR as a 3-channel grey BMP (how many datasets store it), visible as JPEG
            _write(root / "ir" / f"{name}.bmp", cv2.merge([ir, ir, ir]))
            _write(root / "vi" / f"{name}.jpg", vis)
            continue
        if name == "10":  # lower-resolution thermal camera, same field of view: the engine resizes it
            ir = cv2.resize(ir, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        _write(root / "ir" / f"{name}.png", ir)  # "03": 16-bit PNG
        _write(root / "vi" / f"{name}.png", vis)
    return root


def _alone(model: str, root: Path, name: str) -> np.ndarray:
    """The pair fused by a fresh engine that has seen nothing else (the definition of "on its own")."""
    ir = read_ir_image(next((root / "ir").glob(f"{name}.*")))
    vis = read_vis_image(next((root / "vi").glob(f"{name}.*")))
    engine = FusionEngine(EngineConfig(model=model))
    res = engine.push(ir, vis, "mono16" if ir.dtype == np.uint16 else "mono8", "bgr8")
    return res.fused_bgr


@pytest.mark.parametrize("model", ["laplacian", "ftpfusion"])  # ftpfusion: the shipped checkpoint
def test_fuse_images_writes_each_pair_as_if_fused_alone(bench, tmp_path, model):
    out = tmp_path / "fused"
    assert main(["fuse", "--images", str(bench), "--out", str(out), "--model", model]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{n}.png" for n in sorted(SIZES)]
    for name, (w, h) in SIZES.items():
        fused = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert fused.shape == (h, w, 3), name  # the visible image's size, also where IR is smaller
        assert np.array_equal(fused, _alone(model, bench, name)), name


def test_fuse_images_with_explicit_folders(bench, tmp_path):
    out = tmp_path / "fused"
    assert main(["fuse", "--images", "--ir", str(bench / "ir"), "--vis", str(bench / "vi"), "--out", str(out),
                 "--model", "average"]) == 0
    assert sorted(p.stem for p in out.iterdir()) == sorted(SIZES)


@pytest.mark.parametrize("dirs", [("ir", "vi"), ("ir", "vis"), ("infrared", "visible"), ("IR", "VIS"),
                                  ("Infrared", "Vi")])
def test_benchmark_folder_names_are_found_in_any_case(tmp_path, dirs):
    for d, ext in zip(dirs, (".png", ".jpg")):
        (tmp_path / d).mkdir()
        for name in ("b", "a", "c10", "c9"):
            _write(tmp_path / d / f"{name}{ext}", np.zeros((8, 8), np.uint8))
        (tmp_path / d / "notes.txt").write_text("not an image")
    pairs = find_image_pairs(tmp_path)
    assert [p.name for p in pairs] == ["a", "b", "c9", "c10"]  # matched by stem, natural order
    assert all(p.ir_path.parent.name == dirs[0] and p.vis_path.parent.name == dirs[1] for p in pairs)


@pytest.fixture(scope="module")
def eval_run(bench, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval_images")
    assert main(["eval", "--images", str(bench), "--models", ",".join(MODELS), "--out", str(out),
                 "--no-progress", "--no-plots"]) == 0
    return out


def test_eval_images_writes_spatial_tables_with_one_row_per_model(eval_run):
    data = json.loads((eval_run / "metrics.json").read_text())
    assert list(data["models"]) == ROWS
    assert data["meta"]["bases"] == {"ftpfusion": "ftpfusion (base)"}
    assert data["meta"]["models"]["ftpfusion (base)"]["model_options"] == {"refine": False}
    for model in ROWS:
        block = data["models"][model]
        assert set(block["mean"]) == set(SPATIAL_METRICS)  # no temporal metrics for independent images
        assert set(block["sequences"]) == set(SIZES)
        for name, vals in block["sequences"].items():
            assert math.isfinite(vals["qabf"]) and 0 < vals["qabf"] <= 1, (model, name)
            assert block["frames"][name] == 1
        # each pair weighs the same in the mean
        assert block["mean"]["qabf"] == pytest.approx(np.mean([v["qabf"] for v in block["sequences"].values()]))
    assert data["meta"]["mode"] == "images"
    assert data["meta"]["models"]["ftpfusion"]["window"] == 1
    with (eval_run / "metrics_mean.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ROWS
    assert all(math.isfinite(float(r["qabf"])) for r in rows)
    assert not set(TEMPORAL_METRICS) & set(rows[0])
    with (eval_run / "metrics_per_sequence.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(ROWS) * len(SIZES)
    md = (eval_run / "metrics.md").read_text()
    assert all(f"| {m} |" in md for m in ROWS) and "qabf ↑" in md and "biswe" not in md
    assert "## What the network adds" in md and "| ftpfusion | clean |" in md


def test_eval_images_scores_fused_files_like_the_engine_run(bench, eval_run, tmp_path):
    fused = tmp_path / "lap"
    assert main(["fuse", "--images", str(bench), "--out", str(fused), "--model", "laplacian"]) == 0
    out = tmp_path / "pred_eval"
    assert main(["eval", "--images", str(bench), "--pred", f"mine={fused}", "--out", str(out), "--no-progress",
                 "--no-plots"]) == 0
    pred = json.loads((out / "metrics.json").read_text())["models"]["mine"]["sequences"]
    engine = json.loads((eval_run / "metrics.json").read_text())["models"]["laplacian"]["sequences"]
    # 8-bit IR of the visible size: the engine's metric inputs are the files themselves, so equal scores
    for name in ("01", "02"):
        for metric in SPATIAL_METRICS:
            assert pred[name][metric] == pytest.approx(engine[name][metric], rel=1e-9), (name, metric)


def test_eval_images_model_options_apply_to_the_named_model_only(bench, eval_run, tmp_path):
    out = tmp_path / "opt"
    assert main(["eval", "--images", str(bench), "--models", "average,ftpfusion", "--model-option",
                 "ftpfusion:base_fusion=mean", "--out", str(out), "--no-progress", "--no-plots"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    ref = json.loads((eval_run / "metrics.json").read_text())["models"]
    assert data["meta"]["models"]["ftpfusion"]["model_options"] == {"base_fusion": "mean"}
    assert data["models"]["average"]["mean"] == ref["average"]["mean"]
    assert data["models"]["ftpfusion"]["mean"]["sd"] != pytest.approx(ref["ftpfusion"]["mean"]["sd"])


def _broken(kind: str, root: Path) -> None:
    (root / "ir").mkdir(parents=True)
    (root / "vis").mkdir()
    if kind == "empty":
        return
    for name in ("a", "b"):
        _write(root / "ir" / f"{name}.png", np.zeros((16, 16), np.uint8))
        _write(root / "vis" / f"{name}.png", np.zeros((16, 16, 3), np.uint8))
    if kind == "unmatched":
        _write(root / "ir" / "only_ir.png", np.zeros((16, 16), np.uint8))
    elif kind == "unreadable":
        (root / "vis" / "b.png").write_bytes(b"\x89PNG truncated")


@pytest.mark.parametrize("command", [["fuse", "--model", "average"], ["eval", "--models", "average"]])
@pytest.mark.parametrize("kind, needle", [("unmatched", "only_ir"), ("empty", "contains no images"),
                                          ("unreadable", "b.png")])
def test_bad_image_folders_give_one_line_errors(tmp_path, capsys, command, kind, needle):
    root = tmp_path / "bench"
    _broken(kind, root)
    rc = main([command[0], "--images", str(root), *command[1:], "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ftpfusion")]  # not the progress bar
    assert rc == 2
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in err, err


def test_video_only_options_are_refused_with_images(bench, tmp_path, capsys):
    assert main(["fuse", "--images", str(bench), "--lookahead", "1", "--model", "average", "--out",
                 str(tmp_path / "a")]) == 2
    assert main(["eval", "--images", str(bench), "--models", "average", "--metrics", "qabf,biswe", "--out",
                 str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--lookahead" in err and "biswe" in err
