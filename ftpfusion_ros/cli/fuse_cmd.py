"""`ftpfusion fuse`: fuse a registered IR/visible sequence into one PNG per input frame.

Inputs: two frame folders (matched by sorted file name), an MP4 pair, or a rosbag (pairs formed by the
sync node's approximate-time policy, frames named 000001, ... as `ftpfusion extract` names them).
Frames go through the same streaming engine as the ROS node (causal by default), so offline results are
what the robot sees.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from tqdm import tqdm

from ..data.rosbag_io import SyncedBag
from ..data.sequences import open_pair
from ..runtime import FusionEngine
from ..runtime.offline import stream_frames
from .common import add_engine_arguments, engine_config
from .extract_cmd import add_bag_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ir", help="IR frame folder or .mp4")
    parser.add_argument("--vis", help="visible frame folder or .mp4")
    parser.add_argument("--bag", help="rosbag (rosbag2 dir/.mcap/.db3 or ROS 1 .bag) instead of --ir/--vis")
    parser.add_argument("--out", required=True, help="output folder (one PNG per input frame)")
    add_engine_arguments(parser)
    add_bag_arguments(parser)


def _source(args: argparse.Namespace):
    """(frames, count, name) of the input the arguments name."""
    if args.bag:
        if args.ir or args.vis:
            raise ValueError("give either --bag or --ir/--vis, not both")
        synced = SyncedBag(args.bag, args.ir_topic, args.vis_topic, args.slop, args.queue_size)
        return synced.engine_frames(), synced.max_pairs, Path(args.bag).stem
    if not (args.ir and args.vis):
        raise ValueError("--ir and --vis are both required (or --bag)")
    pair = open_pair(args.ir, args.vis)
    return pair.frames(), len(pair), pair.name


def run(args: argparse.Namespace) -> int:
    frames, total, name = _source(args)
    engine = FusionEngine(engine_config(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    with tqdm(total=total, desc=f"fuse {name} [{engine.model_name}]", unit="frame") as bar:
        for frame_name, res in stream_frames(engine, frames):
            path = out / (Path(frame_name).stem + ".png")
            if not cv2.imwrite(str(path), res.fused_bgr):
                raise RuntimeError(f"could not write {path}")
            written += 1
            bar.update(1)
    print(f"wrote {written} fused frames to {out} (model {engine.model_name}, device {engine.device})")
    return 0
