"""`ftpfusion export`: write a model's full-window forward as a torch.export program or ONNX graph, or
(``--streaming``) the engine's per-frame encoder and window fusion as ONNX graphs plus a manifest."""
from __future__ import annotations

import argparse
import time

from ..runtime import EngineConfig, FusionEngine
from ..runtime.checkpoint import packaged_checkpoint
from ..runtime.export import FORMATS, export_model, export_streaming
from .common import parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="ftpfusion", help="model name (default ftpfusion)")
    parser.add_argument("--checkpoint", help="state_dict checkpoint (default: the packaged one)")
    parser.add_argument("--out", required=True,
                        help="output file (.pt2 or .onnx), or with --streaming the output folder")
    parser.add_argument("--format", choices=FORMATS, help="default: from the output file's suffix")
    parser.add_argument("--streaming", action="store_true",
                        help="write encoder.onnx (one frame -> its cached tensors), fuse_<n>.onnx (the window "
                             "fusion with the stabiliser, one per ring fill n = 1..T) and manifest.json into "
                             "--out, for `--backend onnxruntime` and TensorRT (docs/deployment.md)")
    parser.add_argument("--size", default="640x480",
                        help="fixed frame size WxH, a multiple of the model's size multiple (default 640x480)")
    parser.add_argument("--frames", type=int, help="fixed window length T (default: the model's)")


def run(args: argparse.Namespace) -> int:
    w, h = parse_size(args.size)
    # the engine resolves the checkpoint exactly as the node does (packaged default, clear errors)
    engine = FusionEngine(EngineConfig(model=args.model, checkpoint=args.checkpoint, device="cpu"))
    frames = args.frames or engine.window
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if args.streaming:
        if args.format:
            raise ValueError("--streaming writes ONNX graphs into a folder; --format does not apply")
        checkpoint = args.checkpoint or packaged_checkpoint(engine.model_name)
        t0 = time.perf_counter()
        path = export_streaming(engine.model, args.out, w, h, checkpoint=checkpoint, window=frames,
                                log=lambda msg: print(msg, flush=True))
        print(f"exported {engine.model_name} streaming graphs (window {frames}, {w}x{h}) to {path.parent} "
              f"in {time.perf_counter() - t0:.0f} s")
        return 0
    fmt = args.format or args.out.rsplit(".", 1)[-1]
    path = export_model(engine.model, args.out, fmt, frames, w, h)
    print(f"exported {args.model} ({fmt}, T={frames}, {w}x{h}) to {path}")
    return 0
