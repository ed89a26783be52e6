"""`ftpfusion eval`: score models (through the streaming engine) or fused frames made elsewhere.

    ftpfusion eval --data ROOT --models average,max_luminance [--perturb flicker=1,jitter=0.25,misalign=2] --out DIR
    ftpfusion eval --pred DIR --ir DIR --vis DIR --out DIR
    ftpfusion eval --pred NAME=PRED_ROOT --data ROOT --out DIR      (PRED_ROOT/<sequence>/*.png)
    ftpfusion eval --images ROOT --models average,ftpfusion --out DIR   (ROOT/{ir,vi}/NAME.png, spatial metrics)
    ftpfusion eval --images ROOT --pred NAME=DIR --out DIR              (DIR/NAME.png per pair)

Writes OUT/metrics.json (per model: per-sequence and mean values keyed by lower-case metric name),
CSV and Markdown tables and plots; see ftpfusion_ros/evaluation/report.py and docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..metrics import ALL_METRICS, FLOW_METHODS, DEFAULT_FLOW, parse_conventions
from ..runtime import settings

#: engine settings with a form of their own here (per-model checkpoints and options) or not evaluated
EVAL_OWN_FORM = {"model", "checkpoint", "model_options", "registration_file", "allow_untrained", "backend",
                 "onnx_dir"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("inputs")
    src.add_argument("--data", help="dataset root: ROOT/<seq>/{ir,vis}/*.png or ROOT/{infrared,visible}/<seq>.mp4")
    src.add_argument("--ir", help="one sequence: IR frame folder or .mp4 (with --vis)")
    src.add_argument("--vis", help="one sequence: visible frame folder or .mp4 (with --ir)")
    src.add_argument("--images", nargs="?", const="", metavar="ROOT",
                     help="independent image pairs (TNO/RoadScene/MSRS layout ROOT/{ir,vi}/NAME.png, or --images "
                          "--ir DIR --vis DIR), each fused on its own; spatial metrics only, mean over pairs")
    src.add_argument("--sequences", help="comma-separated sequence names to keep (default: all under --data)")
    src.add_argument("--models", help="comma-separated model names to run through the streaming engine")
    src.add_argument("--pred", action="append", metavar="[NAME=]DIR",
                     help="fused frames made elsewhere (repeatable): a frame folder for --ir/--vis, or a root "
                          "with one sub-folder per sequence for --data; NAME defaults to the folder name")
    src.add_argument("--out", required=True, help="output folder")
    run = parser.add_argument_group("run")
    run.add_argument("--frames", type=int, help="evaluate only the first N frames of each sequence (after --stride)")
    run.add_argument("--stride", type=int, default=1, help="use every k-th input frame (default 1)")
    run.add_argument("--perturb", metavar="SPEC",
                     help="FTPFusion perturbations applied before fusion, e.g. flicker=1,jitter=0.25,misalign=2 "
                          "(also offset=K frames); the clean setting runs too unless --no-clean")
    run.add_argument("--no-clean", action="store_true", help="with --perturb: skip the clean setting")
    run.add_argument("--seed", type=int, default=0, help="perturbation seed (default 0)")
    # --device, --precision, --window, --lookahead and the thermal gain control (--agc-*) from the engine
    # settings schema (runtime/settings.py), as `fuse` and the node take them
    settings.add_arguments(run, exclude=EVAL_OWN_FORM,
                           defaults_override={"device": "auto", "precision": "auto", "lookahead": 0})
    run.add_argument("--checkpoint", action="append", metavar="MODEL=PATH",
                     help="checkpoint of a learned model (repeatable or comma-separated)")
    run.add_argument("--registration", metavar="FILE",
                     help="with --models: IR->visible registration YAML of `ftpfusion calibrate` for the engine")
    run.add_argument("--model-option", action="append", metavar="[MODEL:]KEY=VALUE",
                     help="model config key over the checkpoint's (repeatable or comma-separated); "
                          "KEY=VALUE for every model, MODEL:KEY=VALUE for one")
    run.add_argument("--no-bases", action="store_true",
                     help="do not run each learned model's weight-free base (refine=false) next to it")
    run.add_argument("--allow-untrained", action="store_true",
                     help="run learned models without a checkpoint (random weights; for smoke tests)")
    met = parser.add_argument_group("metrics")
    met.add_argument("--metrics", help=f"comma-separated subset (default all): {','.join(ALL_METRICS)}")
    met.add_argument("--conventions", metavar="SPEC",
                     help="metric conventions: a preset (mmif = defaults, vfbench = mean over sources) and/or "
                          "metric=value / metric.param=value, e.g. vif=mean,qabf=reference_code,mi.unit=bits")
    met.add_argument("--flow", default=DEFAULT_FLOW, choices=FLOW_METHODS[:4],
                     help=f"optical flow of the temporal metrics (default {DEFAULT_FLOW})")
    met.add_argument("--spatial-stride", type=int, default=1,
                     help="spatial metrics on every k-th frame only (default 1: all frames)")
    met.add_argument("--slice-column", type=float, default=0.5,
                     help="temporal-slice column: fraction of the width if <= 1, else a pixel index (default 0.5)")
    out = parser.add_argument_group("output")
    out.add_argument("--no-plots", action="store_true", help="write tables only")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _checkpoints(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in (x for it in items or [] for x in _split(it)):
        if "=" not in item:
            raise ValueError(f"--checkpoint {item!r}: expected MODEL=PATH")
        model, path = (s.strip() for s in item.split("=", 1))
        out[model] = path
    return out


def _pred_dirs(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        if name in out:
            raise ValueError(f"--pred name {name!r} given twice; use NAME=DIR to tell them apart")
        out[name] = Path(path)
    return out


def _sequences(args: argparse.Namespace):
    from ..data.sequences import find_sequences, open_pair, select_sequences

    if args.data and (args.ir or args.vis):
        raise ValueError("give either --data or --ir/--vis, not both")
    if args.data:
        seqs = find_sequences(args.data)
    elif args.ir and args.vis:
        seqs = [open_pair(args.ir, args.vis)]
    else:
        raise ValueError("no input: give --data ROOT or --ir DIR --vis DIR")
    return select_sequences(seqs, _split(args.sequences))


def run(args: argparse.Namespace) -> int:
    from ..data.perturb import parse_perturb
    from ..evaluation import EvalConfig, evaluate_models, evaluate_predictions, write_outputs

    if bool(args.models) == bool(args.pred):
        raise ValueError("give exactly one of --models (run models) or --pred (score fused frames)")
    if args.registration and not (args.models and args.images is None):
        raise ValueError("--registration applies to --models runs on sequences (not --pred or --images)")
    if args.images is not None:
        from .eval_images import run_images

        return run_images(args, _split(args.models), _checkpoints(args.checkpoint), _pred_dirs(args.pred or []))
    metrics = _split(args.metrics) or None
    if metrics:
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; available: {', '.join(ALL_METRICS)}")
    conventions = parse_conventions(args.conventions)
    if args.frames is not None and args.frames < 1:
        raise ValueError("--frames must be >= 1")
    if args.stride < 1 or args.spatial_stride < 1:
        raise ValueError("--stride and --spatial-stride must be >= 1")
    slice_col: float | int = args.slice_column if args.slice_column <= 1 else int(args.slice_column)
    seqs = _sequences(args)
    t0 = time.perf_counter()
    if args.models:
        perturb = parse_perturb(args.perturb, seed=args.seed)
        if args.no_clean and not perturb.active:
            raise ValueError("--no-clean needs an active --perturb")
        from ..evaluation.images import parse_scoped_model_options

        models = _split(args.models)
        options = parse_scoped_model_options(args.model_option, models)
        engine_settings = settings.values_from_args(args, exclude=EVAL_OWN_FORM)
        cfg = EvalConfig(models=models, checkpoints=_checkpoints(args.checkpoint), device=args.device,
                         model_options=options, bases=not args.no_bases, engine_settings=engine_settings,
                         precision=args.precision, lookahead=args.lookahead, allow_untrained=args.allow_untrained,
                         frames=args.frames, stride=args.stride, perturb=perturb, include_clean=not args.no_clean,
                         metrics=metrics, conventions=conventions, flow=args.flow,
                         spatial_stride=args.spatial_stride, slice_column=slice_col,
                         progress=not args.no_progress, registration_file=args.registration)
        res = evaluate_models(seqs, cfg)
    else:
        if args.perturb or args.checkpoint:
            raise ValueError("--perturb and --checkpoint apply to --models runs only")
        preds = _pred_dirs(args.pred)
        if args.data:
            # PRED_ROOT/<sequence>/ per sequence; a root holding images directly only fits a single sequence
            entries = []
            for seq in seqs:
                per = {}
                for lab, root in preds.items():
                    sub = root / seq.name
                    if sub.is_dir():
                        per[lab] = sub
                    elif len(seqs) == 1 and root.is_dir():
                        per[lab] = root
                    else:
                        raise FileNotFoundError(f"--pred {lab}: no folder {sub} for sequence {seq.name!r}")
                entries.append((seq, per))
        else:
            entries = [(seqs[0], preds)]
        res = evaluate_predictions(entries, frames=args.frames, stride=args.stride, metrics=metrics,
                                   conventions=conventions, flow=args.flow, spatial_stride=args.spatial_stride,
                                   slice_column=slice_col, progress=not args.no_progress)
    paths = write_outputs(res, args.out, plots=not args.no_plots)
    wall = time.perf_counter() - t0
    md = (Path(args.out) / "metrics.md").read_text().split("## Mean over sequences", 1)[1].split("\n## ", 1)[0]
    print("Mean over sequences:" + md.rstrip())
    print(f"wrote {len(paths)} files to {args.out} (metrics.json, tables, plots) in {wall:.1f} s")
    return 0
