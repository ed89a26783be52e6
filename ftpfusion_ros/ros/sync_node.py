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

A managed node (lifecycle.py): configure reads and checks the parameters and creates the pairing policy
and the FramePair publisher, activate subscribes the cameras, deactivate unsubscribes them. ``slop``,
``queue_size``, ``max_ir_age`` and the diagnostics thresholds may change at run time (next frame); the
others are read-only. Diagnostics check the cameras' rates against ``expected_rate.*`` and the stamps'
age against ``stamp_age.*``, as diagnostic_updater's FrequencyStatus / TimeStampStatus do.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..runtime.sync_policy import ApproximateTimePolicy, LatestIrPolicy, SyncStats, discard_after, stamp_to_ns
from ..runtime.encodings import InputError
from . import load_interfaces
from .conversions import compressed_to_image
from ..runtime.settings import Setting
from .diagnostics import ERROR, OK, WARN, FrequencyCheck, StampAgeCheck
from .lifecycle import ManagedNode
from .monitoring import RateMeter
from .pairs import ImagePair, pair_to_msg
from .params import RuntimeParameters, declare_settings, read_settings
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


SYNC_NODE_SETTINGS: tuple[Setting, ...] = (
    Setting("slop", "float", 0.02, "approximate-time pairing tolerance (s); latest_ir: an IR frame stamped up "
            "to slop after the visible one counts as simultaneous", minimum=0.0, maximum=10.0, runtime=True),
    Setting("queue_size", "int", 10, "messages kept per camera while pairing (latest_ir: recent IR frames)",
            minimum=1, maximum=10000, runtime=True),
    Setting("sync_backend", "str", "auto", "auto | message_filters | builtin", choices=BACKENDS),
    Setting("pairing", "str", "approximate", "approximate (both cameras within slop) | latest_ir (every "
            "visible frame with the newest IR frame: output at the visible camera's rate)", choices=PAIRINGS),
    Setting("max_ir_age", "float", 0.2, "latest_ir: oldest IR frame (s behind the visible one) still fused; "
            "older ones leave the visible frame unpaired", minimum=0.0, maximum=60.0, runtime=True),
    *(Setting(f"{cam}_transport", "str", "raw", f"{cam} camera: raw (sensor_msgs/Image on {cam}/image_raw) | "
              f"compressed (sensor_msgs/CompressedImage, JPEG/PNG, on {cam}/image_raw/compressed)",
              choices=TRANSPORTS) for cam in ("ir", "visible")),
    Setting("use_camera_info", "bool", True, "attach the latest camera_info to each pair"),
    Setting("silence_timeout", "float", 1.0, "s without images before diagnostics warn", minimum=0.001,
            runtime=True),
    Setting("time_jump_reset", "float", 1.0, "a stamp this many s back clears the queues; 0: off", minimum=0.0,
            runtime=True),
    Setting("diagnostics_period", "float", 1.0, "s between /diagnostics messages; 0: none", minimum=0.0),
    *(Setting(f"expected_rate.{cam}_{bound}_hz", "float", 0.0, f"{cam} camera: {word} expected rate (Hz); "
              "diagnostics warn outside (FrequencyStatus); 0: no bound", minimum=0.0, runtime=True)
      for cam in ("ir", "visible") for bound, word in (("min", "lowest"), ("max", "highest"))),
    Setting("stamp_age.max", "float", 5.0, "s: an image stamp older than this on arrival makes diagnostics "
            "warn (TimeStampStatus); 0: off", minimum=0.0, runtime=True),
    Setting("stamp_age.min", "float", -1.0, "s: a stamp further in the future than -min warns too",
            maximum=0.0, runtime=True),
)


class SyncNode(ManagedNode):
    """Approximate-time IR/visible pairing with statistics (pairs formed, frames dropped, skew)."""

    def __init__(self, on_pair: Callable[[ImagePair], Any] | None = None, *, node_name: str = NODE_NAME,
                 autostart: bool = True, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._setup(on_pair, autostart)
        except BaseException:
            self.destroy_node()  # no half-built node left on the graph (see FusionNode)
            raise

    def _setup(self, on_pair: Callable[[ImagePair], Any] | None, autostart: bool) -> None:
        settings = SYNC_NODE_SETTINGS + (Setting("publish_pairs", "bool", on_pair is None,
                                                 "publish FramePair on frame_pair"),)
        self._settings = settings
        values = declare_settings(self, settings)  # type/range errors: a ValueError naming the parameter
        autostart = self._declare_autostart(autostart)
        self._on_pair = on_pair
        self._runtime = RuntimeParameters(self, settings, values, self._on_runtime_change)
        self._rate_checks = tuple(FrequencyCheck(f"{name} camera") for name in CAMERA_NAMES)
        self._age_checks = tuple(StampAgeCheck(f"{name} stamps") for name in CAMERA_NAMES)
        self._apply_values(values)
        self.pairing = values["pairing"]
        self.transports = (values["ir_transport"], values["visible_transport"])
        self.backend = "builtin"
        self._policy = None
        self._mf_sync = None
        self._subs: list[Any] = []
        self._mf_subs: list[Any] = []
        self._pair_pub = None
        self._reset_counters()
        self.finish_construction(values["diagnostics_period"], autostart)

    # -- settings ---------------------------------------------------------------------------------
    def _apply_values(self, v: dict[str, Any]) -> None:
        self.slop = v["slop"]
        self.queue_size = v["queue_size"]
        self.max_ir_age = v["max_ir_age"]
        self.silence_timeout = v["silence_timeout"]
        self.time_jump = v["time_jump_reset"]
        for check, cam in zip(self._rate_checks, ("ir", "visible")):
            check.set_bounds(v[f"expected_rate.{cam}_min_hz"], v[f"expected_rate.{cam}_max_hz"])
        for check in self._age_checks:
            check.set_bounds(v["stamp_age.min"], v["stamp_age.max"])

    def _on_runtime_change(self, changed: dict[str, Any]) -> None:
        """Accepted run-time changes: the pairing policy takes slop / queue_size / max_ir_age with the next
        frame (its queues are trimmed to a smaller queue_size when that frame arrives)."""
        if self.backend == "message_filters" and {"slop", "queue_size"} & changed.keys():
            sync = self._mf_sync
            if sync is not None:
                with sync.lock:
                    if "queue_size" in changed:
                        sync.queue_size = changed["queue_size"]
                    if "slop" in changed:
                        from rclpy.duration import Duration

                        sync.slop = Duration(seconds=changed["slop"])
        self._apply_values(self._runtime.values)
        policy = self._policy
        if policy is not None:
            with policy._lock:
                policy.queue_size = self.queue_size
                if isinstance(policy, LatestIrPolicy):
                    policy.max_ir_age_ns = int(round(self.max_ir_age * 1e9))
                    policy.future_ns = int(round(self.slop * 1e9))
                else:
                    policy.slop_ns = int(round(self.slop * 1e9))
        self.get_logger().info("parameters changed: " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))

    def _reset_counters(self) -> None:
        self._meters = (RateMeter(), RateMeter())
        self._pair_meter = RateMeter()
        self._started = time.monotonic()
        self._infos: list[Any] = [None, None]
        self._newest = [None, None]  # newest stamp (ns) seen per camera
        self.time_jumps = 0
        self.frames_lost = [0, 0]        # per camera: samples the DDS reader reports lost in transport
        self._lost_reported = [0, 0]     # frames_lost at the last diagnostics
        self.bad_input = [0, 0]          # per camera: compressed frames that could not be decoded
        self._decoded: list[tuple[Any, Any]] = [(None, None), (None, None)]  # (message, Image): an IR frame reused
        self._stats = SyncStats(received=[0, 0], dropped=[0, 0])

    # -- lifecycle --------------------------------------------------------------------------------
    def _configure(self) -> None:
        v = read_settings(self, self._settings)
        self._runtime.values = dict(v)
        self._apply_values(v)
        self.pairing = v["pairing"]
        backend = v["sync_backend"]
        if self.pairing == "latest_ir" and backend == "message_filters":
            raise ValueError("pairing 'latest_ir' is the package's own policy: it needs sync_backend auto or builtin")
        self.transports = (v["ir_transport"], v["visible_transport"])
        self._use_info = v["use_camera_info"]
        message_filters = _import_message_filters() if backend != "builtin" else None
        if self.pairing == "latest_ir":
            message_filters = None  # message_filters has no latest-IR policy
        if backend == "message_filters" and message_filters is None:
            raise RuntimeError("sync_backend is 'message_filters' but message_filters is not importable")
        self._message_filters = message_filters
        self.backend = "message_filters" if message_filters is not None else "builtin"
        self._make_policy()
        if v["publish_pairs"]:
            frame_pair_type, _ = load_interfaces()
            self._frame_pair_type = frame_pair_type
            self._pair_pub = create_publisher(self, frame_pair_type, "frame_pair", lifecycle=True)
        # image_transport's naming: the base topic is resolved (remapped) first, then "/compressed" appended,
        # so remapping ir/image_raw also moves its compressed topic
        self._topics = tuple(self.resolve_topic_name(base) + "/compressed" if t == "compressed" else base
                             for base, t in zip(("ir/image_raw", "visible/image_raw"), self.transports))
        self._msg_types = tuple(CompressedImage if t == "compressed" else Image for t in self.transports)
        self.get_logger().info(
            f"configured: pairing {self.resolve_topic_name(self._topics[0])} + "
            f"{self.resolve_topic_name(self._topics[1])} ({self._pairing_text()}, queue {self.queue_size})"
            + (f" -> {self._pair_pub.topic_name}" if self._pair_pub else ""))

    def _make_policy(self) -> None:
        if self.backend == "message_filters":
            self._policy = None
        elif self.pairing == "latest_ir":
            # an IR frame stamped up to `slop` after the visible one counts as simultaneous
            self._policy = LatestIrPolicy(self.queue_size, self.max_ir_age, future_tolerance=self.slop)
        else:
            self._policy = ApproximateTimePolicy(2, self.queue_size, self.slop)

    def _activate(self) -> None:
        self._reset_counters()
        if self.backend == "message_filters":
            mf = self._message_filters
            self._stats = SyncStats(received=[0, 0], dropped=[0, 0])
            # message_filters passes extra keyword arguments on to create_subscription
            subs = [mf.Subscriber(self, self._msg_types[i], t, qos_profile=sensor_data(),
                                  qos_overriding_options=overriding_options(), event_callbacks=self._lost_events(i))
                    for i, t in enumerate(self._topics)]
            for i, sub in enumerate(subs):
                sub.registerCallback(self._mf_input, i)  # before the synchroniser's own callback
            self._mf_subs = subs
            self._mf_sync = mf.ApproximateTimeSynchronizer(subs, self.queue_size, self.slop)
            self._mf_sync.registerCallback(self._mf_pair)
        else:
            self._make_policy()  # empty queues and fresh statistics
            self._stats = self._policy.stats
            for i, topic in enumerate(self._topics):
                self._subs.append(create_subscription(self, self._msg_types[i], topic,
                                                      lambda msg, i=i: self._builtin_add(i, msg),
                                                      event_callbacks=self._lost_events(i)))
        if self._use_info:
            for i, topic in enumerate(("ir/camera_info", "visible/camera_info")):
                self._subs.append(create_subscription(self, CameraInfo, topic,
                                                      lambda msg, i=i: self._infos.__setitem__(i, msg)))
        self.get_logger().info("active")

    def _deactivate(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        for sub in self._mf_subs:
            self.destroy_subscription(getattr(sub, "sub", sub))
        self._subs, self._mf_subs = [], []
        self.get_logger().info("inactive")

    def _cleanup(self) -> None:
        if self._pair_pub is not None:
            self.destroy_lifecycle_publisher(self._pair_pub)
            self._pair_pub = None
        self._mf_sync = None


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
            elif self._mf_sync is None:
                n = 0
            else:
                with self._mf_sync.lock:
                    n = discard_after(self._mf_sync.queues, limit)
            self.get_logger().warning(f"time jumped back {(newest - stamp) / 1e9:.1f} s: "
                                      f"discarded {n} queued frame(s) from before the jump")
            self._newest = [None if s is not None and s > limit else s for s in self._newest]
            newest = None
        self._newest[index] = stamp if newest is None else max(stamp, newest)

    def _stamp_age(self, index: int, msg: Any) -> None:
        self._age_checks[index].add(self.stamp_age(msg.header.stamp))

    def _mf_input(self, msg: Image, index: int) -> None:
        # message_filters path: this runs before the synchroniser sees the message (registered first)
        self._stamp_age(index, msg)
        self._check_time(index, msg)
        self._meters[index].tick()
        self._stats.received[index] += 1

    def _builtin_add(self, index: int, msg: Image) -> None:
        if self._policy is None:  # cleaned up meanwhile
            return
        self._stamp_age(index, msg)
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
            self.record_error(str(exc))
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
        elif self._mf_sync is None:  # not active yet
            queued, dropped = [0, 0], list(st.dropped)
        else:
            queued = [len(q) for q in self._mf_sync.queues]
            dropped = [max(0, st.received[i] - st.sets_formed - queued[i]) for i in (IR, VIS)]
        values = {
            "state": self.state_label,
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
        if self.pairing == "latest_ir" and hasattr(st, "ir_reused"):
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
            rate_key = "ir_rate_hz" if i == IR else "visible_rate_hz"
            check = self._rate_checks[i]
            values[f"expected_{rate_key[:-3]}_min_hz"] = check.min_hz
            values[f"expected_{rate_key[:-3]}_max_hz"] = check.max_hz
            for level_i, text in (check.status(values[rate_key], self._meters[i].count),
                                  self._age_checks[i].report(values, name.lower())):
                if level_i != OK and quiet <= self.silence_timeout:
                    problems.append(text)
        state = self.state_label
        if state != "active":  # not pairing by design: ERROR only when configure failed
            problems = []
            level = ERROR if self.configure_error else OK
            message = state + (f": configure failed: {self.configure_error}" if self.configure_error else "")
        elif problems:
            level, message = WARN, "; ".join(problems)
        else:
            level, message = OK, f"pairing at {values['pair_rate_hz']:.1f} Hz"
        values["last_error"] = self.last_error
        if self.error_is_recent(now):
            level, message = ERROR, "; ".join([self.last_error] + problems)  # as the fusion node reports bad input
        values["slop_ms"] = self.slop * 1e3
        if self.pairing == "latest_ir":
            values["max_ir_age_ms"] = self.max_ir_age * 1e3
        values["queue_size"] = self.queue_size
        self.send_diagnostics("synchronizer", level, message, "ftpfusion_ros", values)

    def _size_hint(self, index: int) -> str:
        """Why frames may be lost: their size, from the camera's camera_info (small enough to arrive)."""
        info = self._infos[index]
        size = f" ({info.width}x{info.height} per camera_info)" if info is not None and info.width else ""
        return (f"{size}: frames larger than the DDS transport carries? Point FASTDDS_DEFAULT_PROFILES_FILE at "
                "the package's config/fastdds_large_images.xml (the launch files do)")

    def destroy_node(self) -> None:
        if not hasattr(self, "_runtime"):  # __init__ failed (bad parameter): no statistics to report
            super().destroy_node()
            return
        was_active = self.state_label == "active"
        try:
            self.stop_managed()
        except Exception:  # noqa: BLE001 - the context may already be shut down
            pass
        if was_active:
            self._log_summary()
        super().destroy_node()

    def _log_summary(self) -> None:
        st = self.stats()
        summary = (f"pairs formed {st['pairs_formed']}, frames dropped IR {st['frames_dropped_ir']} / visible "
                   f"{st['frames_dropped_visible']}, skew mean {st['skew_mean_ms']:.1f} ms, max |skew| "
                   f"{st['skew_abs_max_ms']:.1f} ms")
        if self.pairing == "latest_ir" and "ir_reused" in st:
            summary += (f", IR frames reused {st['ir_reused']}, IR age mean {st['ir_age_mean_ms']:.1f} ms / max "
                        f"{st['ir_age_max_ms']:.1f} ms, visible frames without a recent IR frame "
                        f"{st['visible_no_ir'] + st['visible_ir_too_old']}")
        if self.context.ok():
            self.get_logger().info(summary)
        else:  # after Ctrl-C / SIGTERM the logger's /rosout publisher is gone and rcl would complain
            print(f"[{self.get_name()}] {summary}", file=sys.stderr)


def main(args: list[str] | None = None) -> int:
    from .runner import run_nodes

    return run_nodes(lambda: [SyncNode(autostart=False)], args)


if __name__ == "__main__":
    sys.exit(main())
