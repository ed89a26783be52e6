"""The demo's recorder: subscribes the fusion outputs in the demo process and keeps what the report,
the fused video and the contact sheet need (stamps, arrival times, latencies, a few sample frames)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.sync_policy import stamp_to_ns
from .media import Video

#: rows of the contact sheet (samples kept spread over the run)
SHEET_ROWS = 4


class Recorder:
    """Subscribes the fusion outputs; keeps what the report, the video and the contact sheet need."""

    def __init__(self, node: Any, out: Path, fps: float, expected: int, write_video: bool) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from ..ros import load_interfaces
        from ..ros.conversions import image_to_array

        _, status_type = load_interfaces()
        self._to_array = image_to_array
        self.node = node
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.stamps: list[int] = []          # fused stamps in arrival order
        self.arrivals: list[float] = []      # time.monotonic() of each fused frame
        self.e2e_ms: list[float] = []
        self.engine_ms: list[float] = []
        self.node_ms: list[float] = []
        self.model = self.device = ""
        self.frame_id = ""
        self.samples: dict[int, dict[str, np.ndarray]] = {}  # stamp -> {"fused", "ir", "vis"}
        self._keep_every = max(1, expected // (2 * SHEET_ROWS))
        self._video = Video(out / "fused.mp4", fps) if write_video else None
        node.create_subscription(Image, "fused/image", self._on_fused, qos)
        node.create_subscription(Image, "aligned/ir", lambda m: self._on_aligned("ir", m), qos)
        node.create_subscription(Image, "aligned/visible", lambda m: self._on_aligned("vis", m), qos)
        node.create_subscription(status_type, "fused/status", self._on_status, qos)

    def _on_fused(self, msg: Any) -> None:
        now_ns = time.time_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        frame = self._to_array(msg, "fused image")
        with self.lock:
            self.stamps.append(stamp)
            self.arrivals.append(time.monotonic())
            self.e2e_ms.append((now_ns - stamp) / 1e6)
            self.frame_id = msg.header.frame_id
            if (len(self.stamps) - 1) % self._keep_every == 0:
                self.samples.setdefault(stamp, {})["fused"] = frame.copy()
        if self._video is not None:
            self._video.write(frame)

    def _on_aligned(self, key: str, msg: Any) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        with self.lock:
            if stamp in self.samples:
                self.samples[stamp][key] = self._to_array(msg, f"aligned {key}").copy()
            elif not self.stamps or stamp > self.stamps[-1]:
                # aligned/* may arrive before fused/image of the same stamp: keep it briefly
                self.samples.setdefault(stamp, {})[key] = self._to_array(msg, f"aligned {key}").copy()
                self._trim()

    def _trim(self) -> None:
        # Drop pending aligned-only entries that never became samples (bounded memory).
        kept = set(self.stamps[-3:])
        for stamp in [s for s, d in self.samples.items() if "fused" not in d and s not in kept]:
            if len(self.samples) > 4 * SHEET_ROWS + 8:
                del self.samples[stamp]

    def _on_status(self, msg: Any) -> None:
        with self.lock:
            self.engine_ms.append(msg.latency_ms)
            self.node_ms.append(msg.node_latency_ms)
            self.model, self.device = msg.model, msg.device

    def sheet_rows(self, rows: int = SHEET_ROWS) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(ir, visible, fused) of up to ``rows`` complete samples spread over the run, for the contact sheet."""
        with self.lock:
            complete = [self.samples[s] for s in sorted(self.samples)
                        if {"fused", "ir", "vis"} <= self.samples[s].keys()]
        if not complete:
            return []
        idx = np.linspace(0, len(complete) - 1, min(rows, len(complete))).round().astype(int)
        return [(complete[i]["ir"], complete[i]["vis"], complete[i]["fused"]) for i in sorted(set(idx.tolist()))]

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
