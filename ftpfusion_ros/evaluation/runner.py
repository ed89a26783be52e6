"""The ROS-free evaluation runner: models through the streaming engine, or fused frames made elsewhere.

``evaluate_models`` feeds every sequence (optionally perturbed by FTPFusion's protocol, see
:mod:`ftpfusion_ros.data.perturb`) through one :class:`~ftpfusion_ros.runtime.FusionEngine` per model,
exactly as the ROS node runs (causal by default), and scores all models in lock-step frame by frame
(:class:`.scoring.SequenceScorer`). ``evaluate_predictions`` scores fused frames from folders.

Metric inputs: fused and visible luminance = BT.601 Y of the BGR frames; IR = the engine's registered
8-bit IR (after its thermal AGC for 16-bit input). For prediction folders, 16-bit IR is mapped to 8 bit
with one percentile window per sequence (:func:`ftpfusion_ros.metrics.common.ir_to_8bit`).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import cv2
import numpy as np

from ..data.perturb import ClipPerturber, PerturbConfig
from ..data.sequences import IMAGE_EXTENSIONS, SequencePair, natural_key
from ..metrics import METRICS, resolved_conventions
from ..metrics.common import apply_ir_window, ir_window
from ..metrics.flow import DEFAULT_FLOW, get_flow
from .scoring import SequenceScorer, split_metrics


@dataclass
class EvalConfig:
    """What to evaluate and how; see ``ftpfusion eval --help`` for the user-facing description."""

    models: list[str] = field(default_factory=list)
    checkpoints: dict[str, str] = field(default_factory=dict)
    #: {model: {config key: value}} over the checkpoint's config (``--model-option``)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: also run every learned model's weight-free base (the same model with ``refine=false``) next to it,
    #: labelled :func:`base_label`, so the report shows what the network adds
    bases: bool = True
    device: str = "auto"
    precision: str = "auto"
    lookahead: int = 0
    allow_untrained: bool = False
    #: IR->visible registration YAML (`ftpfusion calibrate`) for every engine; None: IR resized only
    registration_file: str | None = None
    #: further engine settings of runtime/settings.py by name (e.g. window, agc.mode), checked there;
    #: the fields above win where both name one
    engine_settings: dict[str, Any] = field(default_factory=dict)
    #: evaluate at most this many frames per sequence (after striding); None = all
    frames: int | None = None
    #: use every stride-th input frame (temporal metrics then see stride-times larger motion)
    stride: int = 1
    perturb: PerturbConfig | None = None
    #: with an active perturbation, also run the clean setting (reported side by side)
    include_clean: bool = True
    metrics: list[str] | None = None
    conventions: dict[str, dict[str, Any]] = field(default_factory=dict)
    flow: str = DEFAULT_FLOW
    #: spatial metrics on every k-th frame only (they cost ~0.25 s per 640x480 frame and model)
    spatial_stride: int = 1
    #: temporal-slice column: fraction of the width (float in [0, 1]) or a pixel index (int)
    slice_column: float | int = 0.5
    progress: bool = True

    def settings(self) -> list[tuple[str, PerturbConfig]]:
        if self.perturb is not None and self.perturb.active:
            out = [("clean", PerturbConfig(seed=self.perturb.seed))] if self.include_clean else []
            return out + [("perturbed", self.perturb)]
        return [("clean", self.perturb or PerturbConfig())]


@dataclass
class SequenceResult:
    setting: str
    model: str
    sequence: str
    frames: int
    metrics: dict[str, float]
    latency_ms: float | None = None


@dataclass
class EvalResults:
    rows: list[SequenceResult]
    #: {(setting, sequence): {"ir" | "visible" | model: (H, T) uint8 temporal slice}}
    slices: dict[tuple[str, str], dict[str, np.ndarray]]
    meta: dict[str, Any]

    @property
    def settings(self) -> list[str]:
        return list(dict.fromkeys(r.setting for r in self.rows))

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.rows))

    @property
    def sequences(self) -> list[str]:
        return list(dict.fromkeys(r.sequence for r in self.rows))

    @property
    def metric_names(self) -> list[str]:
        names = dict.fromkeys(n for r in self.rows for n in r.metrics)
        return [n for n in METRICS if n in names]

    def select(self, setting: str, model: str) -> list[SequenceResult]:
        return [r for r in self.rows if r.setting == setting and r.model == model]

    def mean(self, setting: str, model: str) -> dict[str, float]:
        """Mean over sequences (each sequence weighs the same), NaNs ignored."""
        rows = self.select(setting, model)
        out = {}
        for n in self.metric_names:
            arr = np.asarray([r.metrics.get(n, math.nan) for r in rows], dtype=np.float64)
            out[n] = float(np.nanmean(arr)) if np.isfinite(arr).any() else math.nan
        return out

    def mean_latency(self, setting: str, model: str) -> float | None:
        vals = [r.latency_ms for r in self.select(setting, model) if r.latency_ms is not None]
        return float(np.mean(vals)) if vals else None


def _selected(pair: SequencePair, frames: int | None, stride: int) -> tuple[int, int]:
    """(stop, count): read input frames [0, stop), keep every stride-th, count of kept frames."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    n = len(pair)
    count = (n + stride - 1) // stride
    if frames is not None:
        count = min(count, frames)
    stop = min(n, (count - 1) * stride + 1)
    return stop, count


def _iter_frames(pair: SequencePair, frames: int | None, stride: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    stop, _ = _selected(pair, frames, stride)
    for i, item in enumerate(pair.frames(0, stop)):
        if i % stride == 0:
            yield item


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="frame", dynamic_ncols=True)


def _base_meta(cfg_metrics, flow: str, conventions, spatial_stride: int) -> dict[str, Any]:
    spatial, temporal = split_metrics(cfg_metrics)
    needs_flow = any(METRICS[n].uses_flow for n in temporal)
    return {
        "schema": "ftpfusion-eval/1",
        "flow": get_flow(flow).label if needs_flow else None,
        "conventions": resolved_conventions(conventions),
        "units": {n: METRICS[n].unit for n in (*spatial, *temporal)},
        "higher_is_better": {n: METRICS[n].higher_is_better for n in (*spatial, *temporal)},
        "spatial_stride": spatial_stride,
        "inputs": "luminance 0..255: BT.601 Y of fused and visible BGR frames, IR 8-bit "
                  "(engine-registered, AGC for 16-bit)",
        "mean": "per-sequence values averaged over sequences (equal weight), NaN ignored",
    }


# ------------------------------------------------------------------------------------------- models
def base_label(model: str) -> str:
    """Report label of a learned model's weight-free base (the model with ``refine=false``)."""
    return f"{model} (base)"


def engine_configs(cfg: EvalConfig) -> dict[str, Any]:
    """{report label: EngineConfig}: every model with its checkpoint and options and, with ``cfg.bases``,
    every learned model's base right after it."""
    from ..models import model_class
    from ..runtime.settings import engine_config

    out = {}
    for m in cfg.models:
        # one derivation for every front end: the settings schema checks the values and builds the config
        values = {**cfg.engine_settings, "model": m, "checkpoint": cfg.checkpoints.get(m) or "",
                  "device": cfg.device, "precision": cfg.precision, "lookahead": cfg.lookahead,
                  "allow_untrained": cfg.allow_untrained, "registration_file": cfg.registration_file or ""}
        ec = engine_config(values, model_options=dict(cfg.model_options.get(m, {})))
        out[m] = ec
        if cfg.bases and model_class(m).learned:
            out[base_label(m)] = dataclasses.replace(ec, model_options={**ec.model_options, "refine": False})
    return out


def _check_models(cfg: EvalConfig) -> None:
    from ..models import model_class, model_names

    if not cfg.models:
        raise ValueError("no models to evaluate")
    known = model_names()
    unknown = [m for m in cfg.models if m not in known]
    if unknown:
        raise ValueError(f"unknown models {unknown}; available: {', '.join(known) or '(none registered)'}")
    if len(set(cfg.models)) != len(cfg.models):
        raise ValueError(f"model list has duplicates: {cfg.models}")
    extra = (set(cfg.checkpoints) | {m for m, o in cfg.model_options.items() if o}) - set(cfg.models)
    if extra:
        raise ValueError(f"checkpoints or model options given for models not evaluated: {sorted(extra)}")
    for m, path in cfg.checkpoints.items():
        if not model_class(m).learned:
            raise ValueError(f"model {m!r} is classical and takes no checkpoint")
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint for {m!r} not found: {path}")


def evaluate_models(sequences: Sequence[SequencePair], cfg: EvalConfig,
                    engines: Mapping[str, Any] | None = None) -> EvalResults:
    """Run every model over every sequence (and setting) through the streaming engine and score them.

    ``engines``: {label: FusionEngine} already built (e.g. the trainer's model in memory); by default one
    engine per :func:`engine_configs` entry."""
    from ..runtime import FusionEngine

    if engines is None:
        _check_models(cfg)
        engines = {label: FusionEngine(ec) for label, ec in engine_configs(cfg).items()}
    elif not engines:
        raise ValueError("no engines to evaluate")
    if not sequences:
        raise ValueError("no sequences to evaluate")
    t_start = time.perf_counter()
    labels = list(engines)
    settings = cfg.settings()
    total = sum(_selected(p, cfg.frames, cfg.stride)[1] for p in sequences) * len(settings)
    rows: list[SequenceResult] = []
    slices: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    with _progress(total, cfg.progress, "eval") as bar:
        for setting, pcfg in settings:
            for pair in sequences:
                bar.set_description(f"eval {setting} {pair.name}")
                scorer = SequenceScorer(labels, cfg.metrics, cfg.flow, cfg.conventions, cfg.spatial_stride,
                                        cfg.slice_column)
                latencies = _run_sequence(pair, engines, pcfg, cfg, scorer, bar)
                for model, vals in scorer.results().items():
                    lat = latencies[model]
                    rows.append(SequenceResult(setting, model, pair.name, scorer.frames, vals,
                                               float(np.mean(lat)) if lat else None))
                slices[(setting, pair.name)] = scorer.slice_images()
    meta = _base_meta(cfg.metrics, cfg.flow, cfg.conventions, cfg.spatial_stride)
    meta.update({
        "mode": "models",
        "models": {m: {"model": e.model_name, "checkpoint": e.config.checkpoint, "device": str(e.device),
                       "window": e.window, "model_options": dict(e.config.model_options)}
                   for m, e in engines.items()},
        "bases": {m: base_label(m) for m in engines if base_label(m) in engines},
        "settings": {s: p.to_dict() | {"describe": p.describe()} for s, p in settings},
        "frames": cfg.frames, "stride": cfg.stride, "lookahead": cfg.lookahead,
        "sequences": {p.name: {"ir": str(p.ir_path), "vis": str(p.vis_path), "frames_available": len(p)}
                      for p in sequences},
        "wall_s": round(time.perf_counter() - t_start, 2),
    })
    return EvalResults(rows, slices, meta)


def _run_sequence(pair: SequencePair, engines: Mapping[str, Any], pcfg: PerturbConfig, cfg: EvalConfig,
                  scorer: SequenceScorer, bar) -> dict[str, list[float]]:
    """Stream one sequence through all engines in lock-step, scoring each frame once all models have it."""
    perturber = ClipPerturber(pcfg, pair.name)
    pending: dict[str, dict[int, Any]] = {m: {} for m in engines}
    latencies: dict[str, list[float]] = {m: [] for m in engines}
    next_idx = 0
    first = next(iter(engines))

    def emit() -> None:
        nonlocal next_idx
        while all(next_idx in pending[m] for m in engines):
            results = {m: pending[m].pop(next_idx) for m in engines}
            src = results[first]
            scorer.add(src.aligned_ir, src.aligned_vis_bgr, {m: r.fused_bgr for m, r in results.items()})
            for m, r in results.items():
                latencies[m].append(r.latency_ms)
            next_idx += 1
            bar.update(1)

    for e in engines.values():
        e.reset()
    n_in = 0
    for t, (_, ir, vis) in enumerate(_iter_frames(pair, cfg.frames, cfg.stride)):
        ir, vis = perturber(t, ir, vis)
        enc = "mono16" if ir.dtype == np.uint16 else "mono8"
        for m, e in engines.items():
            res = e.push(ir, vis, enc, "bgr8", stamp=t)
            if res is not None:
                pending[m][res.stamp] = res
        n_in += 1
        emit()
    for m, e in engines.items():
        for res in e.flush():
            pending[m][res.stamp] = res
    emit()
    if next_idx != n_in:
        missing = {m: sorted(set(range(next_idx, n_in)) - set(p)) for m, p in pending.items()}
        raise RuntimeError(f"{pair.name}: engines returned {next_idx} of {n_in} frames; missing {missing}")
    return latencies


# -------------------------------------------------------------------------------------- predictions
def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"prediction folder {folder} does not exist")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise ValueError(f"prediction folder {folder} contains no images")
    return files


def match_predictions(folder: Path, frame_names: Sequence[str]) -> list[Path]:
    """The fused file for every frame: same file stem (as `ftpfusion fuse` writes), else same sorted order."""
    files = _image_files(folder)
    by_stem = {p.stem: p for p in files}
    stems = [Path(n).stem for n in frame_names]
    if all(s in by_stem for s in stems):
        return [by_stem[s] for s in stems]
    if len(files) == len(stems) and not any(s in by_stem for s in stems):
        return files  # renamed consistently (e.g. fused_0001.png): pair by sorted order
    missing = [s for s in stems if s not in by_stem]
    raise ValueError(f"prediction folder {folder} has {len(files)} images for {len(stems)} frames; "
                     f"no fused image for {len(missing)} frames (e.g. {', '.join(missing[:3])})")


def read_prediction(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read fused image {path}")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported pixel type {img.dtype} (expected 8- or 16-bit)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


def _ir_window(pair: SequencePair, frames: int | None, stride: int) -> tuple[float, float] | None:
    """Fixed 16-bit -> 8-bit window (0.5 / 99.5 percentiles over the evaluated frames), None for 8-bit IR."""
    samples = []
    for i, (_, ir, _) in enumerate(_iter_frames(pair, frames, stride)):
        if ir.dtype != np.uint16:
            return None
        if i % 5 == 0:
            samples.append(ir[::4, ::4].ravel())
    return ir_window(np.concatenate(samples))


def evaluate_predictions(entries: Sequence[tuple[SequencePair, Mapping[str, Path]]], frames: int | None = None,
                         stride: int = 1, metrics: Sequence[str] | None = None,
                         conventions: Mapping[str, Mapping[str, Any]] | None = None, flow: str = DEFAULT_FLOW,
                         spatial_stride: int = 1, slice_column: float | int = 0.5,
                         progress: bool = True) -> EvalResults:
    """Score fused frames made elsewhere: ``entries`` = [(sequence, {label: folder of fused frames})]."""
    if not entries:
        raise ValueError("no sequences to evaluate")
    t_start = time.perf_counter()
    rows: list[SequenceResult] = []
    slices = {}
    total = sum(_selected(p, frames, stride)[1] for p, _ in entries)
    with _progress(total, progress, "eval") as bar:
        for pair, preds in entries:
            bar.set_description(f"eval {pair.name}")
            labels = list(preds)
            files = {lab: match_predictions(Path(d), pair.frame_names) for lab, d in preds.items()}
            window = _ir_window(pair, frames, stride)
            scorer = SequenceScorer(labels, metrics, flow, conventions, spatial_stride, slice_column)
            stop, _ = _selected(pair, frames, stride)
            for i, (name, ir, vis) in enumerate(pair.frames(0, stop)):
                if i % stride:
                    continue
                if window is not None:
                    ir = apply_ir_window(ir, window)
                if ir.shape[:2] != vis.shape[:2]:
                    raise ValueError(f"{pair.name}: IR {ir.shape[:2]} and visible {vis.shape[:2]} differ in size; "
                                     "prediction scoring needs registered frames of one size")
                fused = {lab: read_prediction(files[lab][i]) for lab in labels}
                scorer.add(ir, vis, fused)
                bar.update(1)
            for lab, vals in scorer.results().items():
                rows.append(SequenceResult("clean", lab, pair.name, scorer.frames, vals))
            slices[("clean", pair.name)] = scorer.slice_images()
    meta = _base_meta(metrics, flow, conventions, spatial_stride)
    meta.update({
        "mode": "predictions",
        "predictions": {f"{p.name}/{lab}": str(d) for p, preds in entries for lab, d in preds.items()},
        "frames": frames, "stride": stride,
        "wall_s": round(time.perf_counter() - t_start, 2),
    })
    meta["inputs"] = ("luminance 0..255: BT.601 Y of fused and visible BGR frames, IR 8-bit (16-bit IR: one "
                      "0.5/99.5-percentile window per sequence)")
    return EvalResults(rows, slices, meta)

