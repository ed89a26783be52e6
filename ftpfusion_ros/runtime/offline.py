"""Offline streaming over whole sequences (the exact path the node runs, frame by frame), and single
independent image pairs through the same engine."""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np

from .encodings import InputError
from .engine import EngineConfig, FusionEngine, FusionResult


def ir_encoding_of(ir: np.ndarray) -> str:
    return "mono16" if ir.dtype == np.uint16 else "mono8"


def stream_frames(engine: FusionEngine, frames: Iterable[tuple]) -> Iterator[tuple[str, FusionResult]]:
    """Feed frames through the engine in order; yield (name, result) for every input frame, in order
    (look-ahead outputs are delayed, then flushed at the end).

    Items are (name, ir, vis_bgr) — IR encoding taken from its dtype — or (name, ir, vis, ir_encoding,
    vis_encoding) for sources that know their encodings (rosbags).
    """
    engine.reset()
    for name, ir, vis, *encodings in frames:
        ir_enc, vis_enc = encodings or (ir_encoding_of(ir), "bgr8")
        res = engine.push(ir, vis, ir_enc, vis_enc, stamp=name)
        if res is not None:
            yield res.stamp, res
    for res in engine.flush():
        yield res.stamp, res


def single_image_engine(config: EngineConfig) -> FusionEngine:
    """An engine for independent images: a ring of one frame (T = 1) and no look-ahead.

    Video models then see only the image itself, as in a single-image benchmark, and keep no memory
    of other images (which also bounds the ring's memory for large images).
    """
    return FusionEngine(dataclasses.replace(config, window=1, lookahead=0))


def fuse_single(engine: FusionEngine, ir: np.ndarray, vis: np.ndarray, name: str | None = None) -> FusionResult:
    """Fuse one independent pair: reset (new size, fresh AGC and ring), push, flush; exactly one result.

    The causal ring outputs on push; flush collects the frame should the engine delay it (look-ahead),
    so the single frame is never lost.
    """
    engine.reset()
    try:
        res = engine.push(ir, vis, ir_encoding_of(ir), "bgr8", stamp=name)
    except InputError as exc:
        # in a folder of hundreds of pairs the message must say which one cannot be fused
        raise InputError(f"pair {name}: {exc}" if name else str(exc)) from None
    results = ([res] if res is not None else []) + engine.flush()
    engine.reset()  # drop the ring's tensors: they belong to this image only
    if len(results) != 1:
        raise RuntimeError(f"{name}: the engine returned {len(results)} fused frames for one image pair")
    return results[0]
