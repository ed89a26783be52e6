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

This module orchestrates (environment, processes, start-up and drain); the recorder subscribing the
outputs is demo_recorder.py, the report demo_report.py, the contact sheet and the video media.py (shared
with `ftpfusion bag --mp4`).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import parse_size
from .demo_recorder import Recorder
from .demo_report import build_report
from .media import contact_sheet

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
FASTDDS_PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"


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
    recorder = Recorder(node, out, args.rate, expected, not args.no_video)
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
    report = build_report(recorder, sim_summary, width=width, height=height, model=model,
                          ir_encoding=args.ir_encoding, split=args.split, startup_s=startup_s)
    fused = report["pairs_fused"]
    sheet_rows = contact_sheet(recorder.sheet_rows(), out / "contact_sheet.png")
    report["contact_sheet_rows"] = sheet_rows
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"demo: wrote {out / 'report.json'}, {out / 'contact_sheet.png'}"
          + ("" if args.no_video else f", {out / 'fused.mp4'}"))
    if fused == 0:
        raise RuntimeError("no fused frame arrived; see " + str(log_dir))
    return 0
