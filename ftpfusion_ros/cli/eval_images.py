"""`ftpfusion eval --images`: the command-line glue of the image-pair evaluation.

Kept apart from eval_cmd.py (which only adds the arguments and dispatches here); the evaluation itself
is ftpfusion_ros/evaluation/images.py.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def _inapplicable(args: argparse.Namespace) -> list[str]:
    """Video-evaluation options given with --images: an error rather than silently ignored."""
    given = (("--data", bool(args.data)), ("--sequences", bool(args.sequences)), ("--frames", args.frames is not None),
             ("--stride", args.stride != 1), ("--perturb", bool(args.perturb)), ("--no-clean", args.no_clean),
             ("--lookahead", args.lookahead != 0), ("--spatial-stride", args.spatial_stride != 1))
    return [flag for flag, on in given if on]


def run_images(args: argparse.Namespace, models: list[str], checkpoints: dict[str, str],
               preds: dict[str, Path]) -> int:
    from ..data.image_pairs import find_image_pairs
    from ..evaluation import write_outputs
    from ..evaluation.images import (evaluate_image_pairs, evaluate_image_predictions, image_metrics,
                                     model_entries, parse_scoped_model_options, with_bases)
    from ..metrics import parse_conventions
    from ..runtime import EngineConfig

    bad = _inapplicable(args)
    if bad:
        raise ValueError(f"{', '.join(bad)} not applicable with --images (independent pairs, one image each)")
    metrics = image_metrics([m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None)
    conventions = parse_conventions(args.conventions)
    pairs = find_image_pairs(args.images or None, args.ir, args.vis)
    t0 = time.perf_counter()
    if models:
        base = EngineConfig(device=args.device, precision=args.precision, allow_untrained=args.allow_untrained)
        entries = model_entries(models, base, checkpoints, parse_scoped_model_options(args.model_option, models))
        if not args.no_bases:
            entries = with_bases(entries)
        res = evaluate_image_pairs(pairs, entries, metrics, conventions, progress=not args.no_progress)
    else:
        if checkpoints or args.model_option:
            raise ValueError("--checkpoint and --model-option apply to --models runs only")
        res = evaluate_image_predictions(pairs, preds, metrics, conventions, progress=not args.no_progress)
    paths = write_outputs(res, args.out, plots=not args.no_plots)
    md = (Path(args.out) / "metrics.md").read_text().split("## Mean over sequences", 1)[1].split("\n## ", 1)[0]
    print(f"Mean over {len(pairs)} image pairs:" + md.rstrip())
    print(f"wrote {len(paths)} files to {args.out} (metrics.json, tables{'' if args.no_plots else ', plots'}) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0
