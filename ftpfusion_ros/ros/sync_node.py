"""ftpfusion_sync_node: pairs IR and visible images by approximate time and publishes FramePair.

Subscribes ``ir/image_raw`` and ``visible/image_raw`` (sensor-data QoS by default) and, optionally, the
two ``camera_info`` topics (the latest one of each is attached to a pair). Pairing uses
message_filters' ApproximateTimeSynchronizer when it is importable and the package's own policy with
the same semantics otherwise (parameter ``sync_backend``: auto | message_filters | builtin). With
``pairing: latest_ir`` every visible frame is paired with the newest IR frame no older than ``max_ir_age``
(runtime/sync_policy.LatestIrPolicy), so a slow thermal camera does not limit the output rate; reuse and
IR age statistics then appear in diagnostics and the closing summary.

Per camera, ``ir_transport`` / ``visible_transport`` = raw | compressed: compressed subscribes
``<topic>/compressed`` (sensor_msgs/CompressedImage, JPEG or PNG, as image_transport names it) and decodes
the frames of each formed pair with OpenCV; undecodable ones are counted as bad input and reported.

Composed with the fusion node in one process (ftpfusion_composed), pairs go straight to the fusion node
instead of being serialised as FramePair.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..runtime.sync_policy import ApproximateTimePolicy, LatestIrPolicy, SyncStats, discard_after, stamp_to_ns
from ..runtime.encodings import InputError
from . import load_interfaces
from .conversions import compressed_to_image
from .diagnostics import ERROR, OK, WARN, make_array
from .monitoring import RateMeter
from .pairs import ImagePair, pair_to_msg
from .params import declare
from .qos import create_publisher, create_subscription, overriding_options, sensor_data

NODE_NAME = "ftpfusion_sync_node"
IR, VIS = 0, 1
BACKENDS = ("auto", "message_filters", "builtin")
PAIRINGS = ("approximate", "latest_ir")
TRANSPORTS = ("raw", "compressed")
CAMERA_NAMES = ("IR", "visible")


def _import_message_filters():
    try:
        import message_filters
    except ImportError:
        return None
    return message_filters


class SyncNode(Node):
    """Approximate-time IR/visible pairing with statistics (pairs formed, frames dropped, skew)."""

    def __init__(self, on_pair: Callable[[ImagePair], Any] | None = None, *, node_name: str = NODE_NAME,
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)

        def p(name: str, default: Any, description: str = "", **checks: Any) -> Any:
            return declare(self, name, default, description, **checks)

        self.slop = p("slop", 0.02, "approximate-time pairing tolerance (s)", minimum=0.0)
        self.queue_size = p("queue_size", 10, "messages kept per camera while pairing (latest_ir: recent IR "
                            "frames)", minimum=1)
        backend = p("sync_backend", "auto", "auto | message_filters | builtin", choices=BACKENDS)
        self.pairing = p("pairing", "approximate", "approximate (both cameras within slop) | latest_ir (every "
                         "visible frame with the newest IR frame: output at the visible camera's rate)",
                         choices=PAIRINGS)
        self.max_ir_age = p("max_ir_age", 0.2, "latest_ir: oldest IR frame (s behind the visible one) still "
                            "fused; older ones leave the visible frame unpaired", minimum=0.0)
        if self.pairing == "latest_ir" and backend == "message_filters":
            raise ValueError("pairing 'latest_ir' is the package's own policy: it needs sync_backend auto or builtin")
        transports = tuple(p(f"{cam}_transport", "raw", f"{cam} camera: raw (sensor_msgs/Image on {cam}/image_raw) | "
                             f"compressed (sensor_msgs/CompressedImage, JPEG/PNG, on {cam}/image_raw/compressed)",
                             choices=TRANSPORTS) for cam in ("ir", "visible"))
        self.transports = transports
        use_info = p("use_camera_info", True, "attach the latest camera_info to each pair")
        publish_pairs = p("publish_pairs", on_pair is None, "publish FramePair on frame_pair")
        self.silence_timeout = p("silence_timeout", 1.0, "s without images before diagnostics warn",
                                 minimum=0.001)
        self.time_jump = p("time_jump_reset", 1.0, "a stamp this many s back clears the queues; 0: off",
                           minimum=0.0)
        period = p("diagnostics_period", 1.0, "s between /diagnostics messages; 0: none", minimum=0.0)

        self._on_pair = on_pair
        self._meters = (RateMeter(), RateMeter())
        self._pair_meter = RateMeter()
        self._started = time.monotonic()
        self._infos: list[Any] = [None, None]
        self._newest = [None, None]  # newest stamp (ns) seen per camera
        self.time_jumps = 0
        self.frames_lost = [0, 0]        # per camera: samples the DDS reader reports lost in transport
        self._lost_reported = [0, 0]     # frames_lost at the last diagnostics
        self._pair_pub = None
        if publish_pairs:
            frame_pair_type, _ = load_interfaces()
            self._frame_pair_type = frame_pair_type
            self._pair_pub = create_publisher(self, frame_pair_type, "frame_pair")
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        message_filters = _import_message_filters() if backend != "builtin" else None
        if self.pairing == "latest_ir":
            message_filters = None  # message_filters has no latest-IR policy
        if backend == "message_filters" and message_filters is None:
            raise RuntimeError("sync_backend is 'message_filters' but message_filters is not importable")
        # image_transport's naming: the base topic is resolved (remapped) first, then "/compressed" appended,
        # so remapping ir/image_raw also moves its compressed topic
        topics = tuple(self.resolve_topic_name(base) + "/compressed" if t == "compressed" else base
                       for base, t in zip(("ir/image_raw", "visible/image_raw"), transports))
        msg_types = tuple(CompressedImage if t == "compressed" else Image for t in transports)
        self.bad_input = [0, 0]          # per camera: compressed frames that could not be decoded
        self.last_error = ""
        self._last_error_time: float | None = None
        self._decoded: list[tuple[Any, Any]] = [(None, None), (None, None)]  # (message, Image): an IR frame reused
        if message_filters is not None:
            self.backend = "message_filters"
            self._stats = SyncStats(received=[0, 0], dropped=[0, 0])
            # message_filters passes extra keyword arguments on to create_subscription
            subs = [message_filters.Subscriber(self, msg_types[i], t, qos_profile=sensor_data(),
                                               qos_overriding_options=overriding_options(),
                                               event_callbacks=self._lost_events(i))
                    for i, t in enumerate(topics)]
            for i, sub in enumerate(subs):
                sub.registerCallback(self._mf_input, i)  # before the synchroniser's own callback
            self._mf_subs = subs
            self._mf_sync = message_filters.ApproximateTimeSynchronizer(subs, self.queue_size, self.slop)
            self._mf_sync.registerCallback(self._mf_pair)
            self._policy = None
        else:
            self.backend = "builtin"
            if self.pairing == "latest_ir":
                # an IR frame stamped up to `slop` after the visible one counts as simultaneous
                self._policy = LatestIrPolicy(self.queue_size, self.max_ir_age, future_tolerance=self.slop)
            else:
                self._policy = ApproximateTimePolicy(2, self.queue_size, self.slop)
            self._stats = self._policy.stats
            for i, topic in enumerate(topics):
                create_subscription(self, msg_types[i], topic, lambda msg, i=i: self._builtin_add(i, msg),
                                    event_callbacks=self._lost_events(i))
        if use_info:
            for i, topic in enumerate(("ir/camera_info", "visible/camera_info")):
                create_subscription(self, CameraInfo, topic, lambda msg, i=i: self._infos.__setitem__(i, msg))
        self._diag_timer = self.create_timer(period, self.publish_diagnostics) if period > 0 else None
        self.get_logger().info(
            f"pairing {self.resolve_topic_name(topics[0])} + {self.resolve_topic_name(topics[1])} "
            f"({self._pairing_text()}, queue {self.queue_size})"
            + (f" -> {self._pair_pub.topic_name}" if self._pair_pub else "")
        )

    def _pairing_text(self) -> str:
        if self.pairing == "latest_ir":
            return f"latest IR, max IR age {self.max_ir_age * 1e3:.0f} ms"
        return f"{self.backend}, slop {self.slop * 1e3:.0f} ms"

    def _lost_events(self, index: int) -> SubscriptionEventCallbacks:
        """The DDS reader's "message lost" event: a frame too large for the transport (e.g. 4000x3000 over
        Fast DDS without the large-image profile) never arrives, and without this the only symptom would be
        a camera that seems silent."""
        def on_lost(event) -> None:
            self.frames_lost[index] += int(event.total_count_change)
        return SubscriptionEventCallbacks(message_lost=on_lost)

    # -- pairing ----------------------------------------------------------------------------------
    def _check_time(self, index: int, msg: Image) -> None:
        """A stamp far behind the newest one (a bag looping, a simulator restarting) would leave the
        queues full of 'future' frames that every new frame loses against: those are discarded. Frames
        of the other camera already from after the jump are kept (the two topics interleave freely)."""
        stamp = stamp_to_ns(msg.header.stamp)
        newest = self._newest[index]
        jump_ns = int(self.time_jump * 1e9)
        if newest is not None and self.time_jump > 0 and stamp < newest - jump_ns:
            self.time_jumps += 1
            limit = stamp + jump_ns
            if self._policy is not None:
                n = self._policy.discard_after(limit)
            else:
                with self._mf_sync.lock:
                    n = discard_after(self._mf_sync.queues, limit)
            self.get_logger().warning(f"time jumped back {(newest - stamp) / 1e9:.1f} s: "
                                      f"discarded {n} queued frame(s) from before the jump")
            self._newest = [None if s is not None and s > limit else s for s in self._newest]
            newest = None
        self._newest[index] = stamp if newest is None else max(stamp, newest)

    def _mf_input(self, msg: Image, index: int) -> None:
        # message_filters path: this runs before the synchroniser sees the message (registered first)
        self._check_time(index, msg)
        self._meters[index].tick()
        self._stats.received[index] += 1

    def _builtin_add(self, index: int, msg: Image) -> None:
        self._check_time(index, msg)
        self._meters[index].tick()
        pair = self._policy.add(index, stamp_to_ns(msg.header.stamp), msg)
        if pair is not None:
            self._emit(pair[IR], pair[VIS], self._stats.last_skew_s)

    def _mf_pair(self, ir: Image, vis: Image) -> None:
        skew = self._stats.record_set([stamp_to_ns(ir.header.stamp), stamp_to_ns(vis.header.stamp)])
        self._emit(ir, vis, skew)

    def _as_image(self, index: int, msg: Any) -> Image | None:
        """The frame as a sensor_msgs/Image: compressed ones are decoded here, after pairing, so that frames
        that never pair cost nothing, and an IR frame reused by several pairs is decoded once. Undecodable
        data is bad input (counted per camera, throttled log, ERROR in diagnostics): the pair is skipped."""
        if isinstance(msg, Image):
            return msg
        cached_msg, cached_img = self._decoded[index]
        if cached_msg is msg:
            return cached_img  # None for a frame already found bad: counted once, not once per reuse
        try:
            img = compressed_to_image(msg, f"{CAMERA_NAMES[index]} image")
        except InputError as exc:
            self._decoded[index] = (msg, None)
            self.bad_input[index] += 1
            self.last_error = str(exc)
            self._last_error_time = time.monotonic()
            self.get_logger().warning(f"{exc}: pair skipped", throttle_duration_sec=5.0)
            return None
        self._decoded[index] = (msg, img)
        return img

    def _emit(self, ir: Any, vis: Any, skew: float) -> None:
        ir, vis = self._as_image(IR, ir), self._as_image(VIS, vis)
        if ir is None or vis is None:
            return
        self._pair_meter.tick()
        pair = ImagePair(ir=ir, visible=vis, skew_sec=skew, ir_info=self._infos[IR], visible_info=self._infos[VIS])
        if self._pair_pub is not None:
            self._pair_pub.publish(pair_to_msg(pair, self._frame_pair_type))
        if self._on_pair is not None:
            self._on_pair(pair)

    # -- statistics -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics and tests (frames dropped = received but neither paired nor queued)."""
        st = self._stats
        if self._policy is not None:
            queued = self._policy.queued()
            dropped = list(st.dropped)
        else:
            queued = [len(q) for q in self._mf_sync.queues]
            dropped = [max(0, st.received[i] - st.sets_formed - queued[i]) for i in (IR, VIS)]
        values = {
            "backend": self.backend,
            "pairing": self.pairing,
            "ir_received": st.received[IR],
            "visible_received": st.received[VIS],
            "pairs_formed": st.sets_formed,
            "frames_dropped_ir": dropped[IR],
            "frames_dropped_visible": dropped[VIS],
            "frames_queued_ir": queued[IR],
            "frames_queued_visible": queued[VIS],
            "skew_mean_ms": st.skew_mean_s * 1e3,
            "skew_abs_max_ms": st.skew_abs_max_s * 1e3,
            "last_skew_ms": st.last_skew_s * 1e3,
            "time_jumps": self.time_jumps,
            "frames_lost_ir": self.frames_lost[IR],
            "frames_lost_visible": self.frames_lost[VIS],
            "bad_input_ir": self.bad_input[IR],
            "bad_input_visible": self.bad_input[VIS],
        }
        if self.pairing == "latest_ir":
            values.update(
                ir_reused=st.ir_reused,                    # pairs fused with an IR frame used before
                visible_no_ir=st.visible_no_ir,            # visible frames refused: no IR frame yet
                visible_ir_too_old=st.visible_ir_too_old,  # visible frames refused: IR older than max_ir_age
                ir_age_mean_ms=st.ir_age_mean_s * 1e3,
                ir_age_max_ms=st.ir_age_max_s * 1e3,
                last_ir_age_ms=st.last_ir_age_s * 1e3,
            )
        return values

    def publish_diagnostics(self) -> None:
        now = time.monotonic()
        values: dict[str, Any] = {
            "ir_rate_hz": self._meters[IR].rate(now),
            "visible_rate_hz": self._meters[VIS].rate(now),
            "pair_rate_hz": self._pair_meter.rate(now),
        }
        values.update(self.stats())
        problems = []
        for i, name in ((IR, "IR"), (VIS, "visible")):
            quiet = self._meters[i].silent_for(now)
            quiet = now - self._started if quiet is None else quiet
            values[f"{name.lower()}_silent_s"] = quiet
            if quiet > self.silence_timeout:
                problems.append(f"no {name} images for {quiet:.1f} s")
            lost = self.frames_lost[i] - self._lost_reported[i]
            self._lost_reported[i] = self.frames_lost[i]
            if lost > 0:
                problems.append(f"{lost} {name} frame(s) lost in transport{self._size_hint(i)}")
        level, message = (WARN, "; ".join(problems)) if problems else (OK, f"pairing at {values['pair_rate_hz']:.1f} Hz")
        values["last_error"] = self.last_error
        period = self._diag_timer.timer_period_ns * 1e-9 if self._diag_timer else 1.0
        if self._last_error_time is not None and now - self._last_error_time < max(2.0, 2 * period):
            level, message = ERROR, "; ".join([self.last_error] + problems)  # as the fusion node reports bad input
        values["slop_ms"] = self.slop * 1e3
        if self.pairing == "latest_ir":
            values["max_ir_age_ms"] = self.max_ir_age * 1e3
        values["queue_size"] = self.queue_size
        self._diag_pub.publish(make_array(self.get_clock().now().to_msg(), f"{self.get_name()}: synchronizer",
                                          level, message, "ftpfusion_ros", values))


    def _size_hint(self, index: int) -> str:
        """Why frames may be lost: their size, from the camera's camera_info (small enough to arrive)."""
        info = self._infos[index]
        size = f" ({info.width}x{info.height} per camera_info)" if info is not None and info.width else ""
        return (f"{size}: frames larger than the DDS transport carries? Point FASTDDS_DEFAULT_PROFILES_FILE at "
                "the package's config/fastdds_large_images.xml (the launch files do)")

    def destroy_node(self) -> None:
        if not hasattr(self, "_diag_pub"):  # __init__ failed (bad parameter): no statistics to report
            super().destroy_node()
            return
        st = self.stats()
        summary = (f"pairs formed {st['pairs_formed']}, frames dropped IR {st['frames_dropped_ir']} / visible "
                   f"{st['frames_dropped_visible']}, skew mean {st['skew_mean_ms']:.1f} ms, max |skew| "
                   f"{st['skew_abs_max_ms']:.1f} ms")
        if self.pairing == "latest_ir":
            summary += (f", IR frames reused {st['ir_reused']}, IR age mean {st['ir_age_mean_ms']:.1f} ms / max "
                        f"{st['ir_age_max_ms']:.1f} ms, visible frames without a recent IR frame "
                        f"{st['visible_no_ir'] + st['visible_ir_too_old']}")
        if self.context.ok():
            self.get_logger().info(summary)
        else:  # after Ctrl-C / SIGTERM the logger's /rosout publisher is gone and rcl would complain
            print(f"[{self.get_name()}] {summary}", file=sys.stderr)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    from .runner import run_nodes

    return run_nodes(lambda: [SyncNode()], args)


if __name__ == "__main__":
    sys.exit(main())
