"""`ftpfusion export`: write a model's full-window forward as a torch.export program or ONNX graph."""
from __future__ import annotations

import argparse

from ..runtime import EngineConfig, FusionEngine
from ..runtime.export import FORMATS, export_model
from .common import parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="ftpfusion", help="model name (default ftpfusion)")
    parser.add_argument("--checkpoint", help="state_dict checkpoint (default: the packaged one)")
    parser.add_argument("--out", required=True, help="output file (.pt2 or .onnx)")
    parser.add_argument("--format", choices=FORMATS, help="default: from the output file's suffix")
    parser.add_argument("--size", default="640x480", help="fixed frame size WxH (default 640x480)")
    parser.add_argument("--frames", type=int, help="fixed window length T (default: the model's)")


def run(args: argparse.Namespace) -> int:
    fmt = args.format or args.out.rsplit(".", 1)[-1]
    w, h = parse_size(args.size)
    # the engine resolves the checkpoint exactly as the node does (packaged default, clear errors)
    engine = FusionEngine(EngineConfig(model=args.model, checkpoint=args.checkpoint, device="cpu"))
    frames = args.frames or engine.window
    path = export_model(engine.model, args.out, fmt, frames, w, h)
    print(f"exported {args.model} ({fmt}, T={frames}, {w}x{h}) to {path}")
    return 0
