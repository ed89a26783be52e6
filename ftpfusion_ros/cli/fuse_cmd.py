"""`ftpfusion fuse`: fuse a registered IR/visible sequence into one PNG per input frame.

Inputs: two frame folders (matched by sorted file name), an MP4 pair, or a rosbag (pairs formed by the
sync node's approximate-time policy, frames named 000001, ... as `ftpfusion extract` names them).
Frames go through the same streaming engine as the ROS node (causal by default), so offline results are
what the robot sees. With ``--images`` the inputs are independent pairs of any sizes (benchmark layout
``ROOT/{ir,vi}/NAME.png``, see ftpfusion_ros/data/image_pairs.py), each fused on its own into ``NAME.png``.
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
from .extract_cmd import add_bag_arguments, add_pairing_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ir", help="IR frame folder or .mp4")
    parser.add_argument("--vis", help="visible frame folder or .mp4")
    parser.add_argument("--bag", help="rosbag (rosbag2 dir/.mcap/.db3 or ROS 1 .bag) instead of --ir/--vis")
    parser.add_argument("--images", nargs="?", const="", metavar="ROOT",
                        help="independent image pairs of any sizes, each fused on its own: ROOT/{ir,vi}/NAME.png "
                             "(also vis/, infrared/, visible/, any case), or --images --ir DIR --vis DIR")
    parser.add_argument("--out", required=True, help="output folder (one PNG per input frame or pair)")
    add_engine_arguments(parser)
    add_bag_arguments(parser)
    add_pairing_arguments(parser)


def _source(args: argparse.Namespace):
    """(frames, count, name) of the input the arguments name."""
    if args.bag:
        if args.ir or args.vis:
            raise ValueError("give either --bag or --ir/--vis, not both")
        synced = SyncedBag(args.bag, args.ir_topic, args.vis_topic, args.slop, args.queue_size,
                           pairing=args.pairing, max_ir_age=args.max_ir_age)
        return synced.engine_frames(), synced.max_pairs, Path(args.bag).stem
    if not (args.ir and args.vis):
        raise ValueError("--ir and --vis are both required (or --bag)")
    pair = open_pair(args.ir, args.vis)
    return pair.frames(), len(pair), pair.name


def _run_images(args: argparse.Namespace) -> int:
    from ..data.image_pairs import find_image_pairs
    from ..runtime.offline import fuse_single, single_image_engine

    if args.bag or args.window not in (None, 1) or args.lookahead:
        raise ValueError("--images fuses each pair on its own (one frame, no look-ahead): "
                         "--bag, --window and --lookahead do not apply")
    pairs = find_image_pairs(args.images or None, args.ir, args.vis)
    engine = single_image_engine(engine_config(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for pair in tqdm(pairs, desc=f"fuse images [{engine.model_name}]", unit="pair"):
        res = fuse_single(engine, *pair.read(), name=pair.name)
        path = out / f"{pair.name}.png"
        if not cv2.imwrite(str(path), res.fused_bgr):
            raise RuntimeError(f"could not write {path}")
    print(f"wrote {len(pairs)} fused images to {out} (model {engine.model_name}, device {engine.device})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.images is not None:
        return _run_images(args)
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
