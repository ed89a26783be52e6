"""Environment for tests over real DDS (imported by test/test_ros_*.py and test_launch_files.py).

- Everything stays on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a random ROS_DOMAIN_ID
  per test run (parallel runs on one machine do not see each other's nodes).
- ROS_LOG_DIR in a temporary directory; the package's Fast DDS profile (large images) unless the
  variable is already set to a file.
- AMENT_PREFIX_PATH: the colcon install of this package (install/ftpfusion_ros, built by
  tools/ros_build.sh; `make test` runs it first) and the venv, so that the generated ftpfusion_ros.msg is
  found (see ftpfusion_ros/__init__.py) and launch files resolve the package's share directory.

The variables are set in this process at import (before any rclpy context exists) and the same dict is
passed to node subprocesses.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
INSTALL_PREFIX = REPO / "install" / "ftpfusion_ros"
FASTDDS_PROFILE = REPO / "config" / "fastdds_large_images.xml"
VENV_BIN = Path(sys.executable).parent


def _prepend(var: str, *paths: Path | str) -> None:
    parts = [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    for p in reversed([str(x) for x in paths]):
        if p not in parts:
            parts.insert(0, p)
    os.environ[var] = os.pathsep.join(parts)


def _setup() -> None:
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # Domain ids 0-101 and 215-232 are safe for any number of participants on Linux; keep clear of 0.
    os.environ.setdefault("FTPFUSION_TEST_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    os.environ["ROS_DOMAIN_ID"] = os.environ["FTPFUSION_TEST_DOMAIN_ID"]
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="ftpfusion_roslog_"))
    if not os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):  # never set it to an empty string
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the discovery range
    _prepend("AMENT_PREFIX_PATH", INSTALL_PREFIX, sys.prefix)
    _prepend("PATH", VENV_BIN)  # `#!/usr/bin/env python3` executables under lib/ftpfusion_ros
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


_setup()


def interfaces_built() -> bool:
    return (INSTALL_PREFIX / "share" / "ftpfusion_ros" / "msg" / "FramePair.msg").is_file()


def require_interfaces() -> None:
    """Fail (not skip) when the ROS build is missing: `make test` builds it, so absence is a bug."""
    if not interfaces_built():
        raise RuntimeError(f"{INSTALL_PREFIX} missing: run `make ros` (tools/ros_build.sh) before the ROS tests")


def node_process(module: str, params: dict[str, Any] | None = None, remaps: dict[str, str] | None = None,
                 log: Path | None = None) -> subprocess.Popen:
    """Start ``python -m ftpfusion_ros.ros.<module>`` with ROS parameters and remappings."""
    cmd = [sys.executable, "-m", f"ftpfusion_ros.ros.{module}", "--ros-args"]
    for key, value in (params or {}).items():
        cmd += ["-p", f"{key}:={_param_text(value)}"]
    for src, dst in (remaps or {}).items():
        cmd += ["-r", f"{src}:={dst}"]
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)


def child_env() -> dict[str, str]:
    """This process's ROS environment for a node subprocess (one math thread: CI has 2 cores)."""
    env = os.environ.copy()
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) for v in value) + "]"
    return str(value)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM (rclpy shuts down in order, like Ctrl-C; SIGINT may be ignored when the test run itself
    was started in the background), then kill if it hangs; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def spin_until(executor: Any, predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


class Probe:
    """A test-side node in its own rclpy context: subscribes topics into lists, spins until a condition."""

    def __init__(self, name: str = "ftpfusion_test_probe") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.extra_nodes: list[Any] = []
        self.clients: dict[str, Any] = {}

    def call(self, srv_type: Any, name: str, request: Any, attempts: int = 10, resend_after: float = 3.0,
             took_effect: Callable[[], Any] | None = None) -> Any:
        """Call a service and return its response; the client is kept for later calls.

        ``wait_for_service`` only says the server's request reader matched this client; the server's
        response writer may not have matched this client's reader yet (discovery is not symmetric in
        time), and the middleware then drops the response. A request unanswered after ``resend_after``
        seconds is therefore sent again (``attempts`` sends at most), unless ``took_effect()`` says the
        first one was carried out: it returns what stands for the response then, None when the request is
        to be sent again. Without it the request must be idempotent.
        """
        client = self.clients.get(name)
        if client is None:
            client = self.clients[name] = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=attempts * resend_after), f"no service {name}"
        for _ in range(attempts):
            future = client.call_async(request)
            if self.spin_until(future.done, resend_after):
                return future.result()
            client.remove_pending_request(future)
            outcome = took_effect() if took_effect is not None else None
            if outcome is not None:
                return outcome
        raise AssertionError(f"{name} did not answer {attempts} requests")

    def add_composed(self, params: list) -> tuple[Any, Any]:
        """The composed sync and fusion nodes (``params``: their parameter overrides) in this probe's context
        and executor; returns (sync, fusion)."""
        from ftpfusion_ros.ros.composed import build_composed

        sync, fusion = build_composed(context=self.context, parameter_overrides=params)
        self.add(fusion)
        self.add(sync)
        return sync, fusion

    def cameras(self, depth: int, visible_compressed: bool = False, ir_compressed: bool = False) -> tuple[Any, Any]:
        """(IR, visible) publishers on the nodes' default camera topics, raw or ``<topic>/compressed``, once
        a subscription has matched each of them."""
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CompressedImage, Image

        pubs = tuple(self.node.create_publisher(CompressedImage, f"{topic}/compressed", QoSProfile(depth=depth))
                     if compressed else self.node.create_publisher(Image, topic, QoSProfile(depth=depth))
                     for topic, compressed in (("ir/image_raw", ir_compressed), ("visible/image_raw", visible_compressed)))
        assert self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), 10), "cameras not subscribed"
        return pubs

    def lifecycle_state(self, node: str) -> int:
        """The current state id of a managed node (lifecycle_msgs/srv/GetState)."""
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.id

    def lifecycle_transition(self, node: str, transition: int) -> bool:
        """A transition's success (lifecycle_msgs/srv/ChangeState); an unanswered request counts as carried
        out if the node is in the transition's goal state (a transition is never sent twice)."""
        from lifecycle_msgs.msg import State, Transition
        from lifecycle_msgs.srv import ChangeState

        goal = {Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
                Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
                Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE,
                Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED}[transition]

        def took_effect() -> ChangeState.Response | None:
            return ChangeState.Response(success=True) if self.lifecycle_state(node) == goal else None

        return self.call(ChangeState, f"{node}/change_state",
                         ChangeState.Request(transition=Transition(id=transition)), took_effect=took_effect).success

    def collect(self, msg_type: Any, topic: str, depth: int = 100, reliable: bool = True) -> list:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        got: list = []
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        self.node.create_subscription(msg_type, topic, got.append, qos)
        return got

    def add(self, node: Any) -> Any:
        """Spin another node (e.g. an in-process sync/fusion node) in the same executor."""
        self.executor.add_node(node)
        self.extra_nodes.append(node)
        return node

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def close(self) -> None:
        import rclpy

        for node in reversed(self.extra_nodes):
            node.destroy_node()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def reliable_inputs(depth: int, topics: tuple[str, ...] = ("/ir/image_raw", "/visible/image_raw")) -> list:
    """Parameters making the nodes' subscriptions of ``topics`` reliable with ``depth`` (rclpy's standard
    ``qos_overrides.<topic>.subscription.*``): tests that count frames must not lose one to best effort."""
    from rclpy.parameter import Parameter

    params = []
    for topic in topics:
        params += [Parameter(f"qos_overrides.{topic}.subscription.reliability", value="reliable"),
                   Parameter(f"qos_overrides.{topic}.subscription.depth", value=depth)]
    return params


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def diagnostic_statuses(arrays: list, name_suffix: str) -> list:
    """All DiagnosticStatus entries whose name ends with ``name_suffix`` (oldest first)."""
    return [s for a in arrays for s in a.status if s.name.endswith(name_suffix)]
