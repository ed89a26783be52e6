"""The train config: dataclasses loaded from YAML, strictly (unknown keys and wrong types are errors
that name the key, e.g. ``optim.lr: expected a number, got 'fast'``). See docs/training.md.

Relative paths in the config (data.root, out_dir, data.cache_dir) are relative to the working
directory the command runs in, like any other command-line path.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A train config that cannot be used (raised with the key path and what was wrong)."""


# ---------------------------------------------------------------------------------------- sections
@dataclass
class SyntheticDataConfig:
    """Generate a small synthetic dataset (the project's scene generator) instead of reading data.root."""
    sequences: int = 2           # how many sequences (seeds seed, seed+1, ...); the last is the val one
    frames: int = 16             # frames per sequence
    width: int = 96
    height: int = 80
    seed: int = 0
    scene: dict[str, Any] = field(default_factory=dict)  # extra SceneConfig keys (ir_bit_depth, jitter...)

    def check(self, key: str) -> None:
        _require(self.sequences >= 1, f"{key}.sequences", "must be >= 1")
        _require(self.frames >= 1, f"{key}.frames", "must be >= 1")
        _require(self.width >= 16 and self.height >= 16, f"{key}.width/height", "must be >= 16")


@dataclass
class PerturbAugConfig:
    """The paper's temporal perturbations (ftpfusion_ros.data.perturb) as training augmentation: with
    probability `prob` a clip gets each corruption at a strength drawn uniformly in [0, max]."""
    prob: float = 0.0
    flicker: float = 0.0         # max flicker strength (perturb.py units; paper range 0..2)
    jitter: float = 0.0          # max jitter std in pixels (paper range 0..0.55)
    misalign: float = 0.0        # max local misalignment in pixels (paper range 0..4)
    offset: int = 0              # max IR lag in frames (drawn uniformly in 0..offset)
    flicker_on: Literal["ir", "vis", "both"] = "vis"
    jitter_on: Literal["ir", "vis", "both"] = "both"
    misalign_on: Literal["ir", "vis", "both"] = "ir"

    def check(self, key: str) -> None:
        _require(0.0 <= self.prob <= 1.0, f"{key}.prob", "must be in [0, 1]")
        for name in ("flicker", "jitter", "misalign", "offset"):
            _require(getattr(self, name) >= 0, f"{key}.{name}", "must be >= 0")
        _require(self.flicker < 25, f"{key}.flicker", "must be < 25 (the gain would reach 0)")


@dataclass
class DataConfig:
    root: str | None = None                  # ROOT/<seq>/{ir,vis}/*.png or ROOT/{infrared,visible}/<seq>.mp4
    synthetic: SyntheticDataConfig | None = None  # used when root is not set
    train_sequences: list[str] | None = None  # None: every sequence not held out for validation
    val_sequences: list[str] = field(default_factory=list)
    clip_len: int = 5                        # T consecutive frames per training clip
    scale: float = 1.0                       # resize factor applied once when decoding (0.5: 640x480 -> 320x240)
    max_frames: int | None = None            # decode at most this many frames per sequence
    cache_dir: str | None = "~/.cache/ftpfusion_ros/frames"  # decoded-frame cache (.npy, memory-mapped); null: RAM
    hflip: float = 0.5                       # probability of a horizontal flip (whole clip, both modalities)
    vflip: float = 0.0                       # probability of a vertical flip
    perturb: PerturbAugConfig = field(default_factory=PerturbAugConfig)
    workers: int = 0                         # DataLoader worker processes (0: load in the training process)

    def check(self, key: str) -> None:
        _require(self.root is not None or self.synthetic is not None, f"{key}.root",
                 "is required (or give data.synthetic to generate a synthetic dataset)")
        _require(self.clip_len >= 1, f"{key}.clip_len", "must be >= 1")
        _require(0.0 < self.scale <= 1.0, f"{key}.scale", "must be in (0, 1]")
        _require(self.max_frames is None or self.max_frames >= 1, f"{key}.max_frames", "must be >= 1")
        _require(0.0 <= self.hflip <= 1.0, f"{key}.hflip", "must be in [0, 1]")
        _require(0.0 <= self.vflip <= 1.0, f"{key}.vflip", "must be in [0, 1]")
        _require(self.workers >= 0, f"{key}.workers", "must be >= 0")
        overlap = set(self.train_sequences or []) & set(self.val_sequences)
        _require(not overlap, f"{key}.val_sequences", f"{sorted(overlap)} are also training sequences")
        if self.synthetic is not None:
            self.synthetic.check(f"{key}.synthetic")
        self.perturb.check(f"{key}.perturb")


@dataclass
class OptimConfig:
    lr: float = 2e-4             # AdamW peak learning rate (paper 4.1.3)
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 500      # linear warm-up to lr, then cosine decay to min_lr at the last step
    min_lr: float = 1e-6
    grad_clip: float = 1.0       # max global gradient norm; 0 disables clipping

    def check(self, key: str) -> None:
        _require(self.lr > 0, f"{key}.lr", "must be > 0")
        _require(self.weight_decay >= 0, f"{key}.weight_decay", "must be >= 0")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"{key}.betas",
                 "must be two numbers in [0, 1)")
        _require(self.warmup_steps >= 0, f"{key}.warmup_steps", "must be >= 0")
        _require(0 <= self.min_lr <= self.lr, f"{key}.min_lr", "must be in [0, lr]")
        _require(self.grad_clip >= 0, f"{key}.grad_clip", "must be >= 0")


@dataclass
class CurriculumConfig:
    """Small patches for the first `switch` fraction of steps, then larger ones (paper 4.1.3)."""
    patch_small: int = 128
    batch_small: int = 8
    patch_large: int = 256
    batch_large: int = 2
    switch: float = 0.7

    def check(self, key: str) -> None:
        for name in ("patch_small", "batch_small", "patch_large", "batch_large"):
            _require(getattr(self, name) >= 1, f"{key}.{name}", "must be >= 1")
        _require(0.0 <= self.switch <= 1.0, f"{key}.switch", "must be in [0, 1]")


@dataclass
class ValConfig:
    """Validation on the held-out sequences: the model streams `frames` consecutive frames through the
    temporal ring (causal, like the node) and the fused frames are scored with the project's metrics;
    the loss is also computed on `loss_clips` fixed clips."""
    every: int = 500             # steps between validations (0: only at the end)
    frames: int = 32             # first frames of each held-out sequence, streamed through the engine
    metrics: list[str] = field(default_factory=lambda: ["qabf", "ssim", "en", "flicker"])
    perturb: str | None = None   # also score under this perturbation (e.g. flicker=1,jitter=0.25,misalign=2)
    best: str = "qabf"           # metric that picks best.pt: a clean one (qabf), perturbed/<metric>, or loss
    warp_tolerance: float | None = None  # best.pt must keep the (perturbed) BiSWE within (1 + this) x the
                                 # weight-free base's (needs biswe in metrics); None: no such condition
    loss_clips: int = 4          # clips of clip_len frames for the validation loss (0: none)
    keep: bool = False           # also keep the weights of every validation as step<N>.pt (choose later)

    def check(self, key: str) -> None:
        _require(self.every >= 0, f"{key}.every", "must be >= 0")
        _require(self.frames >= 1, f"{key}.frames", "must be >= 1")
        _require(self.loss_clips >= 0, f"{key}.loss_clips", "must be >= 0")
        setting, _, metric = self.best.rpartition("/")
        _require(self.best == "loss" or (metric in self.metrics and setting in ("", "perturbed")), f"{key}.best",
                 f"must be 'loss', or one of val.metrics {self.metrics}, optionally as perturbed/<metric>")
        _require(not setting or self.perturb is not None, f"{key}.best", "perturbed/... needs val.perturb")
        if self.perturb is not None:
            from ..data.perturb import parse_perturb

            try:
                parse_perturb(self.perturb)
            except ValueError as exc:
                raise ConfigError(f"{key}.perturb: {exc}") from None
        _require(self.warp_tolerance is None or (self.warp_tolerance >= 0 and "biswe" in self.metrics),
                 f"{key}.warp_tolerance", "must be >= 0 and needs biswe in val.metrics")


@dataclass
class LogConfig:
    every: int = 10              # steps between TensorBoard scalar writes
    tensorboard: bool = True
    progress: bool = True        # tqdm progress bar

    def check(self, key: str) -> None:
        _require(self.every >= 1, f"{key}.every", "must be >= 1")


@dataclass
class DDPConfig:
    backend: Literal["auto", "nccl", "gloo"] = "auto"   # auto: nccl on CUDA, gloo on CPU
    find_unused_parameters: bool = False


@dataclass
class TrainConfig:
    model: str = "ftpfusion"
    model_config: dict[str, Any] = field(default_factory=dict)   # overrides of the model's default constants
    loss: dict[str, Any] = field(default_factory=dict)           # keyword arguments of the model's loss
    steps: int = 1000
    seed: int = 0
    device: str = "auto"
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"  # mixed precision, CUDA only (auto: bf16 or fp16)
    out_dir: str = "runs/train"
    checkpoint_every: int = 0    # steps between last.pt/train_state.pt saves (0: at each validation)
    init_from: str | None = None  # warm start: weights of this checkpoint (sidecar and sha256 checked); the
                                  # model_config must give the same parameter shapes. --resume wins over it.
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    val: ValConfig = field(default_factory=ValConfig)
    log: LogConfig = field(default_factory=LogConfig)
    ddp: DDPConfig = field(default_factory=DDPConfig)

    def check(self) -> None:
        _require(self.steps >= 1, "steps", "must be >= 1")
        _require(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value) and hasattr(value, "check"):
                value.check(f.name)
        if self.val.every and not self.data.val_sequences and self.data.synthetic is None:
            raise ConfigError("val.every > 0 needs data.val_sequences (the held-out sequences)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------ loading
def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against type hint `tp` (recursing into dataclasses); ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected one of {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # YAML reads 2e-4 (no dot) as a string; accept numeric strings of that form
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            hint = (" (YAML reads unquoted names such as 0111_1716 as numbers: quote them)"
                    if isinstance(value, (int, float)) and not isinstance(value, bool) else "")
            raise ConfigError(f"{key}: expected a string, got {value!r}{hint}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def build(cls: type, data: Any, key: str = "") -> Any:
    """Instantiate dataclass `cls` from a mapping, strictly."""
    where = key or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in data.items():
        full = f"{key}.{name}" if key else str(name)
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {full!r}{hint}; known keys{' of ' + key if key else ''}: "
                              f"{', '.join(names)}")
        kwargs[name] = _convert(value, hints[name], full)
    return cls(**kwargs)


def set_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=VALUE`` (VALUE parsed as YAML) to a nested mapping in place."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected KEY=VALUE (e.g. optim.lr=1e-4)")
    path, _, raw = assignment.partition("=")
    parts = [p for p in path.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {assignment!r}: empty key")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {assignment!r}: value is not valid YAML: {exc}") from None
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {p!r} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML train config (or use `data`), apply KEY=VALUE overrides, build and check it."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"train config {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a train config must be a mapping of keys, got {type(raw).__name__}")
    else:
        raw = dict(data or {})
    for assignment in overrides or []:
        set_override(raw, assignment)
    try:
        cfg = build(TrainConfig, raw)
        cfg.check()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None
    return cfg
