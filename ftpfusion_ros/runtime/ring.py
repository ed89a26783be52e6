"""The temporal frame ring: per-frame model caches of the last T frames and the causal / look-ahead
choice of which frame to output.

Each arriving frame is encoded once (`model.encode_frame`) and its cache kept here, so a new frame costs
one frame of encoding, not T. In causal mode the newest frame is fused from the window ending at it;
with look-ahead L the frame that arrived L frames ago is fused, seeing L future frames (output delayed by
L frames). During warm-up the window simply holds fewer frames. After each step the model may trim the
cached frames to what later steps still read (``trim_caches``), which bounds the ring's memory by the
frames the network actually reads rather than the ring length.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from ..models import FusionModel


@dataclass
class RingEntry:
    cache: Any
    meta: Any


class TemporalRing:
    def __init__(self, model: FusionModel, window: int, lookahead: int = 0) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0 <= lookahead < window:
            raise ValueError(f"lookahead must be in [0, window-1] = [0, {window - 1}], got {lookahead}")
        self.model = model
        self.window = window
        self.lookahead = lookahead
        self._entries: deque[RingEntry] = deque(maxlen=window)
        self._pending = 0  # frames pushed but not yet output (look-ahead delay)

    @property
    def fill(self) -> int:
        return len(self._entries)

    def reset(self) -> None:
        self._entries.clear()
        self._pending = 0

    def push(self, ir: torch.Tensor, vis: torch.Tensor, meta: Any = None) -> tuple[torch.Tensor, Any] | None:
        """Add one frame ((B,1,H,W) IR, (B,3,H,W) visible); return (fused (B,3,H,W), meta) of the frame
        due now, or None while the look-ahead delay fills."""
        self._entries.append(RingEntry(self.model.encode_frame(ir, vis), meta))
        self._pending += 1
        if self._pending <= self.lookahead:
            self._trim()
            return None
        self._pending -= 1
        target = len(self._entries) - 1 - self.lookahead
        out = self._fuse([target])[0]
        self._trim()
        return out

    def _trim(self) -> None:
        """Let the model drop what no later fusion reads from the cached frames (``trim_caches``): e.g.
        FTPFusion keeps network features only for the frames its network still reads and, for the rest of
        the ring, the stabiliser's per-frame statistics."""
        n = len(self._entries)
        # the oldest frame still to be output; with none pending, the next target needs the next push
        first = n - self._pending
        n_t = n + 1 if self._pending == 0 else n
        for entry, cache in zip(self._entries, self.model.trim_caches([e.cache for e in self._entries], first, n_t)):
            entry.cache = cache

    def flush(self) -> list[tuple[torch.Tensor, Any]]:
        """Output the frames still delayed by the look-ahead, at the end of a stream."""
        n = len(self._entries)
        targets = list(range(n - self._pending, n))
        self._pending = 0
        return self._fuse(targets) if targets else []

    def _fuse(self, targets: list[int]) -> list[tuple[torch.Tensor, Any]]:
        entries = list(self._entries)
        out = self.model.fuse_window([e.cache for e in entries], targets)
        return [(out[:, :, i], entries[t].meta) for i, t in enumerate(targets)]
