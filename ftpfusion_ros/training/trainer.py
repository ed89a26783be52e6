"""The trainer: any learned model of the registry with its registered loss, from a :class:`TrainConfig`.

One step: ``model.forward_train(ir, vis)`` on a batch of clips (under autocast on CUDA), the model's
loss ``build_loss(model_name, config.loss)``, AdamW with warm-up + cosine decay, gradient clipping.
The patch-size curriculum switches from small to large patches at ``curriculum.switch`` of the steps.
Validation streams held-out frames through the temporal ring exactly as the engine does (causal,
frame by frame, one encode per frame) and scores the fused frames with :mod:`ftpfusion_ros.metrics`.

Files in ``out_dir``: ``last.pt`` / ``best.pt`` (plain state_dicts + YAML sidecars with the model
config, metrics, command, steps, wall time, hardware and sha256), ``train_state.pt`` (optimizer,
scheduler, scaler, step, best, RNG; refers to last.pt by sha256), ``config.yaml`` (the resolved train
config), ``tb/`` (TensorBoard) and ``synthetic_data/`` when the config generates its data.

Determinism: sample i is a pure function of (seed, i) (see :mod:`ftpfusion_ros.data.clips`), and the
torch generator is re-seeded from (seed, rank, step) before every step (the models' training-time
randomness, e.g. FTPFusion's temporal perturbation), so a resumed run continues exactly where it
stopped, on CPU bit for bit.
"""
from __future__ import annotations

import logging
import math
import os
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.clips import ClipDataset, DecodedSequence, PerturbAugment, decode_sequence, fixed_clips
from ..losses import build_loss
from ..models import build_model
from ..models.registry import default_config, model_class
from ..runtime.checkpoint import read_state, save_checkpoint, sha256_of, sidecar_path
from ..runtime.device import resolve_device
from . import ddp
from .config import TrainConfig
from .schedule import Curriculum, StepBatchSampler, WarmupCosine

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"


class _TrainForward(nn.Module):
    """Routes DistributedDataParallel's forward to ``model.forward_train`` (DDP only synchronises
    gradients for computations that go through its own forward)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ir: torch.Tensor, vis: torch.Tensor):
        return self.model.forward_train(ir, vis)


def step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for training, or None for fp32. Mixed precision is used on CUDA only."""
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "auto":
            return None
        raise ValueError(f"amp: {amp} needs CUDA (mixed precision is only used on GPUs); use amp: auto or off")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("amp: bf16 is not supported by this GPU; use fp16")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def hardware_info(device: torch.device, world_size: int) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "world_size": world_size, "torch": torch.__version__,
                            "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _plain(x: Any) -> Any:
    """YAML-safe copy (numpy scalars, tuples, paths -> plain Python)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, (Path, str)):
        return str(x)  # also str subclasses such as torch.__version__
    return x


# ---------------------------------------------------------------------------------------------- data
def synthetic_dataset(cfg: TrainConfig, root: Path) -> Path:
    """Write the config's synthetic sequences under `root` once (skipped when already complete)."""
    from ..data.synthetic import SceneConfig, SyntheticScene

    syn = cfg.data.synthetic
    assert syn is not None
    for i in range(syn.sequences):
        name = f"synthetic_{i:02d}"
        done = root / name / ".complete"
        if done.exists():
            continue
        scene_cfg = SceneConfig.from_dict({**syn.scene, "width": syn.width, "height": syn.height,
                                           "seed": syn.seed + i})
        SyntheticScene(scene_cfg).write_folders(root, syn.frames, sequence=name)
        done.write_text("")
    return root


def split_sequences(cfg: TrainConfig, root: Path):
    """(train pairs, val pairs) from the data root and the config's sequence names."""
    from ..data.sequences import find_sequences

    pairs = {p.name: p for p in find_sequences(root)}
    val_names = list(cfg.data.val_sequences)
    if not val_names and cfg.data.synthetic is not None and len(pairs) > 1:
        val_names = [sorted(pairs)[-1]]  # synthetic data: hold out the last sequence
    missing = [n for n in val_names + list(cfg.data.train_sequences or []) if n not in pairs]
    if missing:
        raise ValueError(f"sequences {missing} not found under {root}; available: {', '.join(sorted(pairs))}")
    train_names = cfg.data.train_sequences or [n for n in sorted(pairs) if n not in val_names]
    if not train_names:
        raise ValueError(f"no training sequences left under {root} after holding out {val_names}")
    return [pairs[n] for n in train_names], [pairs[n] for n in val_names]


# ------------------------------------------------------------------------------------------- trainer
class Trainer:
    def __init__(self, config: TrainConfig, resume: str | Path | None = None, command: str | None = None) -> None:
        self.cfg = cfg = config
        self.command = command or " ".join(shlex.quote(a) for a in sys.argv)
        if resume is not None:  # fail before any data is generated or decoded
            resume = Path(resume)
            if not (resume / STATE_FILE if resume.is_dir() else resume).is_file():
                raise FileNotFoundError(f"training state {resume / STATE_FILE if resume.is_dir() else resume} "
                                        f"does not exist (resume from an out_dir or its {STATE_FILE})")
        cls = model_class(cfg.model)
        if not cls.learned:
            raise ValueError(f"model {cfg.model!r} has no weights to train (classical models need no training)")

        device = resolve_device(cfg.device)
        self.dist = ddp.setup(device, cfg.ddp.backend)
        self.device = ddp.process_device(device, self.dist)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.is_main = self.dist.is_main
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.out_dir = Path(cfg.out_dir)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)

        # identical initial weights in every process (DDP also broadcasts rank 0's at wrap time)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)
        self.model_config = {**default_config(cfg.model), **cfg.model_config}
        try:
            self.model = build_model(cfg.model, cfg.model_config).to(self.device)
        except TypeError as exc:
            raise ValueError(f"model_config does not build {cfg.model!r}: {exc}") from None
        if cfg.init_from and resume is None:
            self._warm_start(Path(cfg.init_from).expanduser())
        try:
            self.loss_fn = build_loss(cfg.model, cfg.loss).to(self.device)
        except TypeError as exc:
            raise ValueError(f"loss config {cfg.loss} does not fit the {cfg.model!r} loss: {exc}") from None
        self.window = int(getattr(self.model, "window", 1))
        self.multiple = int(getattr(self.model, "size_multiple", 1))
        for name in ("patch_small", "patch_large"):
            patch = getattr(cfg.curriculum, name)
            if patch % self.multiple:
                raise ValueError(f"curriculum.{name} = {patch} must be a multiple of model {cfg.model!r}'s "
                                 f"size_multiple ({self.multiple})")

        self.curriculum = Curriculum(cfg.curriculum, cfg.steps, self.dist.world_size)
        self._load_data()

        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                           betas=tuple(cfg.optim.betas))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, WarmupCosine(cfg.steps, cfg.optim.warmup_steps, cfg.optim.min_lr / cfg.optim.lr))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if self.dist.distributed:
            self.train_module: nn.Module = nn.parallel.DistributedDataParallel(
                _TrainForward(self.model), device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.ddp.find_unused_parameters)
        else:
            self.train_module = _TrainForward(self.model)

        self.step = 0
        self.wall_time = 0.0          # training seconds accumulated over runs (resume adds to it)
        self.best: dict[str, Any] = {"metric": cfg.val.best, "value": None, "step": None}
        self.last_metrics: dict[str, float] = {}
        self.base_metrics: dict[str, float] | None = None  # the weight-free base's validation scores (once)
        self.replica_divergence: float | None = None  # max |w - w_rank0| at the end of fit() (DDP)
        if resume is not None:
            self._resume(resume)
        self.writer = None
        if self.is_main and cfg.log.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.out_dir / "tb"))
        if self.is_main:
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))

    def _warm_start(self, path: Path) -> None:
        """Weights of `path` for every parameter they have; parameters the checkpoint lacks (modules added
        since, e.g. FTPFusion's zero-initialised guided head) keep their initialisation and are logged.
        Unexpected keys or other shapes are refused, except what the model adapts itself
        (:meth:`FusionModel.warm_start_state`, e.g. FTPFusion's temporal tables for a shorter window)."""
        state, _ = read_state(self.cfg.model, path)  # FileNotFoundError / CheckpointError with the reason
        state = self.model.warm_start_state(state)
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ValueError(f"init_from {path}: its weights do not fit this model_config: {exc}") from None
        if unexpected:
            raise ValueError(f"init_from {path}: weights this model_config does not have: {unexpected[:5]}")
        if self.is_main:
            log.info("warm start from %s%s", path, f" (new, initialised: {missing})" if missing else "")

    # -------------------------------------------------------------------------------------- data
    def _load_data(self) -> None:
        cfg = self.cfg
        if cfg.data.root is not None:
            root = Path(cfg.data.root).expanduser()
        else:
            root = self.out_dir / "synthetic_data"
            if self.is_main:
                synthetic_dataset(cfg, root)
            ddp.barrier(self.dist)
        train_pairs, val_pairs = split_sequences(cfg, root)
        self.train_names = [p.name for p in train_pairs]
        self.val_names = [p.name for p in val_pairs]
        self.val_pairs = val_pairs
        cache = cfg.data.cache_dir

        # held-out frames are decoded only for the validation loss: the metrics stream them through the engine
        loss_pairs = val_pairs if cfg.val.loss_clips else []

        def decode_all() -> tuple[list[DecodedSequence], list[DecodedSequence]]:
            return ([decode_sequence(p, cfg.data.scale, cfg.data.max_frames, cache) for p in train_pairs],
                    [decode_sequence(p, cfg.data.scale, cfg.data.max_frames, cache) for p in loss_pairs])

        if cache is not None and self.dist.distributed:
            # the main process fills the cache, the others then memory-map it
            if self.is_main:
                decode_all()
            ddp.barrier(self.dist)
        self.train_seqs, self.val_seqs = decode_all()
        self.dataset = ClipDataset(self.train_seqs, cfg.data.clip_len, cfg.curriculum.patch_small,
                                   cfg.data.hflip, cfg.data.vflip, PerturbAugment.from_config(cfg.data.perturb),
                                   seed=cfg.seed)
        for phase in self.curriculum.phases:
            self.dataset.set_patch(phase.patch)  # fail now, not after hours, if a patch does not fit

    def _loader(self, start: int, stop: int) -> DataLoader:
        phase = self.curriculum.phase(start)
        self.dataset.set_patch(phase.patch)
        sampler = StepBatchSampler(self.curriculum, start, stop, self.dist.rank)
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.cfg.data.workers,
                          pin_memory=self.device.type == "cuda")

    # ----------------------------------------------------------------------------------- training
    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, float]:
        torch.manual_seed(step_seed(self.cfg.seed, self.dist.rank, self.step))
        ir = ir.to(self.device, non_blocking=True)
        vis = vis.to(self.device, non_blocking=True)
        with self._autocast():
            fused, aux = self.train_module(ir, vis)
        loss, terms = self.loss_fn(ir, vis, fused.float(), aux)
        finite = torch.isfinite(loss.detach()).float()
        if self.dist.distributed:  # every process must agree, or the others hang in backward
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() < 1:
            raise RuntimeError(f"the training loss is not finite at step {self.step} "
                               f"({ {k: float(v) for k, v in terms.items()} }); lower optim.lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        out = {k: float(v) for k, v in terms.items()}
        out["loss"] = float(loss.detach())
        out["grad_norm"] = float(grad_norm)
        return out

    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train until `stop_at` (default: config.steps); validate, checkpoint; return a summary."""
        cfg = self.cfg
        stop = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        if self.step >= stop:
            log.info("nothing to train: at step %d of %d", self.step, stop)
            return self.summary()
        self.model.train()
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.model}", dynamic_ncols=True,
                   disable=not (self.is_main and cfg.log.progress), file=sys.stderr)
        t_last = time.perf_counter()
        try:
            while self.step < stop:
                phase = self.curriculum.phase(self.step)
                for ir, vis in self._loader(self.step, min(phase.stop, stop)):
                    t0 = time.perf_counter()
                    logs = self.train_step(ir, vis)
                    self.step += 1
                    now = time.perf_counter()
                    self.wall_time += now - t_last
                    step_s, t_last = now - t0, now
                    bar.update(1)
                    if self.step % cfg.log.every == 0 or self.step == stop:
                        self._log_train(logs, phase.patch, phase.batch, step_s, bar)
                    validate = cfg.val.every and self.step % cfg.val.every == 0 and self.step < cfg.steps
                    if validate:
                        self.validate_and_save()
                        t_last = time.perf_counter()  # validation time is not training time
                    elif cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save()
            # the replicas must hold identical weights (checked before the final checkpoint records it)
            self.replica_divergence = ddp.max_param_divergence(self.model, self.dist, self.device)
            if self.replica_divergence > 0:
                raise RuntimeError(f"DDP replicas diverged (max |w - w_rank0| = {self.replica_divergence:g})")
            if self.step >= cfg.steps:
                self.validate_and_save()
            else:
                self.save()  # stopped early (stop_at): keep what is needed to resume
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.flush()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {"step": self.step, "steps": self.cfg.steps, "out_dir": str(self.out_dir), "best": dict(self.best),
                "metrics": dict(self.last_metrics), "wall_time_s": self.wall_time}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        ddp.cleanup(self.dist)

    def _log_train(self, logs: dict[str, float], patch: int, batch: int, step_s: float, bar) -> None:
        logs = ddp.all_reduce_mean(logs, self.dist, self.device)
        lr = self.optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{lr:.2e}", patch=patch)
        if self.writer is None:
            return
        for k, v in logs.items():
            self.writer.add_scalar(f"train/{k}", v, self.step)
        self.writer.add_scalar("train/lr", lr, self.step)
        self.writer.add_scalar("train/patch", patch, self.step)
        self.writer.add_scalar("train/batch_per_process", batch, self.step)
        self.writer.add_scalar("train/sec_per_step", step_s, self.step)

    # --------------------------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Score the model on the held-out sequences exactly as ``ftpfusion eval`` would: the model in memory
        runs in a :class:`~ftpfusion_ros.runtime.FusionEngine` (causal ring, full frames, the engine's
        pre/post-processing) through :func:`ftpfusion_ros.evaluation.runner.evaluate_models`, clean and
        (with ``val.perturb``) perturbed; plus the loss on fixed clips. Keys: clean metrics by name
        (``qabf``), perturbed ones as ``perturbed/qabf``; the weight-free base (``refine=false``, scored
        once) as ``base/qabf``, ``base/perturbed/qabf``. Main process only."""
        from ..data.perturb import parse_perturb
        from ..evaluation.runner import EvalConfig, evaluate_models
        from ..runtime import EngineConfig, FusionEngine

        cfg = self.cfg
        ecfg = EvalConfig(models=[cfg.model], frames=cfg.val.frames, metrics=list(cfg.val.metrics),
                          perturb=parse_perturb(cfg.val.perturb) if cfg.val.perturb else None, progress=False)
        engine_cfg = EngineConfig(model=cfg.model, device=str(self.device))
        was_training = self.model.training
        try:
            engines = {"model": FusionEngine(engine_cfg, model=self.model)}
            if self.base_metrics is None and self.val_pairs and getattr(self.model, "refine_enabled", False):
                engines["base"] = FusionEngine(engine_cfg, model=build_model(
                    cfg.model, {**cfg.model_config, "refine": False}))
            res = evaluate_models(self.val_pairs, ecfg, engines) if self.val_pairs else None
            scores: dict[str, float] = {}
            if res is not None:
                for label, prefix in (("model", ""), ("base", "base/")):
                    if label in engines:
                        for setting in res.settings:
                            key = prefix if setting == "clean" else f"{prefix}{setting}/"
                            scores.update({key + k: v for k, v in res.mean(setting, label).items()})
                if "base" in engines:
                    self.base_metrics = {k: v for k, v in scores.items() if k.startswith("base/")}
            scores.update(self.base_metrics or {})
            if cfg.val.loss_clips:
                scores["loss"] = self._validation_loss()
        finally:
            self.model.train(was_training)
        return scores

    def _validation_loss(self) -> float:
        cfg = self.cfg
        self.model.eval()
        losses = []
        for seq in self.val_seqs:
            clip_len = min(cfg.data.clip_len, len(seq))
            irs, viss = fixed_clips(seq, cfg.val.loss_clips, clip_len, None, self.multiple)
            for i in range(len(irs)):
                ir_c, vis_c = irs[i:i + 1].to(self.device), viss[i:i + 1].to(self.device)
                with self._autocast():
                    # forward_train: losses with auxiliary terms (RPFNet's decoder) see them here too
                    fused, aux = self.model.forward_train(ir_c, vis_c)
                aux = {k: v.float() for k, v in aux.items()}
                losses.append(float(self.loss_fn(ir_c, vis_c, fused.float(), aux)[0]))
        return float(np.mean(losses))

    def _improved(self, metrics: dict[str, float]) -> bool:
        """Better on val.best, and (with val.warp_tolerance) temporally no worse than the base by more than
        that fraction: the perturbed warping error (BiSWE) within (1 + tolerance) x the base's."""
        from ..metrics import METRICS

        name = self.cfg.val.best
        value = metrics.get(name)
        if value is None or not math.isfinite(value):
            return False
        tol = self.cfg.val.warp_tolerance
        if tol is not None:
            key = "perturbed/biswe" if "perturbed/biswe" in metrics else "biswe"
            own, base = metrics.get(key), metrics.get(f"base/{key}")
            if own is not None and base is not None and own > (1.0 + tol) * base:
                return False
        metric = name.rsplit("/", 1)[-1]
        higher = METRICS[metric].higher_is_better if metric in METRICS else False
        best = self.best.get("value")
        return best is None or (value > best if higher else value < best)

    def validate_and_save(self) -> None:
        metrics: dict[str, float] = {}
        if self.is_main and self.val_pairs:
            t0 = time.perf_counter()
            metrics = self.validate()
            log.info("step %d validation (%.1f s): %s", self.step, time.perf_counter() - t0,
                     ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
            if self.writer is not None:
                for k, v in metrics.items():
                    self.writer.add_scalar(f"val/{k}", v, self.step)
            self.last_metrics = metrics
            if self.cfg.val.keep:
                self._save_weights(self.out_dir / f"step{self.step:06d}.pt", metrics)
            if self._improved(metrics):
                self.best = {"metric": self.cfg.val.best, "value": metrics[self.cfg.val.best], "step": self.step}
                self._save_weights(self.out_dir / "best.pt", metrics)
        self.best = ddp.broadcast_object(self.best, self.dist)
        self.save(metrics)

    # -------------------------------------------------------------------------------- checkpoints
    def _sidecar_info(self, metrics: dict[str, float]) -> dict[str, Any]:
        return _plain({
            "metrics": metrics,
            "step": self.step,
            "steps": self.cfg.steps,
            "wall_time_s": round(self.wall_time, 3),
            "command": self.command,
            "hardware": hardware_info(self.device, self.dist.world_size),
            "ddp": {"world_size": self.dist.world_size, "max_replica_divergence": self.replica_divergence},
            "data": {"train": self.train_names, "val": self.val_names, "scale": self.cfg.data.scale},
            "best": self.best,
            "train_config": self.cfg.to_dict(),
        })

    def _save_weights(self, path: Path, metrics: dict[str, float]) -> Path:
        """Write weights + sidecar under temporary names, then rename both (no half-written last.pt)."""
        tmp = path.with_name(f".{path.stem}.tmp.pt")
        save_checkpoint(self.model, tmp, _plain(self.model_config), **self._sidecar_info(metrics))
        os.replace(sidecar_path(tmp), sidecar_path(path))
        os.replace(tmp, path)
        return path

    def save(self, metrics: dict[str, float] | None = None) -> None:
        """last.pt (+ sidecar) and train_state.pt; main process only, the others wait."""
        if self.is_main:
            weights = self._save_weights(self.out_dir / "last.pt", metrics or self.last_metrics)
            np_state = np.random.get_state()
            state = {
                "step": self.step,
                "model": self.cfg.model,
                "model_config": _plain(self.model_config),
                "weights": weights.name,
                "weights_sha256": sha256_of(weights),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "best": _plain(self.best),
                "last_metrics": _plain(self.last_metrics),
                "wall_time_s": self.wall_time,
                "world_size": self.dist.world_size,
                "steps": self.cfg.steps,
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
                        "python": random.getstate()},
            }
            tmp = self.out_dir / f".{STATE_FILE}.tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.out_dir / STATE_FILE)
        ddp.barrier(self.dist)

    def _resume(self, path: Path) -> None:
        state_path = path / STATE_FILE if path.is_dir() else path
        if not state_path.is_file():
            raise FileNotFoundError(f"training state {state_path} does not exist (resume from an out_dir or "
                                    f"its {STATE_FILE})")
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RuntimeError(f"cannot read training state {state_path}: {exc}") from exc
        if state.get("model") != self.cfg.model:
            raise ValueError(f"{state_path} is a {state.get('model')!r} run, the config trains {self.cfg.model!r}")
        if state.get("model_config") != _plain(self.model_config):
            raise ValueError(f"{state_path}: the model config differs from the run being resumed "
                             f"(was {state.get('model_config')}, now {_plain(self.model_config)})")
        weights = state_path.parent / state["weights"]
        if not weights.is_file():
            raise FileNotFoundError(f"weights {weights} referred to by {state_path} do not exist")
        if sha256_of(weights) != state["weights_sha256"]:
            raise RuntimeError(f"{weights} is not the checkpoint {state_path} was saved with (sha256 differs)")
        self.model.load_state_dict(torch.load(weights, map_location=self.device, weights_only=True))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # LambdaLR restores the lambda's attributes from the state; keep this config's schedule
        self.scheduler.lr_lambdas = [WarmupCosine(self.cfg.steps, self.cfg.optim.warmup_steps,
                                                  self.cfg.optim.min_lr / self.cfg.optim.lr)]
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best = dict(state.get("best") or self.best)
        self.last_metrics = dict(state.get("last_metrics") or {})
        self.wall_time = float(state.get("wall_time_s", 0.0))
        if state.get("steps") != self.cfg.steps:
            log.warning("resuming a %s-step run with steps=%d: the learning-rate schedule changes",
                        state.get("steps"), self.cfg.steps)
        if state.get("world_size") != self.dist.world_size:
            log.warning("resuming with %d processes (was %s): samples differ from an uninterrupted run",
                        self.dist.world_size, state.get("world_size"))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np_state = rng["numpy"]
        np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
        random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in rng["python"]))
