"""Speed figures of the streaming engine: parameters, FLOPs, ms per streamed frame, peak memory, and the
time per stage of a streamed frame.

Measures what the node pays per new frame: engine.push with a full ring (pre-processing, one frame of
encoding, window fusion, post-processing), after warm-up. The per-stage breakdown comes from a second,
shorter pass with timers around the stages (so the timers never touch the headline figures); stages
nest (``encode.network`` is part of ``encode``) and their medians need not add up to the total exactly.
"""
from __future__ import annotations

import contextlib
import resource
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any, Callable, Iterator

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


def _stage_points(engine: FusionEngine) -> list[tuple[str, Any, str]]:
    """(stage, object, method) whose calls are timed for the breakdown; those a model lacks are skipped."""
    points: list[tuple[str, Any, str]] = [("pre", engine, "_prepare"), ("pre", engine, "_to_tensor"),
                                          ("post", engine, "_result")]
    m = engine.model
    if m is None:  # onnxruntime: the ring reports its encoder/fusion run times itself
        return points
    points += [("encode", m, "encode_frame"), ("encode.network", m, "_encode"),
               ("fuse", m, "fuse_window"), ("fuse.stabiliser", m, "_base"), ("fuse.refine", getattr(m, "refine", None), "forward"),
               ("fuse.decoder", getattr(m, "decoder", None), "forward"), ("fuse.compose", m, "_compose")]
    stab = getattr(m, "stabiliser", None)
    if stab is not None:
        points.append(("encode.stabiliser", stab, "frame_stats"))
    for i, dfam in enumerate(getattr(m, "dfam", [])):
        points += [(f"fuse.dfam{i + 1}", dfam, "forward"), (f"fuse.dfam{i + 1}.scam", dfam.scam, "forward"),
                   (f"fuse.dfam{i + 1}.lfpm", dfam.lfpm, "forward")]
    return [(label, obj, name) for label, obj, name in points if obj is not None and hasattr(obj, name)]


@contextlib.contextmanager
def _timed(points: list[tuple[str, Any, str]], sink: dict[str, float], sync: Callable[[], None]) -> Iterator[None]:
    """Instance-level timers around each point's method, adding wall ms to ``sink[stage]``; removed after."""
    def wrap(label: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            sink[label] += (time.perf_counter() - t0) * 1e3
            return out
        return timed

    patched = []
    for label, obj, name in points:
        had = name in vars(obj)
        patched.append((obj, name, had, getattr(obj, name)))
        setattr(obj, name, wrap(label, getattr(obj, name)))
    try:
        yield
    finally:
        for obj, name, had, fn in reversed(patched):
            if had:
                setattr(obj, name, fn)
            else:
                delattr(obj, name)


def benchmark(config: EngineConfig, width: int, height: int, steps: int = 30, warmup: int | None = None,
              stage_steps: int = 10) -> dict:
    engine = FusionEngine(replace(config, allow_untrained=True))
    warmup = engine.window + 2 if warmup is None else warmup
    stage_steps = max(0, min(stage_steps, steps))
    frames = _synthetic_frames(width, height, warmup + 1 + steps + stage_steps)
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for ir, vis in frames[:warmup + 1]:
        engine.push(ir, vis)
    times = []
    timed_frames = frames[warmup + 1:warmup + 1 + steps]
    for ir, vis in timed_frames:
        sync()
        t0 = time.perf_counter()
        engine.push(ir, vis)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    if engine.device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(engine.device) / 2**20
    else:  # process peak RSS (Linux reports KiB): what the node process needs, model and buffers included
        peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss0) / 1024
    # per-stage breakdown: median over stage_steps further frames of each stage's ms per frame
    per_frame: dict[str, list[float]] = defaultdict(list)
    points = _stage_points(engine)
    for ir, vis in frames[warmup + 1 + steps:]:
        sink: dict[str, float] = defaultdict(float)
        with _timed(points, sink, sync):
            t0 = time.perf_counter()
            engine.push(ir, vis)
            sink["total"] = (time.perf_counter() - t0) * 1e3
        for key, value in getattr(engine.ring, "last_ms", {}).items():  # onnxruntime: encoder / fusion runs
            sink[key] = value
        for key, value in sink.items():
            per_frame[key].append(value)
    stages = {key: round(float(np.median(v)), 2) for key, v in sorted(per_frame.items())}
    # FLOPs last: counting dispatches every op through Python and leaves the heap larger (~+140 MB RSS
    # at 640x480), which must not show in the peak memory above
    counter = FlopCounterMode(display=False)
    with counter:
        engine.push(*frames[warmup])
    model = engine.model
    return {
        "model": engine.model_name,
        "backend": engine.config.backend,
        "providers": engine.ring.active_providers if model is None else None,
        "size": f"{width}x{height}",
        "frames": engine.window,
        "device": str(engine.device),
        "precision": str(engine.dtype).replace("torch.", "") if model is not None else "float32",
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()) if model is not None else None,
        "flops": int(counter.get_total_flops()) if model is not None else None,
        "ms_p50": float(np.percentile(times, 50)),
        "ms_p99": float(np.percentile(times, 99)),
        "ms_mean": float(np.mean(times)),
        "fps": float(1e3 / np.mean(times)),
        "peak_mem_mb": float(peak_mb),
        "steps": len(times),
        "stages_ms_p50": stages,
        "stage_steps": stage_steps,
    }
