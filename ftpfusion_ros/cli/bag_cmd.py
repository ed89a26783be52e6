"""`ftpfusion bag`: fuse a rosbag offline into a new rosbag2 with the fused topics added.

Every connection and message of the input is copied (ROS 1 input is converted to ROS 2 messages), with
its receive time. Each IR/visible pair formed by the sync node's approximate-time policy goes through
the same streaming engine as the fusion node, and three topics are added, each with the visible
frame's header (stamp and frame_id) and receive time:
``<prefix>/fused/image`` (bgr8), ``<prefix>/aligned/ir`` (mono8, IR registered onto the visible frame,
after AGC) and ``<prefix>/aligned/visible`` (bgr8). ``--mp4`` also writes an IR | visible | fused video.
"""
from __future__ import annotations

import argparse
import heapq
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from ..data.rosbag_io import BagCopyWriter, SyncedBag, SyncedPair, engine_input, image_message, open_reader
from ..runtime import FusionEngine, FusionResult, SizeChangedError
from .common import add_engine_arguments, engine_config
from .extract_cmd import add_bag_arguments, add_pairing_arguments
from .media import Video, side_by_side

FUSED, ALIGNED_IR, ALIGNED_VIS = "fused/image", "aligned/ir", "aligned/visible"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="rosbag2 directory, .mcap or .db3 file, or ROS 1 .bag file")
    parser.add_argument("--out", required=True, help="output rosbag2 directory (must not exist)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="output storage (default: mcap)")
    parser.add_argument("--prefix", default="", help="namespace of the added topics (default: none, "
                        "i.e. /fused/image, /aligned/ir, /aligned/visible)")
    parser.add_argument("--no-aligned", action="store_true",
                        help="add only the fused topic, not aligned/ir and aligned/visible (smaller bag)")
    parser.add_argument("--mp4", help="also write a side-by-side IR | visible | fused video (mp4v)")
    parser.add_argument("--fps", type=float, help="frame rate of the --mp4 video (default: the visible "
                        "topic's rate in the bag)")
    add_bag_arguments(parser)
    add_pairing_arguments(parser)
    add_engine_arguments(parser)


def output_topics(prefix: str, aligned: bool = True) -> dict[str, str]:
    ns = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return {key: f"{ns}/{key}" for key in ((FUSED, ALIGNED_IR, ALIGNED_VIS) if aligned else (FUSED,))}


def fused_stream(engine: FusionEngine, synced: SyncedBag) -> Iterator[tuple[int, int, FusionResult]]:
    """(visible receive time, 1, result) for every pair, in order; look-ahead results flushed at the end.

    The constant 1 sorts fused messages after the original message with the same receive time.
    """
    engine.reset()
    for pair in synced:
        ir, ir_enc = engine_input(pair.ir.image, pair.ir.encoding, "ir")
        vis, vis_enc = engine_input(pair.vis.image, pair.vis.encoding, "vis")
        try:
            res = engine.push(ir, vis, ir_enc, vis_enc, stamp=pair)
        except SizeChangedError:
            # a camera that changed resolution starts a new stream, as in the fusion node: the frames the
            # look-ahead still holds are due first, then the ring starts afresh
            for old in engine.flush():
                yield old.stamp.vis.log_time_ns, 1, old
            engine.reset()
            res = engine.push(ir, vis, ir_enc, vis_enc, stamp=pair)
        if res is not None:
            yield res.stamp.vis.log_time_ns, 1, res
    for res in engine.flush():
        yield res.stamp.vis.log_time_ns, 1, res


def run(args: argparse.Namespace) -> int:
    synced = SyncedBag(args.input, args.ir_topic, args.vis_topic, args.slop, args.queue_size,
                       pairing=args.pairing, max_ir_age=args.max_ir_age)
    out = Path(args.out)
    if out.exists():
        raise ValueError(f"output {out} exists already; remove it or choose another --out")
    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    topics = output_topics(args.prefix, aligned=not args.no_aligned)
    engine = FusionEngine(engine_config(args))
    video = Video(Path(args.mp4), args.fps or synced.nominal_fps()) if args.mp4 else None

    with open_reader(args.input) as reader:
        writer = BagCopyWriter(out, reader, args.storage)
        try:
            for topic in topics.values():
                writer.add_image_topic(topic)
            copied = ((t, 0, (conn, raw)) for conn, t, raw in reader.messages())
            # Merge by receive time so the output is in time order as if recorded live.
            merged = heapq.merge(copied, fused_stream(engine, synced), key=lambda item: item[:2])
            with tqdm(total=synced.max_pairs, desc=f"bag [{engine.model_name}]", unit="pair") as bar:
                for log_time, kind, payload in merged:
                    if kind == 0:
                        conn, raw = payload
                        writer.copy(conn, log_time, raw)
                        continue
                    res: FusionResult = payload
                    pair: SyncedPair = res.stamp
                    header = pair.vis.header
                    writer.write_image(topics[FUSED], log_time, image_message(res.fused_bgr, "bgr8", header))
                    if ALIGNED_IR in topics:
                        writer.write_image(topics[ALIGNED_IR], log_time,
                                           image_message(res.aligned_ir, "mono8", header))
                        writer.write_image(topics[ALIGNED_VIS], log_time,
                                           image_message(res.aligned_vis_bgr, "bgr8", header))
                    if video is not None:
                        video.write(side_by_side(res))
                    bar.update(1)
        except BaseException:
            writer.abort()
            if video is not None and video.writer is not None:  # only a video this run started
                video.close()
                video.path.unlink(missing_ok=True)
            raise
        writer.close()
        if video is not None:
            video.close()

    stats = synced.stats
    fused = writer.counts[topics[FUSED]]
    print(f"wrote {out} ({args.storage}): all {writer.copied} input messages + {fused} "
          f"fused frames on {', '.join(topics.values())} (model {engine.model_name}, device {engine.device}); "
          f"unpaired: {stats.received[0] - stats.sets_formed} IR, {stats.received[1] - stats.sets_formed} "
          f"visible; max |skew| {stats.skew_abs_max_s * 1e3:.2f} ms")
    if video is not None:
        print(f"wrote {args.mp4} ({video.frames} frames, {video.fps:.2f} fps, IR | visible | fused)")
    return 0

