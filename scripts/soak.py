"""Soak benchmark: camera simulator -> sync + fusion -> recorder over real DDS, for a long time.

    python scripts/soak.py --duration 1800 --rate 10 --size 320x240 [--model auto] [--json soak.json]

Three processes on this machine only (discovery LOCALHOST, a private ROS domain), as `ftpfusion demo`
runs them: the camera simulator, the composed sync + fusion node, and the recorder (this process).
Every --every seconds it prints one line: pairs published by the cameras so far (as seen by the sync
node), pairs formed, fused (received by the recorder), dropped (by the fusion queue, rejected as bad
input, or failed internally), frames left unpaired, end-to-end latency p50/p99 over the interval
(camera stamp -> fused frame received here) and the resident memory (RSS) of the fusion and camera
processes. At the end: totals and the fusion process's RSS growth after warm-up, also as JSON.

Figures are this machine's: on a shared or loaded machine drops and latency say as much about the
other load as about the package.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ftpfusion_ros.cli.common import parse_size
from ftpfusion_ros.cli.demo_cmd import _node_cmd, _ros_environment, _stop, _tail


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Recorder:
    """Counts fused frames and their end-to-end latency; keeps the nodes' latest counters."""

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from ftpfusion_ros.ros import load_interfaces

        _, status_type = load_interfaces()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.fused = 0
        self.out_of_order = 0
        self.last_stamp = -1
        self.e2e_ms: list[float] = []      # whole run
        self.window_ms: list[float] = []   # since the last report line
        self.status: Any = None
        self.sync: dict[str, str] = {}
        self.fusion: dict[str, str] = {}
        node.create_subscription(Image, "fused/image", self._on_fused, qos)
        node.create_subscription(status_type, "fused/status", self._on_status, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_fused(self, msg: Any) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.fused += 1
        self.out_of_order += stamp <= self.last_stamp
        self.last_stamp = stamp
        ms = (now - stamp) / 1e6
        self.e2e_ms.append(ms)
        self.window_ms.append(ms)

    def _on_status(self, msg: Any) -> None:
        self.status = msg

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            values = {kv.key: kv.value for kv in st.values}
            if st.name.endswith("synchronizer"):
                self.sync = values
            elif st.name.endswith(": fusion"):
                self.fusion = values


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds of camera stream (default 1800)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    parser.add_argument("--size", default="320x240", help="camera size WxH (default 320x240)")
    parser.add_argument("--model", default="auto", help="fusion model (default auto)")
    parser.add_argument("--queue-size", type=int, default=2, help="fusion node queue_size (default 2)")
    parser.add_argument("--cpu-threads", type=int, default=0, help="fusion node cpu_threads (default 0: auto)")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between report lines (default 60)")
    parser.add_argument("--warmup", type=float, default=120.0,
                        help="seconds after which RSS growth is measured (default 120)")
    parser.add_argument("--json", help="also write the final figures to this file")
    args = parser.parse_args()
    width, height = parse_size(args.size, minimum=16)
    if args.rate <= 0 or args.duration <= 0 or args.every <= 0:
        raise SystemExit("soak: --rate, --duration and --every must be positive")

    log_dir = Path(tempfile.mkdtemp(prefix="ftpfusion_soak_"))
    env = _ros_environment(log_dir)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    frames = int(round(args.rate * args.duration))
    fusion_params = {"autostart": True, "model": args.model, "queue_size": args.queue_size, "cpu_threads": args.cpu_threads,
                     "diagnostics_period": 1.0, "publish_aligned": False, "seg.enabled": False}
    sim_params = {"width": width, "height": height, "rate": float(args.rate), "max_frames": frames,
                  "exit_when_done": True, "wait_for_subscribers": 30.0}
    logs: list[Any] = []

    def start(name: str, cmd: list[str]):
        import subprocess

        fh = open(log_dir / f"{name}.log", "w")
        logs.append(fh)
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("ftpfusion_soak_recorder", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    rec = Recorder(node)
    fusion = start("fusion", _node_cmd("composed", fusion_params))
    sim = None
    rss_log: list[tuple[float, float | None, float | None]] = []
    try:
        deadline = time.monotonic() + 300.0
        while not (node.count_subscribers("/visible/image_raw") and node.count_publishers("/fused/image")):
            if fusion.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("soak: the fusion node did not come up:\n" + _tail(log_dir / "fusion.log"))
            executor.spin_once(timeout_sec=0.1)
        sim = start("camera_sim", _node_cmd("camera_sim", sim_params))
        t0 = time.monotonic()
        print(f"soak: {width}x{height} at {args.rate:g} Hz for {args.duration:g} s, model {args.model}, "
              f"queue {args.queue_size}; logs in {log_dir}", flush=True)
        print(f"{'t_s':>6} {'seen_by_sync':>12} {'formed':>7} {'fused':>7} {'dropped':>7} {'unpaired':>8} "
              f"{'p50_ms':>7} {'p99_ms':>7} {'rss_fusion_mb':>13} {'rss_camera_mb':>13}", flush=True)
        next_report = t0 + args.every
        while True:
            executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            done = sim.poll() is not None
            if now >= next_report or done:
                r_fusion, r_sim = rss_mb(fusion.pid), rss_mb(sim.pid)
                rss_log.append((now - t0, r_fusion, r_sim))
                s, f = rec.sync, rec.fusion
                unpaired = int(s.get("frames_dropped_ir", 0)) + int(s.get("frames_dropped_visible", 0))
                print(f"{now - t0:6.0f} {s.get('visible_received', '-'):>12} {s.get('pairs_formed', '-'):>7} "
                      f"{rec.fused:7d} {f.get('pairs_dropped', '-'):>7} {unpaired:8d} {pct(rec.window_ms, 50):7.1f} "
                      f"{pct(rec.window_ms, 99):7.1f} {r_fusion or float('nan'):13.1f} {r_sim or float('nan'):13.1f}",
                      flush=True)
                rec.window_ms = []
                next_report += args.every
            if done:
                break
            if fusion.poll() is not None:
                raise SystemExit("soak: the fusion process died:\n" + _tail(log_dir / "fusion.log"))
        # drain the pairs still in flight, then one more diagnostics period for the final counters
        quiet, last = time.monotonic(), rec.fused
        while time.monotonic() - quiet < 3.0:
            executor.spin_once(timeout_sec=0.05)
            if rec.fused != last:
                quiet, last = time.monotonic(), rec.fused
    finally:
        if sim is not None:
            _stop(sim)
        _stop(fusion)
        for fh in logs:
            fh.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)

    published = None
    for line in (log_dir / "camera_sim.log").read_text(errors="replace").splitlines():
        if line.startswith("{") and "pairs_published" in line:
            published = json.loads(line)["pairs_published"]
    after = [r for t, r, _ in rss_log if t >= args.warmup and r is not None]
    st, f, s = rec.status, rec.fusion, rec.sync
    result = {
        "duration_s": args.duration, "rate_hz": args.rate, "size": f"{width}x{height}", "model": args.model,
        "queue_size": args.queue_size,
        "pairs_published": published,
        "pairs_formed": int(s.get("pairs_formed", 0)),
        "frames_unpaired_ir": int(s.get("frames_dropped_ir", 0)),
        "frames_unpaired_visible": int(s.get("frames_dropped_visible", 0)),
        "pairs_received_by_fusion": st.pairs_received if st else 0,
        "pairs_fused": rec.fused,
        "pairs_dropped": int(f.get("pairs_dropped", 0)),
        "queue_overflows": int(f.get("queue_overflows", 0)),
        "input_errors": int(f.get("input_errors", 0)),
        "internal_errors": int(f.get("internal_errors", 0)),
        "out_of_order": rec.out_of_order,
        "latency_ms_p50": pct(rec.e2e_ms, 50), "latency_ms_p99": pct(rec.e2e_ms, 99),
        "engine_latency_ms_p50": float(f.get("latency_ms_p50", "nan")),
        "engine_latency_ms_p99": float(f.get("latency_ms_p99", "nan")),
        "rss_fusion_mb_after_warmup": round(after[0], 1) if after else None,
        "rss_fusion_mb_end": round(after[-1], 1) if after else None,
        "rss_fusion_mb_max": round(max(after), 1) if after else None,
        "rss_growth_pct_after_warmup": round(100.0 * (after[-1] / after[0] - 1.0), 2) if len(after) > 1 else None,
        "rss_samples": [(round(t), r and round(r, 1), c and round(c, 1)) for t, r, c in rss_log],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
