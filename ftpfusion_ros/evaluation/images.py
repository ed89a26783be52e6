"""Evaluation on folders of independent image pairs (TNO / RoadScene / MSRS layout).

Every pair is fused on its own by every entry — an :class:`EngineEntry` is a labelled engine config
(model, checkpoint, model options), so one model can appear in several rows (e.g. with and without an
option) — through the streaming engine with a one-frame ring (T = 1) that is reset for every pair
(:func:`ftpfusion_ros.runtime.offline.fuse_single`). Pairs are scored with the spatial metrics only
(temporal metrics need a video) by the video evaluation's :class:`.scoring.SequenceScorer`, and the
results come back as :class:`.runner.EvalResults` (one "sequence" per pair, one frame each), so the
video evaluation's reports (metrics.json, CSV, Markdown, bar charts) are written unchanged; means are
over pairs, each pair weighing the same.

Metric inputs as in the video evaluation: BT.601 Y of the fused and of the engine's visible frame, and
the engine's registered 8-bit IR (AGC for 16-bit IR). For fused images made elsewhere
(:func:`evaluate_image_predictions`), 16-bit IR is mapped with one percentile window per image and IR is
resized onto the visible frame when the sizes differ (what the engine does without a homography).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..data.image_pairs import ImagePair, images_by_stem
from ..metrics import METRICS, SPATIAL_METRICS, resolved_conventions
from ..metrics.common import ir_to_8bit
from ..runtime import EngineConfig
from .runner import EvalResults, SequenceResult, base_label, read_prediction
from .scoring import SequenceScorer

#: the setting name of image rows in the reports (inputs are used as given, not perturbed)
SETTING = "clean"


@dataclass
class EngineEntry:
    """One row of an image evaluation: a label and the engine config that produces it."""

    label: str
    config: EngineConfig


def parse_scoped_model_options(items: Sequence[str] | None, models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--model-option`` items -> {model: {key: value}}.

    ``KEY=VALUE`` applies to every model of the run (as ``ftpfusion fuse --model-option`` applies to its
    one model); ``MODEL:KEY=VALUE`` to that model only, so options of a learned model need not be
    accepted by the classical baselines run next to it. Values are YAML, as for fuse.
    """
    from ..runtime import parse_model_options

    out: dict[str, dict[str, Any]] = {m: {} for m in models}
    for part in (p.strip() for item in items or [] for p in item.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        scope, colon, key = key.rpartition(":") if ":" in key else ("", "", key)
        if colon and scope.strip() not in out:
            raise ValueError(f"--model-option {part!r}: model {scope.strip()!r} is not evaluated "
                             f"(models: {', '.join(models)})")
        parsed = parse_model_options(f"{key}{sep}{value}")
        for m in [scope.strip()] if colon else models:
            out[m].update(parsed)
    return out


def model_entries(models: Sequence[str], base: EngineConfig | None = None,
                  checkpoints: Mapping[str, str] | None = None,
                  model_options: Mapping[str, Mapping[str, Any]] | None = None) -> list[EngineEntry]:
    """One entry per model name, labelled by the name: `base` (device, precision, ...) with the model's
    checkpoint and options over it."""
    from ..models import model_names

    base = base or EngineConfig()
    checkpoints, model_options = dict(checkpoints or {}), dict(model_options or {})
    if not models:
        raise ValueError("no models to evaluate")
    unknown = [m for m in models if m not in model_names()]
    if unknown:
        raise ValueError(f"unknown models {unknown}; available: {', '.join(model_names())}")
    extra = sorted((set(checkpoints) | {m for m, o in model_options.items() if o}) - set(models))
    if extra:
        raise ValueError(f"checkpoints or model options given for models not evaluated: {extra}")
    return [EngineEntry(m, dataclasses.replace(base, model=m, checkpoint=checkpoints.get(m),
                                               model_options=dict(model_options.get(m, {}))))
            for m in models]


def with_bases(entries: Sequence[EngineEntry]) -> list[EngineEntry]:
    """Each learned model's entry followed by its weight-free base (``refine=false``, labelled
    :func:`.runner.base_label`), so the report shows what the network adds."""
    from ..models import model_class

    out = []
    for e in entries:
        out.append(e)
        if model_class(e.config.model).learned:
            opts = {**e.config.model_options, "refine": False}
            out.append(EngineEntry(base_label(e.label), dataclasses.replace(e.config, model_options=opts)))
    return out


def image_metrics(names: Sequence[str] | None) -> list[str]:
    """The spatial metrics to score (all by default); temporal ones are an error for independent images."""
    if names is None:
        return list(SPATIAL_METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; available: {', '.join(SPATIAL_METRICS)}")
    temporal = [n for n in names if n not in SPATIAL_METRICS]
    if temporal:
        raise ValueError(f"temporal metrics {temporal} need a video; independent image pairs are scored with "
                         f"the spatial metrics {', '.join(SPATIAL_METRICS)}")
    return list(names)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc="eval images", unit="image", dynamic_ncols=True)


def _meta(mode: str, names: list[str], conventions, pairs: Sequence[ImagePair], t_start: float) -> dict[str, Any]:
    return {
        "schema": "ftpfusion-eval/1",
        "mode": mode,
        "flow": None,
        "conventions": resolved_conventions(conventions),
        "units": {n: METRICS[n].unit for n in names},
        "higher_is_better": {n: METRICS[n].higher_is_better for n in names},
        "spatial_stride": 1,
        "frames": 1, "stride": 1,
        "inputs": "luminance 0..255: BT.601 Y of fused and visible BGR images, IR 8-bit (engine-registered, "
                  "AGC for 16-bit)",
        "mean": "per-pair values averaged over image pairs (equal weight), NaN ignored",
        # the shared report format says "sequence"; here each one is an image pair of one frame
        "sequence": "image pair",
        "pairs": {p.name: {"ir": str(p.ir_path), "vis": str(p.vis_path)} for p in pairs},
        "wall_s": round(time.perf_counter() - t_start, 2),
    }


def _checked_inputs(metrics: Sequence[str] | None, pairs: Sequence[ImagePair], rows: Any, what: str) -> list[str]:
    """The metric names to score, after refusing an empty run (no pairs, or no `what` to score)."""
    names = image_metrics(metrics)
    if not pairs:
        raise ValueError("no image pairs to evaluate")
    if not rows:
        raise ValueError(f"no {what} to evaluate")
    return names


def evaluate_image_pairs(pairs: Sequence[ImagePair], entries: Sequence[EngineEntry],
                         metrics: Sequence[str] | None = None,
                         conventions: Mapping[str, Mapping[str, Any]] | None = None,
                         progress: bool = True) -> EvalResults:
    """Fuse every pair with every entry's engine (each pair on its own) and score the spatial metrics."""
    from ..runtime.offline import fuse_single, single_image_engine

    names = _checked_inputs(metrics, pairs, entries, "models")
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate row labels: {labels}")
    t_start = time.perf_counter()
    # all engines first: a bad checkpoint or option fails before any image is read
    engines = {e.label: single_image_engine(e.config) for e in entries}
    rows: list[SequenceResult] = []
    with _progress(len(pairs) * len(entries), progress) as bar:
        for pair in pairs:
            bar.set_description(f"eval images {pair.name}")
            ir, vis = pair.read()
            results = {}
            for lab, engine in engines.items():
                results[lab] = fuse_single(engine, ir, vis, pair.name)
                bar.update(1)
            # every engine registers the same way (same AGC defaults, no homography): score against the
            # first one's sources, as the video runner does
            src = results[labels[0]]
            scorer = SequenceScorer(labels, names, conventions=conventions)
            scorer.add(src.aligned_ir, src.aligned_vis_bgr, {lab: r.fused_bgr for lab, r in results.items()})
            for lab, vals in scorer.results().items():
                rows.append(SequenceResult(SETTING, lab, pair.name, 1, vals, results[lab].latency_ms))
    meta = _meta("images", names, conventions, pairs, t_start)
    meta["models"] = {lab: {"model": e.config.model, "checkpoint": engines[lab].config.checkpoint,
                            "model_options": dict(e.config.model_options), "device": str(engines[lab].device),
                            "window": engines[lab].window}
                      for lab, e in zip(labels, entries)}
    meta["bases"] = {lab: base_label(lab) for lab in labels if base_label(lab) in labels}
    return EvalResults(rows, {}, meta)


def match_image_predictions(folder: str | Path, pairs: Sequence[ImagePair], label: str) -> dict[str, Path]:
    """{pair name: fused image} of a folder named like the pairs (``NAME.png``, any image extension)."""
    by_stem = images_by_stem(Path(folder), f"--pred {label}")
    missing = [p.name for p in pairs if p.name not in by_stem]
    if missing:
        shown = ", ".join(missing[:8]) + (f" ... (+{len(missing) - 8} more)" if len(missing) > 8 else "")
        raise ValueError(f"--pred {label}: no fused image in {folder} for {len(missing)} of {len(pairs)} "
                         f"pairs: {shown}")
    return {p.name: by_stem[p.name] for p in pairs}


def evaluate_image_predictions(pairs: Sequence[ImagePair], preds: Mapping[str, str | Path],
                               metrics: Sequence[str] | None = None,
                               conventions: Mapping[str, Mapping[str, Any]] | None = None,
                               progress: bool = True) -> EvalResults:
    """Score fused images made elsewhere: ``preds`` = {label: folder with one ``NAME.*`` per pair}."""
    from ..runtime.registration import register_ir

    names = _checked_inputs(metrics, pairs, preds, "prediction folders")
    t_start = time.perf_counter()
    files = {lab: match_image_predictions(d, pairs, lab) for lab, d in preds.items()}
    labels = list(preds)
    rows: list[SequenceResult] = []
    with _progress(len(pairs) * len(labels), progress) as bar:
        for pair in pairs:
            ir, vis = pair.read()
            ir8 = ir_to_8bit(ir)  # 16-bit: one percentile window over this image
            h, w = vis.shape[:2]
            ir8 = register_ir(ir8, (w, h), None)
            fused = {lab: read_prediction(files[lab][pair.name]) for lab in labels}
            scorer = SequenceScorer(labels, names, conventions=conventions)
            try:
                scorer.add(ir8, vis, fused)
            except ValueError as exc:  # a fused image of another size than the visible one
                raise ValueError(f"pair {pair.name}: {exc}") from None
            for lab, vals in scorer.results().items():
                rows.append(SequenceResult(SETTING, lab, pair.name, 1, vals))
            bar.update(len(labels))
    meta = _meta("image_predictions", names, conventions, pairs, t_start)
    meta["predictions"] = {lab: str(d) for lab, d in preds.items()}
    meta["inputs"] = ("luminance 0..255: BT.601 Y of fused and visible BGR images, IR 8-bit (16-bit IR: one "
                      "0.5/99.5-percentile window per image; resized onto the visible size if it differs)")
    return EvalResults(rows, {}, meta)
