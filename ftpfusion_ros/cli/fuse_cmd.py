"""`ftpfusion fuse`: fuse a registered IR/visible sequence into one PNG per input frame.

Frame folders are matched by sorted file name; MP4 pairs are accepted too. Frames go through the same
streaming engine as the ROS node (causal by default), so offline results are what the robot sees.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from tqdm import tqdm

from ..data.sequences import open_pair
from ..runtime import FusionEngine
from ..runtime.offline import stream_frames
from .common import add_engine_arguments, engine_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ir", required=True, help="IR frame folder or .mp4")
    parser.add_argument("--vis", required=True, help="visible frame folder or .mp4")
    parser.add_argument("--out", required=True, help="output folder (one PNG per input frame)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    pair = open_pair(args.ir, args.vis)
    engine = FusionEngine(engine_config(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    with tqdm(total=len(pair), desc=f"fuse {pair.name} [{engine.model_name}]", unit="frame") as bar:
        for name, res in stream_frames(engine, pair.frames()):
            path = out / (Path(name).stem + ".png")
            if not cv2.imwrite(str(path), res.fused_bgr):
                raise RuntimeError(f"could not write {path}")
            written += 1
            bar.update(1)
    print(f"wrote {written} fused frames to {out} (model {engine.model_name}, device {engine.device})")
    return 0
