"""Speed figures of the streaming engine: parameters, FLOPs, ms per streamed frame, peak memory.

Measures what the node pays per new frame: engine.push with a full ring (pre-processing, one frame of
encoding, window fusion, post-processing), after warm-up.
"""
from __future__ import annotations

import resource
import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .engine import EngineConfig, FusionEngine


def _synthetic_frames(width: int, height: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    base_ir = rng.integers(0, 256, (height, width), dtype=np.uint8)
    base_vis = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    # moving content so nothing degenerate (e.g. identical frames) is measured
    return [(np.roll(base_ir, i, axis=1), np.roll(base_vis, i, axis=1)) for i in range(n)]


def benchmark(config: EngineConfig, width: int, height: int, steps: int = 30, warmup: int | None = None) -> dict:
    engine = FusionEngine(replace(config, allow_untrained=True))
    warmup = engine.window + 2 if warmup is None else warmup
    frames = _synthetic_frames(width, height, warmup + steps)
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for ir, vis in frames[:warmup]:
        engine.push(ir, vis)
    with FlopCounterMode(display=False) as counter:
        engine.push(*frames[warmup])
    times = []
    for ir, vis in frames[warmup + 1:]:
        sync()
        t0 = time.perf_counter()
        engine.push(ir, vis)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    if engine.device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(engine.device) / 2**20
    else:  # process peak RSS (Linux reports KiB): what the node process needs, model and buffers included
        peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss0) / 1024
    return {
        "model": config.model,
        "size": f"{width}x{height}",
        "frames": engine.window,
        "device": str(engine.device),
        "precision": str(engine.dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in engine.model.parameters()),
        "flops": int(counter.get_total_flops()),
        "ms_p50": float(np.percentile(times, 50)),
        "ms_p99": float(np.percentile(times, 99)),
        "ms_mean": float(np.mean(times)),
        "fps": float(1e3 / np.mean(times)),
        "peak_mem_mb": float(peak_mb),
        "steps": len(times),
    }
