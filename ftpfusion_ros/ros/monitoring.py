"""Small bookkeeping for diagnostics: arrival rates, rolling latency percentiles, silence detection."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over a sliding wall-clock window (robust to bursts and to silence)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = float(window_s)
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0
        self.last: float | None = None  # time.monotonic() of the last event

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.count += 1
            self.last = now
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (n - 1) / span if span > 0 else 0.0

    def silent_for(self, now: float | None = None) -> float | None:
        """Seconds since the last event (None if there never was one)."""
        now = time.monotonic() if now is None else now
        return None if self.last is None else now - self.last


class LatencyWindow:
    """The last ``size`` latencies (ms) with percentiles for diagnostics."""

    def __init__(self, size: int = 300) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._values.append(float(value_ms))

    def percentile(self, q: float) -> float:
        with self._lock:
            if not self._values:
                return 0.0
            return float(np.percentile(np.fromiter(self._values, dtype=np.float64), q))
