"""`ftpfusion extract`: a rosbag -> a synchronised IR/visible dataset.

Writes ``OUT/<sequence>/ir/000001.png``, ``OUT/<sequence>/vis/000001.png``, ... (the dataset layout the
readers, training and evaluation use) and ``OUT/<sequence>/timestamps.csv`` (frame, ir_stamp_ns,
vis_stamp_ns, skew_ns). Frames are paired by the sync node's approximate-time policy; 16-bit thermal
frames are written as 16-bit PNGs (lossless), visible frames as 8-bit BGR PNGs.
"""
from __future__ import annotations

import argparse
import csv
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
from tqdm import tqdm

from ..data.rosbag_io import (DEFAULT_IR_TOPIC, DEFAULT_MAX_IR_AGE_S, DEFAULT_QUEUE_SIZE, DEFAULT_SLOP_S,
                              DEFAULT_VIS_TOPIC, PAIRINGS, SyncedBag, ir_to_dataset, vis_to_bgr)

TIMESTAMPS_FILE = "timestamps.csv"
TIMESTAMPS_COLUMNS = ("frame", "ir_stamp_ns", "vis_stamp_ns", "skew_ns")


def add_bag_arguments(parser: argparse.ArgumentParser) -> None:
    """Topic and pairing options shared by the commands that read a bag."""
    g = parser.add_argument_group("bag")
    g.add_argument("--ir-topic", default=DEFAULT_IR_TOPIC,
                   help=f"IR sensor_msgs/Image or CompressedImage topic (default: {DEFAULT_IR_TOPIC})")
    g.add_argument("--vis-topic", default=DEFAULT_VIS_TOPIC,
                   help=f"visible Image or CompressedImage topic (default: {DEFAULT_VIS_TOPIC})")
    g.add_argument("--slop", type=float, default=DEFAULT_SLOP_S,
                   help=f"approximate-time pairing tolerance in seconds (default: {DEFAULT_SLOP_S})")
    g.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE,
                   help=f"messages kept per topic while pairing (default: {DEFAULT_QUEUE_SIZE})")


def add_pairing_arguments(parser: argparse.ArgumentParser) -> None:
    """The sync node's pairing choice, for the commands that fuse a bag (the same pairs as the node)."""
    g = parser.add_argument_group("pairing")
    g.add_argument("--pairing", choices=PAIRINGS, default="approximate",
                   help="approximate: IR and visible within --slop; latest_ir: every visible frame with the newest "
                        "IR frame no older than --max-ir-age (a slow thermal camera; default: approximate)")
    g.add_argument("--max-ir-age", type=float, default=DEFAULT_MAX_IR_AGE_S,
                   help=f"latest_ir: oldest IR frame still fused, seconds (default: {DEFAULT_MAX_IR_AGE_S})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory, .mcap or .db3 file, or ROS 1 .bag file")
    parser.add_argument("--out", required=True, help="dataset root; frames go to OUT/<sequence>/{ir,vis}/")
    parser.add_argument("--sequence", help="sequence name (default: the bag's name)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the frames of an existing sequence of the same name")
    add_bag_arguments(parser)


def sequence_name(bag: Path) -> str:
    # A rosbag2 directory keeps its whole name (they often contain dots); files lose their suffix.
    return bag.name if bag.is_dir() else bag.stem


def _prepare_output(seq_dir: Path, overwrite: bool) -> None:
    ir_dir, vis_dir = seq_dir / "ir", seq_dir / "vis"
    old = [p for d in (ir_dir, vis_dir) if d.is_dir() for p in d.glob("*.png")]
    stamps = seq_dir / TIMESTAMPS_FILE
    if stamps.exists():
        old.append(stamps)
    if old and not overwrite:
        raise ValueError(f"{seq_dir} already holds a dataset ({len(old)} files); pass --overwrite "
                              "or choose another --sequence/--out")
    for p in old:  # only what this command writes: other files in the folder are the user's
        p.unlink()
    ir_dir.mkdir(parents=True, exist_ok=True)
    vis_dir.mkdir(parents=True, exist_ok=True)


def _write_png(path: Path, img) -> None:
    if not cv2.imwrite(str(path), img):
        raise RuntimeError(f"could not write {path}")


class _Sequence:
    """One output sequence: its folders, timestamps table, PNG writes in flight and the files written
    (removed again if the extraction fails, so that a half-written sequence never passes for a dataset)."""

    def __init__(self, seq_dir: Path, overwrite: bool, pool: ThreadPoolExecutor, backlog: int) -> None:
        _prepare_output(seq_dir, overwrite)
        self.dir, self.pool, self.backlog = seq_dir, pool, backlog
        self.written: list[Path] = []
        self.pending: deque[Future] = deque()
        self.count = 0
        self.desc = ""
        self._fh = (seq_dir / TIMESTAMPS_FILE).open("w", newline="")
        self._table = csv.writer(self._fh)
        self._table.writerow(TIMESTAMPS_COLUMNS)

    def add(self, pair, ir, vis) -> None:
        self.count += 1
        name = f"{self.count:06d}"
        for path, img in ((self.dir / "ir" / f"{name}.png", ir), (self.dir / "vis" / f"{name}.png", vis)):
            self.written.append(path)
            self.pending.append(self.pool.submit(_write_png, path, img))
        self._table.writerow((name, pair.ir.stamp_ns, pair.vis.stamp_ns, pair.skew_ns))
        if not self.desc:
            self.desc = (f"IR {ir.shape[1]}x{ir.shape[0]} {8 * ir.itemsize}-bit ({pair.ir.encoding}), "
                         f"visible {vis.shape[1]}x{vis.shape[0]} ({pair.vis.encoding})")
        while len(self.pending) > self.backlog or (self.pending and self.pending[0].done()):
            self.pending.popleft().result()  # re-raises a failed write here

    def finish(self) -> None:
        while self.pending:
            self.pending.popleft().result()
        self._fh.close()

    def remove(self) -> None:
        for fut in self.pending:
            fut.cancel()
        self._fh.close()
        for path in self.written + [self.dir / TIMESTAMPS_FILE]:
            path.unlink(missing_ok=True)
        for d in (self.dir / "ir", self.dir / "vis", self.dir):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


def run(args: argparse.Namespace) -> int:
    bag_path = Path(args.bag)
    synced = SyncedBag(bag_path, args.ir_topic, args.vis_topic, args.slop, args.queue_size)
    seq = args.sequence or sequence_name(bag_path)
    if not seq or Path(seq).name != seq or seq in (".", ".."):
        raise ValueError(f"invalid sequence name {seq!r}")
    out = Path(args.out)

    # PNG encoding dominates (reading and pairing run at ~150 pairs/s for 640x480); cv2 releases the
    # GIL, so a few writer threads with a bounded backlog keep the cores busy without holding the bag.
    workers = max(1, min(4, os.cpu_count() or 1))
    parts: list[_Sequence] = []
    sizes = None
    try:
        with ThreadPoolExecutor(workers) as pool, \
                tqdm(total=synced.max_pairs, desc=f"extract {seq}", unit="pair") as bar:
            for pair in synced:
                ir = ir_to_dataset(pair.ir.image, pair.ir.encoding)
                vis = vis_to_bgr(pair.vis.image, pair.vis.encoding)
                if (ir.shape[:2], vis.shape[:2]) != sizes:
                    # A camera that changes resolution starts a new sequence: the readers, `fuse` and
                    # `train` need one size per sequence. Parts after the first are named SEQ_02, SEQ_03...
                    if parts:
                        parts[-1].finish()
                    sizes = (ir.shape[:2], vis.shape[:2])
                    name = seq if not parts else f"{seq}_{len(parts) + 1:02d}"
                    parts.append(_Sequence(out / name, args.overwrite, pool, 4 * workers))
                parts[-1].add(pair, ir, vis)
                bar.update(1)
            if parts:
                parts[-1].finish()
    except BaseException:
        for part in parts:
            part.remove()
        raise

    stats = synced.stats
    unpaired_ir = stats.received[0] - stats.sets_formed
    unpaired_vis = stats.received[1] - stats.sets_formed
    for part in parts:
        print(f"wrote {part.count} pairs to {part.dir} ({part.desc})")
    if len(parts) > 1:
        print(f"the image size changed {len(parts) - 1} time(s): one sequence per size")
    if synced.skipped:
        print(f"skipped {len(synced.skipped)} malformed message(s) (and their pairs); the first: {synced.skipped[0]}")
    print(f"unpaired: {unpaired_ir} IR, {unpaired_vis} visible; skew IR-visible mean "
          f"{stats.skew_mean_s * 1e3:.2f} ms, max |skew| {stats.skew_abs_max_s * 1e3:.2f} ms")
    return 0
