"""`ftpfusion bench`: parameters, FLOPs, ms per streamed frame (p50/p99), peak memory and the per-stage
breakdown of a model, with either backend (``--backend onnxruntime --onnx-dir DIR`` for exported graphs)."""
from __future__ import annotations

import argparse
import json

import torch

from ..runtime.benchmark import benchmark
from .common import add_engine_arguments, engine_config, parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    parser.add_argument("--frames", type=int, help="temporal ring length T (default: the model's)")
    parser.add_argument("--steps", type=int, default=30, help="timed streamed frames (default 30)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--stage-steps", type=int, default=10,
                        help="extra streamed frames timed per stage for the breakdown (default 10; 0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    w, h = parse_size(args.size)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = engine_config(args, window=args.frames or args.window)
    if args.steps < 1 or args.stage_steps < 0:
        raise ValueError("--steps must be >= 1 and --stage-steps >= 0")
    result = benchmark(cfg, w, h, steps=args.steps, stage_steps=args.stage_steps)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"model        {result['model']} (T={result['frames']}, {result['precision']}, "
              f"{result['device']}, {result['threads']} threads)")
        backend = result["backend"] + (f" ({', '.join(result['providers'])})" if result["providers"] else "")
        print(f"backend      {backend}")
        print(f"size         {result['size']}")
        if result["params"] is not None:
            print(f"params       {result['params']:,}")
            print(f"FLOPs/frame  {result['flops'] / 1e9:.2f} G")
        print(f"ms/frame     p50 {result['ms_p50']:.1f}  p99 {result['ms_p99']:.1f}  ({result['fps']:.1f} fps)")
        print(f"peak memory  {result['peak_mem_mb']:.0f} MB")
        if result["stages_ms_p50"]:
            print(f"stages       ms per frame, p50 of {result['stage_steps']} frames (nested stages indented)")
            for key, ms in result["stages_ms_p50"].items():
                print(f"  {'  ' * key.count('.')}{key:<{24 - 2 * key.count('.')}} {ms:8.2f}")
    return 0
