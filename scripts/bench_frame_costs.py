"""Per-frame costs that used to be asserted in unit tests (wall-clock figures belong here, printed, not
in tests that run on loaded machines): the synthetic camera simulator's frame pair and the fusion
node's online flicker score.

    python scripts/bench_frame_costs.py [--size 320x240 --size 640x480] [--repeats 5]

Each figure is the best of --repeats runs of 10 frames, as CPU time of one thread (process_time), so
that another process on a shared machine does not count; run it on an idle machine for wall time.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene
from ftpfusion_ros.metrics.online import FlickerMonitor, luma_mean


def best_ms(fn, repeats: int, frames: int = 10) -> float:
    fn(0)  # warm-up (allocations, OpenCV's first call)
    best = float("inf")
    for rep in range(repeats):
        t0 = time.process_time()
        for t in range(frames):
            fn(rep * frames + t)
        best = min(best, (time.process_time() - t0) / frames * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", default=[], help="WxH (repeatable; default 320x240 and 640x480)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.size] or [(320, 240), (640, 480)]
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    for w, h in sizes:
        scene = SyntheticScene(SceneConfig(width=w, height=h, flicker=0.1, jitter=1.0, misalign=1.0,
                                           ir_bit_depth=16))
        sim_ms = best_ms(scene.frame, args.repeats)
        fused = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ir = rng.integers(0, 256, (h, w), dtype=np.uint8)
        monitor = FlickerMonitor()
        flicker_ms = best_ms(lambda _t: monitor.update(luma_mean(fused), luma_mean(ir), luma_mean(fused)),
                             args.repeats)
        print(f"{w}x{h}: synthetic frame pair {sim_ms:.2f} ms CPU, online flicker score {flicker_ms:.3f} ms CPU")


if __name__ == "__main__":
    main()
