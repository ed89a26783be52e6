"""`ftpfusion eval` end to end on a tiny synthetic frame-folder dataset (classical models, seconds)."""
import csv
import json
import math

import pytest

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene
from ftpfusion_ros.metrics import ALL_METRICS, SPATIAL_METRICS

MODELS = ["average", "max_luminance"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    for seed, seq in ((0, "seq_a"), (1, "seq_b")):
        SyntheticScene(SceneConfig(width=64, height=48, seed=seed)).write_folders(root, 7, sequence=seq)
    return root


@pytest.fixture(scope="module")
def perturbed_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_out")
    rc = main(["eval", "--data", str(dataset), "--models", ",".join(MODELS), "--perturb",
               "flicker=1,jitter=0.25,misalign=2", "--out", str(out), "--no-progress", "--flow", "dis_fast"])
    assert rc == 0
    return out


def test_outputs_of_a_perturbed_run(perturbed_run):
    out = perturbed_run
    data = json.loads((out / "metrics.json").read_text())
    assert data["setting"] == "perturbed"
    assert set(data["models"]) == set(MODELS)
    assert set(data["settings"]) == {"clean", "perturbed"}
    for setting in ("clean", "perturbed"):
        for model in MODELS:
            block = data["settings"][setting]["models"][model]
            assert set(block["sequences"]) == {"seq_a", "seq_b"}
            assert set(block["mean"]) == set(ALL_METRICS)  # lower-case metric names
            for seq, vals in block["sequences"].items():
                assert block["frames"][seq] == 7
                for name in SPATIAL_METRICS:
                    assert vals[name] is not None and math.isfinite(vals[name]), (setting, model, seq, name)
                for name in ("biswe", "ms2r", "flowd", "mmci_approx", "flicker"):
                    assert vals[name] is not None and vals[name] >= 0
            mean_en = sum(block["sequences"][s]["en"] for s in ("seq_a", "seq_b")) / 2
            assert block["mean"]["en"] == pytest.approx(mean_en)
    assert data["models"]["average"] == data["settings"]["perturbed"]["models"]["average"]
    meta = data["meta"]
    assert meta["flow"].startswith("opencv-dis-fast")
    assert meta["settings"]["perturbed"]["describe"] == "flicker=1,jitter=0.25,misalign=2"
    assert meta["conventions"]["vif"]["convention"] == "sum"
    # perturbing the inputs changes the results
    clean_en = data["settings"]["clean"]["models"]["average"]["mean"]["biswe"]
    assert data["models"]["average"]["mean"]["biswe"] != pytest.approx(clean_en)

    with (out / "metrics_mean.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["setting"] for r in rows} == {"clean", "perturbed"}
    with (out / "metrics_per_sequence.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 8
    md = (out / "metrics.md").read_text()
    assert "## Mean over sequences" in md and "max_luminance" in md and "biswe ↓" in md
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {f"bar_{n}.png" for n in ALL_METRICS} <= plots
    assert {f"slices_{s}_{q}.png" for s in ("clean", "perturbed") for q in ("seq_a", "seq_b")} <= plots


def test_predictions_scored_like_the_engine_run(dataset, tmp_path, perturbed_run):
    # fuse one sequence with `ftpfusion fuse`, then score those PNGs: same numbers as the engine run
    pred = tmp_path / "average"
    seq = dataset / "seq_a"
    assert main(["fuse", "--ir", str(seq / "ir"), "--vis", str(seq / "vis"), "--out", str(pred),
                 "--model", "average"]) == 0
    out = tmp_path / "pred_eval"
    assert main(["eval", "--pred", str(pred), "--ir", str(seq / "ir"), "--vis", str(seq / "vis"), "--out", str(out),
                 "--no-progress", "--no-plots", "--flow", "dis_fast"]) == 0
    scored = json.loads((out / "metrics.json").read_text())["models"]["average"]["sequences"]["seq_a"]
    engine = json.loads((perturbed_run / "metrics.json").read_text())
    ref = engine["settings"]["clean"]["models"]["average"]["sequences"]["seq_a"]
    for name in ALL_METRICS:
        if ref[name] is None:
            assert scored[name] is None
        else:
            assert scored[name] == pytest.approx(ref[name], rel=1e-6, abs=1e-9), name


def test_frames_stride_metrics_and_conventions(dataset, tmp_path):
    out = tmp_path / "o"
    assert main(["eval", "--data", str(dataset), "--sequences", "seq_b", "--models", "average", "--frames", "3",
                 "--stride", "2", "--metrics", "en,vif,biswe", "--conventions", "vif=mean", "--no-progress",
                 "--no-plots", "--out", str(out)]) == 0
    data = json.loads((out / "metrics.json").read_text())
    block = data["models"]["average"]
    assert data["setting"] == "clean" and list(block["sequences"]) == ["seq_b"]
    assert block["frames"]["seq_b"] == 3
    assert set(block["mean"]) == {"en", "vif", "biswe"}
    assert data["meta"]["conventions"]["vif"]["convention"] == "mean"


@pytest.mark.parametrize("argv, message", [
    (["--models", "nosuchmodel"], "unknown models"),
    (["--models", "average", "--pred", "x"], "exactly one of"),
    (["--models", "average", "--perturb", "wobble=1"], "unknown perturbation"),
    (["--models", "average", "--metrics", "psnr"], "unknown metrics"),
    (["--models", "average", "--checkpoint", "average=x.pt"], "classical"),
    (["--models", "average", "--sequences", "nope"], "unknown sequences"),
])
def test_user_errors_exit_2(dataset, tmp_path, capsys, argv, message):
    rc = main(["eval", "--data", str(dataset), "--out", str(tmp_path / "e"), "--no-progress", *argv])
    assert rc == 2
    assert message in capsys.readouterr().err
