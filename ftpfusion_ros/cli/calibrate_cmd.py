"""`ftpfusion calibrate`: estimate the IR -> visible registration and write it as YAML (+ an overlay PNG).

    ftpfusion calibrate --ir DIR|MP4 --vis DIR|MP4 --out registration.yaml
    ftpfusion calibrate --bag BAG [--ir-topic T --vis-topic T] --out registration.yaml
    ftpfusion calibrate ... --target checkerboard:9x6      (heated target seen by both cameras)

The YAML's ``homography`` (3x3, row-major, IR pixel -> visible pixel) is what `--registration` and the
node's ``registration_file`` take. A degenerate input stops with a one-line error and writes nothing.
See docs/calibration.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from ..data.rosbag_io import SyncedBag
from ..data.sequences import open_pair
from ..runtime.calibration import (MODELS, estimate_from_scenes, estimate_from_target, overlay, parse_target,
                                   pick_evenly, sample_pairs)
from ..runtime.registration import save_registration
from .extract_cmd import add_bag_arguments

#: frame pairs sampled from the input by default: scenes (mean edge maps) / target (point sets)
DEFAULT_FRAMES = 16
DEFAULT_TARGET_FRAMES = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("input")
    src.add_argument("--ir", help="IR frame folder or video (with --vis)")
    src.add_argument("--vis", help="visible frame folder or video (with --ir)")
    src.add_argument("--bag", help="rosbag (rosbag2 dir/.mcap/.db3 or ROS 1 .bag) instead of --ir/--vis")
    parser.add_argument("--out", required=True, help="registration YAML to write")
    parser.add_argument("--overlay", help="overlay PNG (checkerboard of warped IR and visible; default: next to "
                                          "--out, named <out>_overlay.png)")
    parser.add_argument("--no-overlay", action="store_true", help="write no overlay image")
    parser.add_argument("--model", choices=MODELS, default="homography",
                        help="mapping model (default: homography)")
    parser.add_argument("--full-model", action="store_true",
                        help="scenes: fit all of the model's degrees of freedom; by default the estimate starts as a "
                             "similarity and keeps shear, unequal scales and perspective only where they clearly "
                             "improve the fit")
    parser.add_argument("--target", metavar="KIND:COLSxROWS",
                        help="heated calibration target instead of ordinary scenes: checkerboard:COLSxROWS "
                             "(inner corners) or circles:COLSxROWS")
    parser.add_argument("--frames", type=int,
                        help=f"frame pairs sampled evenly over the input (default {DEFAULT_FRAMES}; "
                             f"{DEFAULT_TARGET_FRAMES} with --target)")
    add_bag_arguments(parser)


def _sample(args: argparse.Namespace, k: int) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], str]:
    """k frame pairs spread over the input, and a name for it."""
    if args.bag:
        if args.ir or args.vis:
            raise ValueError("give either --bag or --ir/--vis, not both")
        synced = SyncedBag(args.bag, args.ir_topic, args.vis_topic, args.slop, args.queue_size)
        return sample_pairs(synced.frames(), synced.max_pairs, k), Path(args.bag).name
    if not (args.ir and args.vis):
        missing = "--vis" if args.ir else "--ir" if args.vis else "--ir and --vis"
        raise ValueError(f"{missing} missing: calibration needs both cameras (or --bag)")
    pair = open_pair(args.ir, args.vis)
    if all(Path(p).is_dir() for p in (args.ir, args.vis)):
        # frame folders: random access is cheap, read only the sampled frames
        return [pair.read(i) for i in pick_evenly(len(pair), k)], pair.name
    return sample_pairs(pair.frames(), len(pair), k), pair.name


def run(args: argparse.Namespace) -> int:
    if args.target:
        parse_target(args.target)  # a malformed spec fails before any reading
    k = args.frames or (DEFAULT_TARGET_FRAMES if args.target else DEFAULT_FRAMES)
    if k < 1:
        raise ValueError("--frames must be >= 1")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the YAML file to write")
    ov_path = None if args.no_overlay else Path(args.overlay) if args.overlay else \
        out.with_name(out.stem + "_overlay.png")

    cv2.setNumThreads(1)  # small images, many calls: threads cost more than they give (and the robot is busy)
    pairs, name = _sample(args, k)
    print(f"calibrating on {len(pairs)} frame pairs of {name} "
          f"({'target ' + args.target if args.target else 'ordinary scenes'}, model {args.model})")

    def log(msg: str) -> None:
        print(f"  {msg}")

    if args.target:
        reg = estimate_from_target(pairs, args.target, args.model, log=log)
    else:
        reg = estimate_from_scenes(pairs, args.model, full=args.full_model, log=log)

    # Everything that can fail is done before the first byte is written.
    image = None
    if ov_path is not None:
        used = set(reg.frames_used)
        frames = [p for p in pairs if p[0] in used] or pairs
        _, ir, vis = frames[len(frames) // 2]
        image = overlay(ir, vis, reg.homography)
    data = reg.to_dict()
    save_registration(out, data)
    if image is not None:
        ov_path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(ov_path), image):
            raise RuntimeError(f"could not write the overlay image {ov_path}")

    h = reg.homography
    rows = "\n".join("  [" + ", ".join(f"{v: .6g}" for v in row) + "]" for row in h)
    print(f"homography (IR {reg.ir_size[0]}x{reg.ir_size[1]} pixel -> visible {reg.vis_size[0]}x{reg.vis_size[1]} "
          f"pixel):\n{rows}")
    print(f"residual {reg.residual_px:.2f} px RMS "
          + ("(agreement of frame subsets at the IR image corners)" if reg.score >= 0 else
             "(target points, after the fit)")
          + (f", edge correlation {reg.score:.3f}" if reg.score >= 0 else "")
          + f"; {len(reg.frames_used)} of {reg.frames_considered} frame pairs used")
    print(f"wrote {out}" + (f" and {ov_path}" if ov_path is not None else ""))
    sys.stdout.flush()
    return 0
