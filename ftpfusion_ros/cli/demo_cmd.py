"""`ftpfusion demo`: the ROS pipeline end to end over real DDS, on the synthetic dual-camera scene.

Three processes on this machine only (discovery range LOCALHOST, a random ROS domain):
  camera simulator (ftpfusion_camera_sim)  ->  sync + fusion (ftpfusion_composed)  ->  recorder (here)
for a fixed time, then writes under --out:
  fused.mp4          the fused frames as received from `fused/image`,
  contact_sheet.png  rows of IR | visible | fused (the registered inputs from `aligned/*`),
  report.json        pairs published / fused / dropped, latency percentiles, rate, size, model, device,
  logs/              the nodes' output.
Latency is end to end: camera stamp (the simulator stamps with the system clock) to the fused frame's
arrival at the recorder, i.e. two DDS hops, pairing, queueing and the engine; the engine's own share is
reported separately (engine_latency_ms_*), from `fused/status`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import parse_size

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
FASTDDS_PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"
SHEET_ROWS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output directory (default: demo_output)")
    parser.add_argument("--size", default="320x240", help="simulated camera size WxH (default: 320x240)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default: 10)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of camera stream (default: 10)")
    parser.add_argument("--model", default="auto",
                        help="fusion model (default: auto = ftpfusion when its checkpoint is packaged, else the "
                             "engine's classical fallback)")
    parser.add_argument("--checkpoint", default="", help="checkpoint for a learned model (default: packaged)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--cpu-threads", type=int, default=0,
                        help="torch threads of the fusion node on CPU (default 0: the node's choice)")
    parser.add_argument("--ir-encoding", default="mono8", choices=("mono8", "mono16"),
                        help="simulated thermal camera output (default: mono8)")
    parser.add_argument("--split", action="store_true",
                        help="run sync and fusion as two processes over FramePair (default: composed)")
    parser.add_argument("--no-video", action="store_true", help="do not write fused.mp4")
    parser.add_argument("--startup-timeout", type=float, default=120.0,
                        help="seconds to wait for the fusion node to load its model (default: 120)")


def _ros_environment(log_dir: Path) -> dict[str, str]:
    """This process's and the children's environment: local-only discovery, a private domain."""
    env = os.environ
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    # A domain of its own so that the demo never mixes with a robot's nodes on the same machine.
    env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
    env["ROS_LOG_DIR"] = str(log_dir / "ros")
    if not env.get(FASTDDS_PROFILE_VAR):  # never an empty string: that breaks Fast DDS
        env[FASTDDS_PROFILE_VAR] = str(REPO_CONFIG / "fastdds_large_images.xml")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return dict(env)


class _Recorder:
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
        self._video = None
        self._video_path = out / "fused.mp4" if write_video else None
        self._fps = fps
        node.create_subscription(Image, "fused/image", self._on_fused, qos)
        node.create_subscription(Image, "aligned/ir", lambda m: self._on_aligned("ir", m), qos)
        node.create_subscription(Image, "aligned/visible", lambda m: self._on_aligned("vis", m), qos)
        node.create_subscription(status_type, "fused/status", self._on_status, qos)

    @staticmethod
    def _stamp(msg: Any) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def _on_fused(self, msg: Any) -> None:
        now_ns = time.time_ns()
        stamp = self._stamp(msg)
        frame = self._to_array(msg, "fused image")
        with self.lock:
            self.stamps.append(stamp)
            self.arrivals.append(time.monotonic())
            self.e2e_ms.append((now_ns - stamp) / 1e6)
            self.frame_id = msg.header.frame_id
            if (len(self.stamps) - 1) % self._keep_every == 0:
                self.samples.setdefault(stamp, {})["fused"] = frame.copy()
        if self._video_path is not None:
            import cv2

            if self._video is None:
                h, w = frame.shape[:2]
                self._video = cv2.VideoWriter(str(self._video_path), cv2.VideoWriter_fourcc(*"mp4v"), self._fps, (w, h))
                if not self._video.isOpened():
                    raise RuntimeError(f"cannot write {self._video_path} (OpenCV has no mp4v encoder?)")
            self._video.write(np.ascontiguousarray(frame))

    def _on_aligned(self, key: str, msg: Any) -> None:
        stamp = self._stamp(msg)
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

    def close(self) -> None:
        if self._video is not None:
            self._video.release()


def _contact_sheet(samples: dict[int, dict[str, np.ndarray]], path: Path) -> int:
    """IR | visible | fused rows for up to SHEET_ROWS complete samples spread over the run."""
    import cv2

    complete = [samples[s] for s in sorted(samples) if {"fused", "ir", "vis"} <= samples[s].keys()]
    if not complete:
        return 0
    idx = np.linspace(0, len(complete) - 1, min(SHEET_ROWS, len(complete))).round().astype(int)
    rows = []
    for i in sorted(set(idx.tolist())):
        d = complete[i]
        rows.append(np.hstack([cv2.cvtColor(d["ir"], cv2.COLOR_GRAY2BGR), d["vis"], d["fused"]]))
    sheet = np.vstack(rows)
    w = rows[0].shape[1] // 3
    header = np.full((28, sheet.shape[1], 3), 32, np.uint8)
    for k, label in enumerate(("IR (registered)", "visible", "fused")):
        cv2.putText(header, label, (k * w + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), np.vstack([header, sheet]))
    return len(rows)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-n:])
    except OSError:
        return ""


def _node_cmd(module: str, params: dict[str, Any]) -> list[str]:
    cmd = [sys.executable, "-m", f"ftpfusion_ros.ros.{module}", "--ros-args"]
    for key, value in params.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        cmd += ["-p", f"{key}:={text}"]
    return cmd


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: orderly rclpy shutdown (SIGINT is ignored in background jobs)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run(args: argparse.Namespace) -> int:
    width, height = parse_size(args.size, minimum=16)
    if args.rate <= 0 or args.duration <= 0:
        raise ValueError("--rate and --duration must be positive")
    out = Path(args.out)
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = _ros_environment(log_dir)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from ..ros import load_interfaces
    from ..runtime import resolve_model_name

    load_interfaces()  # a clear error now if the ROS interfaces are not built (`make ros`)
    model = resolve_model_name(args.model)
    expected = max(1, int(round(args.rate * args.duration)))
    # autostart: configure + activate at once, as the launch files do (the nodes are managed nodes)
    fusion_params: dict[str, Any] = {"autostart": True, "model": model, "device": args.device, "diagnostics_period": 1.0,
                                     "cpu_threads": args.cpu_threads}
    if args.checkpoint:
        fusion_params["checkpoint"] = args.checkpoint
    sim_params = {"width": width, "height": height, "rate": float(args.rate), "ir_encoding": args.ir_encoding,
                  "max_frames": expected, "exit_when_done": True, "wait_for_subscribers": 10.0}

    procs: list[subprocess.Popen] = []
    logs: list[Any] = []

    def start(name: str, cmd: list[str]) -> subprocess.Popen:
        fh = open(log_dir / f"{name}.log", "w")
        logs.append(fh)
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        procs.append(proc)
        return proc

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("ftpfusion_demo_recorder", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    recorder = _Recorder(node, out, args.rate, expected, not args.no_video)
    t_start = time.monotonic()
    try:
        if args.split:
            fusion = start("fusion", _node_cmd("fusion_node", fusion_params))
            start("sync", _node_cmd("sync_node", {"autostart": True}))
        else:
            fusion = start("fusion", _node_cmd("composed", fusion_params))
        print(f"demo: {width}x{height} at {args.rate:g} Hz for {args.duration:g} s, model {model}; "
              f"waiting for the fusion node ...", flush=True)
        # Ready when the pipeline subscribes both cameras and the recorder sees fused/image's publisher.
        deadline = time.monotonic() + args.startup_timeout
        while not (node.count_subscribers("/ir/image_raw") and node.count_subscribers("/visible/image_raw")
                   and node.count_publishers("/fused/image")):
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a fusion process exited with status {p.returncode}:\n"
                                       + _tail(log_dir / ("fusion.log" if p is fusion else "sync.log")))
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fusion node did not come up in {args.startup_timeout:g} s:\n"
                                   + _tail(log_dir / "fusion.log"))
            executor.spin_once(timeout_sec=0.1)
        startup_s = time.monotonic() - t_start
        sim = start("camera_sim", _node_cmd("camera_sim", sim_params))
        print(f"demo: fusion ready after {startup_s:.1f} s; streaming {expected} pairs ...", flush=True)
        stream_deadline = time.monotonic() + args.duration + 30.0
        while sim.poll() is None and time.monotonic() < stream_deadline:
            executor.spin_once(timeout_sec=0.05)
        # Drain: the last pairs are still in flight through sync and fusion.
        last_count, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 2.0 and len(recorder.stamps) < expected:
            executor.spin_once(timeout_sec=0.05)
            if len(recorder.stamps) != last_count:
                last_count, quiet_since = len(recorder.stamps), time.monotonic()
        for _ in range(10):  # late aligned/status messages of the last frame
            executor.spin_once(timeout_sec=0.02)
    finally:
        for p in reversed(procs):
            _stop(p)
        for fh in logs:
            fh.close()
        recorder.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)

    sim_summary: dict[str, Any] = {}
    for line in (log_dir / "camera_sim.log").read_text(errors="replace").splitlines():
        if line.startswith("{") and "pairs_published" in line:
            sim_summary = json.loads(line)
    if not sim_summary:
        raise RuntimeError("the camera simulator did not finish:\n" + _tail(log_dir / "camera_sim.log"))
    published = int(sim_summary["pairs_published"])
    stamps = recorder.stamps
    fused = len(set(stamps))
    span = recorder.arrivals[-1] - recorder.arrivals[0] if len(recorder.arrivals) > 1 else 0.0
    report = {
        "pairs_published": published,
        "pairs_fused": fused,
        "pairs_dropped": published - fused,
        "fused_fraction": round(fused / published, 4) if published else 0.0,
        "latency_ms_p50": _percentile(recorder.e2e_ms, 50),
        "latency_ms_p99": _percentile(recorder.e2e_ms, 99),
        "engine_latency_ms_p50": _percentile(recorder.engine_ms, 50),
        "engine_latency_ms_p99": _percentile(recorder.engine_ms, 99),
        "node_latency_ms_p50": _percentile(recorder.node_ms, 50),
        "node_latency_ms_p99": _percentile(recorder.node_ms, 99),
        "rate_hz": round((len(stamps) - 1) / span, 2) if span > 0 else 0.0,
        "camera_rate_hz": sim_summary.get("rate_hz"),
        "size": f"{width}x{height}",
        "model": recorder.model or model,
        "device": recorder.device,
        "ir_encoding": args.ir_encoding,
        "mode": "split" if args.split else "composed",
        "in_order": all(a < b for a, b in zip(stamps, stamps[1:])),
        "duplicates": len(stamps) - fused,
        "frame_id": recorder.frame_id,
        "startup_s": round(startup_s, 2),
        "latency_definition": "camera stamp -> fused frame received by a subscriber in another process",
    }
    sheet_rows = _contact_sheet(recorder.samples, out / "contact_sheet.png")
    report["contact_sheet_rows"] = sheet_rows
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"demo: wrote {out / 'report.json'}, {out / 'contact_sheet.png'}"
          + ("" if args.no_video else f", {out / 'fused.mp4'}"))
    if fused == 0:
        raise RuntimeError("no fused frame arrived; see " + str(log_dir))
    return 0
