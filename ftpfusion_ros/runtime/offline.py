"""Offline streaming over whole sequences: the exact path the node runs, frame by frame."""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from .engine import FusionEngine, FusionResult


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
