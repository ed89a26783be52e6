"""`ftpfusion train --config FILE`: train a learned model (see docs/training.md).

Multi-GPU / multi-process: ``torchrun --nproc_per_node=N -m ftpfusion_ros.cli.main train --config FILE``.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="train config YAML (e.g. config/train/ftpfusion.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, VALUE parsed as YAML (repeatable), e.g. --set optim.lr=1e-4")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="PATH",
                        help="continue from a training state (an out_dir or its train_state.pt; "
                             "without PATH: the config's out_dir)")
    parser.add_argument("--out", help="output folder (overrides out_dir)")
    parser.add_argument("--steps", type=int, help="total optimiser steps (overrides steps)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides device)")
    parser.add_argument("--stop-at", type=int, metavar="STEP",
                        help="stop after this step (state saved; continue later with --resume)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..training.config import load_config
    from ..training.trainer import Trainer

    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"out_dir={args.out}")
    if args.steps is not None:
        overrides.append(f"steps={args.steps}")
    if args.device:
        overrides.append(f"device={args.device}")
    if args.quiet:
        overrides.append("log.progress=false")
    cfg = load_config(args.config, overrides)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    resume = None
    if args.resume is not None:
        resume = args.resume or cfg.out_dir
    command = "ftpfusion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trainer = Trainer(cfg, resume=resume, command=command)
    try:
        summary = trainer.fit(stop_at=args.stop_at)
    finally:
        trainer.close()
    if trainer.is_main:
        best = summary["best"]
        best_txt = f"best {best['metric']}={best['value']:.4g} at step {best['step']}" if best.get("value") is not None else "no validation"
        print(f"trained {cfg.model} to step {summary['step']}/{summary['steps']} in {summary['wall_time_s']:.1f} s; "
              f"{best_txt}; checkpoints in {summary['out_dir']}")
    return 0
