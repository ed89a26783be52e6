"""The demo's report.json: counts, latency percentiles and rate from the recorder, the camera simulator's
summary and the run's settings."""
from __future__ import annotations

from typing import Any

import numpy as np


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def build_report(recorder: Any, sim_summary: dict[str, Any], *, width: int, height: int, model: str,
                 ir_encoding: str, split: bool, startup_s: float) -> dict[str, Any]:
    """Every pair the simulator published is fused or dropped; latency is end to end (camera stamp to the
    fused frame's arrival in the demo process), the engine's share from fused/status."""
    published = int(sim_summary["pairs_published"])
    stamps = recorder.stamps
    fused = len(set(stamps))
    span = recorder.arrivals[-1] - recorder.arrivals[0] if len(recorder.arrivals) > 1 else 0.0
    report = {
        "pairs_published": published,
        "pairs_fused": fused,
        "pairs_dropped": published - fused,
        "fused_fraction": round(fused / published, 4) if published else 0.0,
        "latency_ms_p50": percentile(recorder.e2e_ms, 50),
        "latency_ms_p99": percentile(recorder.e2e_ms, 99),
        "engine_latency_ms_p50": percentile(recorder.engine_ms, 50),
        "engine_latency_ms_p99": percentile(recorder.engine_ms, 99),
        "node_latency_ms_p50": percentile(recorder.node_ms, 50),
        "node_latency_ms_p99": percentile(recorder.node_ms, 99),
        "rate_hz": round((len(stamps) - 1) / span, 2) if span > 0 else 0.0,
        "camera_rate_hz": sim_summary.get("rate_hz"),
        "size": f"{width}x{height}",
        "model": recorder.model or model,
        "device": recorder.device,
        "ir_encoding": ir_encoding,
        "mode": "split" if split else "composed",
        "in_order": all(a < b for a, b in zip(stamps, stamps[1:])),
        "duplicates": len(stamps) - fused,
        "frame_id": recorder.frame_id,
        "startup_s": round(startup_s, 2),
        "latency_definition": "camera stamp -> fused frame received by a subscriber in another process",
    }
    return report
