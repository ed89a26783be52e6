"""ftpfusion_camera_sim: a simulated IR + visible camera pair.

Publishes ``ir/image_raw`` (mono8 or mono16), ``visible/image_raw`` (bgr8) and both ``camera_info``
topics at ``rate`` Hz, from the synthetic scene generator (``source: synthetic``) or from a recorded
pair (``source: files`` with ``ir_path`` / ``vis_path``: two frame folders or two MP4s, published at
their own bit depth; ``ir_encoding`` chooses the synthetic scene's).

Both images of a tick carry the clock's current time (simulated time with use_sim_time), the IR one
shifted by ``ir_stamp_offset`` seconds, to exercise the synchroniser's slop. With ``max_frames`` > 0 the
simulator stops after that many pairs (and exits with ``exit_when_done``), printing one JSON line with
what it published, which `ftpfusion demo` reads.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Iterator

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from .conversions import array_to_image, camera_info_for
from .params import declare
from .qos import create_publisher

NODE_NAME = "ftpfusion_camera_sim"
SOURCES = ("synthetic", "files")


class CameraSimNode(Node):
    def __init__(self, *, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)

        def p(name: str, default: Any, description: str = "", **checks: Any) -> Any:
            return declare(self, name, default, description, **checks)

        self.rate = p("rate", 10.0, "frame pairs per second", minimum=0.001)
        source = p("source", "synthetic", "synthetic | files", choices=SOURCES)
        width = p("width", 320, "synthetic image width", minimum=16, maximum=8192)
        height = p("height", 240, "synthetic image height", minimum=16, maximum=8192)
        self.ir_encoding = p("ir_encoding", "mono8", "synthetic IR encoding: mono8 | mono16",
                             choices=("mono8", "mono16"))
        self.ir_frame_id = p("ir_frame_id", "ir_camera", "IR header frame_id")
        self.vis_frame_id = p("vis_frame_id", "visible_camera", "visible header frame_id")
        self.ir_stamp_offset = p("ir_stamp_offset", 0.0, "s added to the IR stamps (to exercise the pairing)")
        self.max_frames = p("max_frames", 0, "stop after this many pairs; 0: never", minimum=0)
        self.exit_when_done = p("exit_when_done", False, "exit after max_frames")
        self.publish_ir = p("publish_ir", True, "publish the IR camera")
        self.publish_visible = p("publish_visible", True, "publish the visible camera")
        self.loop = p("loop", True, "source files: start over at the end")
        wait_subs = p("wait_for_subscribers", 0.0, "s to wait for subscribers before publishing", minimum=0.0)
        self.min_subscribers = p("min_subscribers", 1, "subscribers per image topic to wait for", minimum=0)
        seed = p("seed", 0, "synthetic scene seed")
        ir_path, vis_path = p("ir_path", "", "source files: IR frames/MP4"), p("vis_path", "", "source files: visible")

        if source == "synthetic":
            from ..data.synthetic import SceneConfig, SyntheticScene

            bits = 16 if self.ir_encoding == "mono16" else 8
            self._scene = SyntheticScene(SceneConfig(width=width, height=height, seed=seed, ir_bit_depth=bits))
            self._frames: Iterator[tuple[np.ndarray, np.ndarray]] | None = None
            self.source_name = f"synthetic {width}x{height}"
        else:
            from ..data.sequences import open_pair

            if not ir_path or not vis_path:
                raise ValueError("source 'files' needs ir_path and vis_path (frame folders or MP4 files)")
            self._pair = open_pair(ir_path, vis_path)
            self._scene = None
            self._frames = self._file_frames()
            self.source_name = f"{self._pair.name} ({len(self._pair)} frames)"

        self._pub_ir = create_publisher(self, Image, "ir/image_raw")
        self._pub_vis = create_publisher(self, Image, "visible/image_raw")
        self._pub_ir_info = create_publisher(self, CameraInfo, "ir/camera_info")
        self._pub_vis_info = create_publisher(self, CameraInfo, "visible/camera_info")
        self.published = 0
        self.done = False
        self._started_wall: float | None = None
        self._wait_deadline = time.monotonic() + wait_subs if wait_subs > 0 else None
        self._timer = self.create_timer(1.0 / self.rate, self._tick)
        self.get_logger().info(f"publishing {self.source_name} at {self.rate:g} Hz, IR {self.ir_encoding}")

    def _file_frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            for _, ir, vis in self._pair.frames():
                yield ir, vis
            if not self.loop:
                return

    def _next(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self._scene is not None:
            return self._scene.frame(index)
        return next(self._frames, None)

    def _ready(self) -> bool:
        """With wait_for_subscribers, hold back until both image topics have ``min_subscribers`` matched
        subscriptions (or the wait times out), then one more tick so that the readers, too, have matched
        this node's writers (discovery completes on both sides independently)."""
        if self._wait_deadline is None:
            return True
        if self._wait_deadline == -1.0:  # matched on the previous tick
            self._wait_deadline = None
            return True
        matched = all(pub.get_subscription_count() >= self.min_subscribers
                      for pub, on in ((self._pub_ir, self.publish_ir), (self._pub_vis, self.publish_visible)) if on)
        if matched:
            self._wait_deadline = -1.0
        elif time.monotonic() > self._wait_deadline:
            self.get_logger().warning("subscribers did not match in time; publishing anyway")
            self._wait_deadline = None
            return True
        return False

    def _tick(self) -> None:
        if self.done or not self._ready():
            return
        if self.max_frames and self.published >= self.max_frames:
            self._finish()
            return
        frame = self._next(self.published)
        if frame is None:
            self._finish()
            return
        ir, vis = frame
        if ir.ndim == 3:  # MP4s store IR as three identical channels
            ir = np.ascontiguousarray(ir[:, :, 0])
        # Recorded frames are published at their own bit depth (no rescaling here).
        ir_encoding = "mono16" if ir.dtype == np.uint16 else "mono8"
        stamp_ns = self.get_clock().now().nanoseconds
        vis_header = _header(stamp_ns, self.vis_frame_id)
        ir_header = _header(stamp_ns + int(round(self.ir_stamp_offset * 1e9)), self.ir_frame_id)
        if self.publish_ir:
            self._pub_ir.publish(array_to_image(ir, ir_encoding, ir_header))
            self._pub_ir_info.publish(_pinhole_info(ir_header, ir.shape[1], ir.shape[0]))
        if self.publish_visible:
            self._pub_vis.publish(array_to_image(vis, "bgr8", vis_header))
            self._pub_vis_info.publish(_pinhole_info(vis_header, vis.shape[1], vis.shape[0]))
        if self._started_wall is None:
            self._started_wall = time.monotonic()
        self.published += 1

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        elapsed = time.monotonic() - self._started_wall if self._started_wall else 0.0
        summary = {"pairs_published": self.published, "elapsed_s": round(elapsed, 3),
                   "rate_hz": round((self.published - 1) / elapsed, 3) if elapsed > 0 else 0.0}
        print(json.dumps(summary), flush=True)
        self.get_logger().info(f"done: {summary}")
        if self.exit_when_done:
            raise SystemExit(0)


def _header(stamp_ns: int, frame_id: str):
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _pinhole_info(header: Any, width: int, height: int) -> CameraInfo:
    """An ideal pinhole calibration (about 60 degrees horizontal field of view) so RViz can show it."""
    info = camera_info_for(header, width, height)
    f = 0.866 * width
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def main(args: list[str] | None = None) -> int:
    from .runner import run_nodes

    try:
        return run_nodes(lambda: [CameraSimNode()], args)
    except SystemExit as done:  # exit_when_done
        if rclpy.ok():
            rclpy.shutdown()
        return int(done.code or 0)


if __name__ == "__main__":
    sys.exit(main())
