"""Streaming speed of FTPFusion on CPU: ms per new frame (encode 1 frame + fuse_window(target=[last]))
with a full ring, p50/min over N steps, plus the process CPU time per frame (with --threads 1 the CPU
time is a load-independent proxy when other jobs share the cores; wall time then is not); optionally
a per-op profile.

    python scripts/bench_ftpfusion_blocks.py --size 320x240 --size 640x480 --threads 2 [--profile]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from ftpfusion_ros.models import build_model


def bench(model: torch.nn.Module, w: int, h: int, steps: int, window: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    frames = [(torch.rand(1, 1, h, w, generator=gen), torch.rand(1, 3, h, w, generator=gen)) for _ in range(8)]
    ring: list = []
    enc_ms, fuse_ms, tot_ms, cpu_ms = [], [], [], []
    with torch.inference_mode():
        for i in range(steps + window + 2):
            ir, vis = frames[i % len(frames)]
            c0, t0 = time.process_time(), time.perf_counter()
            ring.append(model.encode_frame(ir, vis))
            ring = ring[-window:]
            t1 = time.perf_counter()
            model.fuse_window(ring, [len(ring) - 1])
            t2, c2 = time.perf_counter(), time.process_time()
            if i >= window + 2:  # full ring, after warm-up
                enc_ms.append((t1 - t0) * 1e3)
                fuse_ms.append((t2 - t1) * 1e3)
                tot_ms.append((t2 - t0) * 1e3)
                cpu_ms.append((c2 - c0) * 1e3)
    return {
        "p50": statistics.median(tot_ms),
        "min": min(tot_ms),
        "encode_p50": statistics.median(enc_ms),
        "fuse_p50": statistics.median(fuse_ms),
        "cpu_p50": statistics.median(cpu_ms),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", action="append", default=None, help="WxH (repeatable), default 320x240 and 640x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="print the torch profiler's top ops")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model("ftpfusion").eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"ftpfusion: {n_params} parameters, window {model.window}, threads {torch.get_num_threads()}")
    for size in args.size or ["320x240", "640x480"]:
        w, h = (int(v) for v in size.lower().split("x"))
        r = bench(model, w, h, args.steps, model.window)
        print(
            f"{w}x{h}: p50 {r['p50']:.1f} ms/frame (min {r['min']:.1f}; encode {r['encode_p50']:.1f}, "
            f"fuse {r['fuse_p50']:.1f}); process CPU time p50 {r['cpu_p50']:.1f} ms/frame; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                bench(model, w, h, 5, model.window)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
