"""Training: config, schedule, the trainer end to end, resume and DDP (tiny synthetic data, tiny model)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ftpfusion_ros.cli.main import main as cli_main
from ftpfusion_ros.losses import build_loss
from ftpfusion_ros.runtime import EngineConfig, FusionEngine, load_checkpoint
from ftpfusion_ros.training.config import ConfigError, load_config
from ftpfusion_ros.training.schedule import Curriculum, lr_factor
from ftpfusion_ros.training.trainer import Trainer

@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster than two and does not spin-wait on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "config" / "train" / "ftpfusion_smoke.yaml"
FULL = REPO / "config" / "train" / "ftpfusion.yaml"


def tiny(out_dir, **over) -> dict:
    """A tiny FTPFusion run: 2 synthetic sequences of 8 frames (48x40), 32x32 crops, 3 steps."""
    cfg = {
        "model": "ftpfusion", "model_config": {"channels": [4, 8, 8]}, "steps": 3, "seed": 0,
        "out_dir": str(out_dir), "device": "cpu",
        "data": {"synthetic": {"sequences": 2, "frames": 8, "width": 48, "height": 40}, "clip_len": 3,
                 "cache_dir": None, "perturb": {"prob": 0.5, "jitter": 0.5, "flicker": 1.0}},
        "optim": {"warmup_steps": 1},
        "curriculum": {"patch_small": 32, "batch_small": 2, "patch_large": 32, "batch_large": 1, "switch": 0.7},
        "val": {"every": 2, "frames": 4, "loss_clips": 1, "metrics": ["qabf", "ssim", "en", "flicker"]},
        "log": {"every": 1, "progress": False, "tensorboard": True},
    }
    for key, value in over.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


# -------------------------------------------------------------------------------------------- config
def test_shipped_configs_load():
    smoke = load_config(SMOKE)
    assert smoke.model == "ftpfusion" and smoke.model_config["channels"] == [4, 8, 8]
    full = load_config(FULL)
    assert full.data.val_sequences == ["0111_1716"]
    # the node-matched recipe: base/edge/temporal on; the paper's intensity/gradient/OTC and max-gradient detail off
    assert all(full.loss[k] > 0 for k in ("base", "edge", "temporal", "colour"))
    assert all(full.loss[k] == 0 for k in ("intensity", "gradient", "otc", "detail"))
    assert full.data.scale == 1.0 and full.data.clip_len == 10
    build_loss("ftpfusion", full.loss)  # the loss accepts every key of the shipped config
    assert full.optim.lr == pytest.approx(2e-4) and full.curriculum.switch == pytest.approx(0.7)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'optim.lrr' \(did you mean 'lr'\?\)"):
        load_config(data=tiny(tmp_path, **{"optim.lrr": 1e-3}))
    with pytest.raises(ConfigError, match=r"unknown key 'stpes' \(did you mean 'steps'\?\)"):
        load_config(data={**tiny(tmp_path), "stpes": 3})
    with pytest.raises(ConfigError, match="optim.lr: expected a number, got 'fast'"):
        load_config(data=tiny(tmp_path, **{"optim.lr": "fast"}))
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        load_config(data=tiny(tmp_path, steps=2.5))
    with pytest.raises(ConfigError, match="curriculum.switch: must be in"):
        load_config(data=tiny(tmp_path, **{"curriculum.switch": 1.5}))
    with pytest.raises(ConfigError, match="amp: expected one of"):
        load_config(data=tiny(tmp_path, amp="fp8"))
    with pytest.raises(ConfigError, match=r"data.val_sequences\[0\]: expected a string, got 299982 \(YAML"):
        load_config(data=tiny(tmp_path, **{"data.val_sequences": [299982]}))
    with pytest.raises(ConfigError, match="val.best"):
        load_config(data=tiny(tmp_path, **{"val.best": "vif"}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    cfg = load_config(SMOKE, ["optim.lr=1e-3", "data.synthetic.frames=20", "val.metrics=[qabf]", "val.best=qabf"])
    assert cfg.optim.lr == pytest.approx(1e-3) and cfg.data.synthetic.frames == 20 and cfg.val.metrics == ["qabf"]


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny(tmp_path, **{"optim.lrr": 1})))
    assert cli_main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "optim.lrr" in err[0]
    path.write_text(yaml.safe_dump(tiny(tmp_path, model="average")))
    assert cli_main(["train", "--config", str(path)]) == 2
    assert "no weights to train" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ schedule
def test_warmup_cosine_schedule():
    f = [lr_factor(s, 100, 10, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[99] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # monotone decay after warm-up
    assert lr_factor(0, 1, 0, 0.0) == 1.0


def test_curriculum_switches_at_70_percent_and_numbers_samples():
    from ftpfusion_ros.training.config import CurriculumConfig

    cur = Curriculum(CurriculumConfig(patch_small=64, batch_small=4, patch_large=128, batch_large=2, switch=0.7),
                     total_steps=10, world_size=2)
    assert [cur.phase(s).patch for s in range(10)] == [64] * 7 + [128] * 3
    ids = [i for s in range(10) for r in range(2) for i in cur.batch_ids(s, r)]
    assert ids == list(range(7 * 4 * 2 + 3 * 2 * 2))  # consecutive, no sample drawn twice
    with pytest.raises(ValueError):
        cur.phase(10)


# ------------------------------------------------------------------------------------------- trainer
def test_train_end_to_end_writes_checkpoints_that_the_engine_loads(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(data=tiny(out))
    trainer = Trainer(cfg, command="pytest")
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.fit()
    trainer.close()
    assert summary["step"] == 3 and summary["best"]["value"] is not None
    for name in ("last.pt", "last.yaml", "best.pt", "best.yaml", "train_state.pt", "config.yaml"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    meta = yaml.safe_load((out / "last.yaml").read_text())
    assert meta["model"] == "ftpfusion" and meta["config"]["channels"] == [4, 8, 8]
    assert set(meta["metrics"]) >= {"qabf", "ssim", "en", "flicker", "loss"}
    assert meta["step"] == 3 and meta["command"] == "pytest" and meta["hardware"]["device"] == "cpu"
    assert meta["data"] == {"train": ["synthetic_00"], "val": ["synthetic_01"], "scale": 1.0}
    assert len(meta["sha256"]) == 64 and meta["wall_time_s"] > 0
    model = load_checkpoint("ftpfusion", out / "last.pt")
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, init[k])]
    assert changed  # the weights were trained
    engine = FusionEngine(EngineConfig(model="ftpfusion", checkpoint=str(out / "best.pt"), device="cpu"))
    res = engine.push(np.zeros((40, 48), np.uint8), np.zeros((40, 48, 3), np.uint8))
    assert res.fused_bgr.shape == (40, 48, 3)


def test_validation_is_the_evaluation_of_the_engine_with_the_base_and_the_warp_condition(tmp_path):
    """validate() scores the model in memory exactly as `ftpfusion eval` scores its checkpoint, clean and
    perturbed, next to the weight-free base; best.pt needs the warping error within tolerance of the base's."""
    from ftpfusion_ros.data.perturb import parse_perturb
    from ftpfusion_ros.data.sequences import find_sequences
    from ftpfusion_ros.evaluation import EvalConfig, evaluate_models

    out = tmp_path / "run"
    spec = "flicker=1,jitter=0.25"
    cfg = load_config(data=tiny(out, steps=2, model_config={"channels": [4, 8, 8], "train_last": 2},
                                **{"data.clip_len": 4, "val.every": 0, "val.frames": 5, "val.loss_clips": 0,
                                   "val.metrics": ["qabf", "biswe"], "val.perturb": spec,
                                   "val.best": "perturbed/qabf", "val.warp_tolerance": 0.05,
                                   "log.tensorboard": False}))
    trainer = Trainer(cfg, command="pytest")
    trainer.fit()
    trainer.close()
    metrics = trainer.last_metrics
    assert set(metrics) == {"qabf", "biswe", "perturbed/qabf", "perturbed/biswe", "base/qabf", "base/biswe",
                            "base/perturbed/qabf", "base/perturbed/biswe"}
    val = [p for p in find_sequences(out / "synthetic_data") if p.name == "synthetic_01"]
    res = evaluate_models(val, EvalConfig(models=["ftpfusion"], checkpoints={"ftpfusion": str(out / "last.pt")},
                                          device="cpu", frames=5, metrics=["qabf", "biswe"],
                                          perturb=parse_perturb(spec), progress=False))
    for setting, prefix in (("clean", ""), ("perturbed", "perturbed/")):
        for name in ("qabf", "biswe"):
            assert metrics[prefix + name] == pytest.approx(res.mean(setting, "ftpfusion")[name], abs=1e-9)
            assert metrics["base/" + prefix + name] == pytest.approx(res.mean(setting, "ftpfusion (base)")[name],
                                                                    abs=1e-9)
    base = {k: v for k, v in metrics.items() if k.startswith("base/")}
    trainer.best = {"metric": "perturbed/qabf", "value": None, "step": None}
    assert trainer._improved({**base, "perturbed/qabf": 0.5, "perturbed/biswe": base["base/perturbed/biswe"]})
    assert not trainer._improved({**base, "perturbed/qabf": 0.5,
                                  "perturbed/biswe": 1.06 * base["base/perturbed/biswe"] + 1e-6})
    with pytest.raises(ConfigError, match="val.best"):
        load_config(data=tiny(out, **{"val.best": "perturbed/qabf"}))  # no val.perturb


def _other_trainable_models() -> list[str]:
    from ftpfusion_ros.losses.registry import _LOSSES, _load_all
    from ftpfusion_ros.models import model_names
    from ftpfusion_ros.models.registry import model_class

    _load_all()
    return [m for m in model_names() if model_class(m).learned and m in _LOSSES and m != "ftpfusion"]


@pytest.mark.parametrize("model", _other_trainable_models())
def test_trainer_is_model_agnostic(tmp_path, model):
    cfg = load_config(data=tiny(tmp_path, model=model, model_config={}, loss={}, steps=1,
                                **{"val.every": 0, "val.frames": 2, "val.loss_clips": 0,
                                   "log.tensorboard": False}))
    trainer = Trainer(cfg)
    trainer.fit()
    trainer.close()
    assert load_checkpoint(model, tmp_path / "last.pt").name == model


def test_resume_continues_exactly(tmp_path):
    over = {"val.every": 0, "log.tensorboard": False, "steps": 4}
    straight = Trainer(load_config(data=tiny(tmp_path / "a", **over)))
    straight.fit()
    straight.close()
    first = Trainer(load_config(data=tiny(tmp_path / "b", **over)))
    assert first.fit(stop_at=2)["step"] == 2
    first.close()
    resumed = Trainer(load_config(data=tiny(tmp_path / "b", **over)), resume=tmp_path / "b")
    assert resumed.step == 2
    resumed.fit()
    resumed.close()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a state whose weights were replaced is refused
    (tmp_path / "b" / "last.pt").write_bytes(b"not the checkpoint")
    with pytest.raises(RuntimeError, match="sha256"):
        Trainer(load_config(data=tiny(tmp_path / "b", **over)), resume=tmp_path / "b")


def test_init_from_warm_starts_and_refuses_weights_of_another_shape(tmp_path):
    over = {"val.every": 0, "log.tensorboard": False, "steps": 2}
    source = Trainer(load_config(data=tiny(tmp_path / "src", **over)))
    source.fit()
    source.close()
    warm = Trainer(load_config(data=tiny(tmp_path / "warm", **over, init_from=str(tmp_path / "src" / "last.pt"))))
    a, b = source.model.state_dict(), warm.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # starts from the source's weights, not a fresh init
    warm.close()
    with pytest.raises(ValueError, match="do not fit"):
        Trainer(load_config(data=tiny(tmp_path / "bad", **over, init_from=str(tmp_path / "src" / "last.pt"),
                                      model_config={"channels": [4, 8, 16]})))
    with pytest.raises(FileNotFoundError):
        Trainer(load_config(data=tiny(tmp_path / "none", **over, init_from=str(tmp_path / "missing.pt"))))


def test_init_from_a_checkpoint_without_new_modules_keeps_their_start_and_refuses_extra_weights(tmp_path):
    """A warm start from weights saved before the guide and gate convolutions existed: every weight the
    source has is taken, the new modules keep their (zero / gate_init) start; weights the target model
    does not have are refused."""
    over = {"val.every": 0, "log.tensorboard": False, "steps": 1}
    old_layout = {"channels": [4, 8, 8], "guided_head": False, "sharpen_gate": False}
    source = Trainer(load_config(data=tiny(tmp_path / "src", **over, model_config=old_layout)))
    source.fit()
    source.close()
    warm = Trainer(load_config(data=tiny(tmp_path / "warm", **over, init_from=str(tmp_path / "src" / "last.pt"))))
    a, b = source.model.state_dict(), warm.model.state_dict()
    assert set(b) - set(a) == {"decoder.guide.weight", "decoder.guide.bias", "decoder.gate.weight",
                               "decoder.gate.bias"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not b["decoder.guide.weight"].any() and torch.all(b["decoder.gate.bias"] == -2.0)
    warm.fit()  # its last.pt has the guide and gate weights
    warm.close()
    with pytest.raises(ValueError, match="does not have"):
        Trainer(load_config(data=tiny(tmp_path / "back", **over, model_config=old_layout,
                                      init_from=str(tmp_path / "warm" / "last.pt"))))


def test_init_from_a_longer_network_window_cuts_the_temporal_tables(tmp_path):
    """net_window 5 -> 3: SCAM's frame encodings keep their 3 newest rows, the refinement's relative-offset
    biases their centre (offsets -2..2); every other weight is taken as it is."""
    over = {"val.every": 0, "log.tensorboard": False, "steps": 1}
    source = Trainer(load_config(data=tiny(tmp_path / "src", **over, model_config={"channels": [4, 8, 8], "net_window": 5})))
    with torch.no_grad():
        source.model.refine.rel_bias.copy_(torch.arange(9.0))
    source.fit()
    source.close()
    warm = Trainer(load_config(data=tiny(tmp_path / "warm", **over, init_from=str(tmp_path / "src" / "last.pt"),
                                         model_config={"channels": [4, 8, 8], "net_window": 3})))
    a, b = source.model.state_dict(), warm.model.state_dict()
    for i in range(3):
        assert torch.equal(b[f"dfam.{i}.scam.pe_time"], a[f"dfam.{i}.scam.pe_time"][:3])
    assert torch.equal(b["refine.rel_bias"], a["refine.rel_bias"][2:7])
    assert all(torch.equal(a[k], b[k]) for k in b if "pe_time" not in k and k != "refine.rel_bias")
    warm.close()
    with pytest.raises(ValueError, match="do not fit"):  # a longer window cannot be made up
        Trainer(load_config(data=tiny(tmp_path / "long", **over, init_from=str(tmp_path / "src" / "last.pt"),
                                      model_config={"channels": [4, 8, 8], "net_window": 7})))


def test_torchrun_two_processes_gloo_end_with_identical_weights(tmp_path):
    """`torchrun --nproc_per_node=2 -m ftpfusion_ros.cli.main train` on CPU (gloo). At the end the trainer
    compares every rank's weights with rank 0's (broadcast) and records the largest difference."""
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny(tmp_path / "run", **{"val.every": 0, "steps": 2})))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "ftpfusion_ros.cli.main", "train", "--config", str(cfg_path), "--quiet"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained ftpfusion to step 2/2" in proc.stdout
    meta = yaml.safe_load((tmp_path / "run" / "last.yaml").read_text())
    assert meta["ddp"] == {"world_size": 2, "max_replica_divergence": 0.0}
    assert meta["hardware"]["world_size"] == 2 and meta["command"].startswith("ftpfusion train --config")
    # the processes trained on different samples: a one-process run of the same config ends elsewhere
    single = Trainer(load_config(cfg_path, ["out_dir=" + str(tmp_path / "one"), "log.tensorboard=false"]))
    single.fit()
    single.close()
    two = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert any(not torch.equal(two[k], v) for k, v in single.model.state_dict().items())
