"""ftpfusion_fusion_node: runs the streaming fusion engine on IR/visible pairs (a managed node).

Input: FramePair on ``frame_pair`` (split mode), or pairs handed over in-process by the sync node
(composed mode, ftpfusion_composed). Outputs, all in the visible camera's frame and with its stamp:

- ``fused/image`` (bgr8) and ``fused/camera_info``,
- ``fused/image_seg``: fixed size, rgb8 or normalised float (32FC3), for a segmentation network,
- ``aligned/ir`` (mono8, registered onto the visible frame) and ``aligned/visible`` (bgr8),
- ``fused/status`` (FusionStatus, one per fused frame) and ``/diagnostics`` (periodic, in every state).

Lifecycle (lifecycle.py): the node starts unconfigured; configure validates the settings and loads the
model (a failure is FAILURE, with the reason logged and in diagnostics), activate subscribes and
publishes, deactivate stops both (frames held back by look-ahead are published first), cleanup frees the
model and the ring. ``autostart: true`` (the launch files' default) does configure + activate at start.

Parameters: the engine settings of runtime/settings.py plus the node's own (FUSION_NODE_SETTINGS), all with
descriptors; the thermal gain control (``agc.*``), the segmentation output (``seg.*`` but ``enabled``),
``flicker_warn``, ``queue_size`` and the diagnostics thresholds may change at run time and apply from the
next frame; the others are read-only (a change needs cleanup + configure).

The engine runs on a worker thread fed by a short FIFO (``queue_size`` pairs): the executor keeps taking
messages while a frame is being fused, frames stay in order, and when fusion cannot keep up the oldest
waiting pair is dropped (counted in ``pairs_dropped``) so that latency stays bounded. Inputs the engine
rejects (encoding, size, dtype) are counted, reported in diagnostics and skipped; the node keeps running.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, Image

from ..metrics.online import FlickerMonitor, luma_mean
from ..runtime import EngineConfig, FusionEngine, FusionResult, InputError, SizeChangedError, resolve_model_name
from ..runtime.seg_output import seg_ready
from ..runtime.settings import ENGINE_SETTINGS, Setting, agc_config, engine_config, seg_config
from ..runtime.sync_policy import stamp_to_ns
from . import load_interfaces
from .conversions import array_to_image, camera_info_for, image_to_array
from .diagnostics import ERROR, OK, WARN, FrequencyCheck, StampAgeCheck
from .lifecycle import ManagedNode
from .monitoring import LatencyWindow, RateMeter
from .pairs import ImagePair, pair_from_msg
from .params import RuntimeParameters, declare_settings, read_settings
from .qos import create_publisher, create_subscription

NODE_NAME = "ftpfusion_fusion_node"


def _set_cpu_threads(requested: int) -> int:
    """Intra-op threads of the engine on CPU. 0 (auto) leaves one core to the executor, DDS and the
    camera drivers: on a 2-core machine, OpenMP workers competing with them made each frame several
    times slower than one thread."""
    import torch

    threads = requested if requested > 0 else max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(threads)
    return threads


FUSION_NODE_SETTINGS: tuple[Setting, ...] = (
    Setting("cpu_threads", "int", 0, "engine threads on CPU; 0: all cores but one", minimum=0, maximum=1024),
    Setting("queue_size", "int", 2, "pairs waiting for the engine before the oldest is dropped", minimum=1,
            maximum=1000, runtime=True),
    Setting("publish_aligned", "bool", True, "publish aligned/ir and aligned/visible"),
    Setting("silence_timeout", "float", 1.0, "s without input before diagnostics warn", minimum=0.001,
            runtime=True),
    Setting("flicker_warn", "float", 2.0, "flicker score that makes diagnostics warn; 0: off", minimum=0.0,
            runtime=True),
    Setting("reset_after_errors", "int", 30, "consecutive rejected pairs before the engine resets; 0: never",
            minimum=0, runtime=True),
    Setting("time_jump_reset", "float", 1.0, "a stamp this many s behind the last pair resets the ring (bag "
            "loop, restart); smaller steps back are dropped as out of order", minimum=0.0, runtime=True),
    Setting("diagnostics_period", "float", 1.0, "s between /diagnostics messages; 0: none", minimum=0.0),
    Setting("expected_rate.min_hz", "float", 0.0, "fused output: lowest expected rate (Hz); below it "
            "diagnostics warn (FrequencyStatus); 0: no bound", minimum=0.0, runtime=True),
    Setting("expected_rate.max_hz", "float", 0.0, "fused output: highest expected rate (Hz); 0: no bound",
            minimum=0.0, runtime=True),
    Setting("stamp_age.max", "float", 5.0, "s: a pair whose visible stamp is older than this when it arrives "
            "makes diagnostics warn (TimeStampStatus); 0: off", minimum=0.0, runtime=True),
    Setting("stamp_age.min", "float", -1.0, "s: a stamp further in the future than -min warns too",
            maximum=0.0, runtime=True),
)
SETTINGS = ENGINE_SETTINGS + FUSION_NODE_SETTINGS


def _validate(values: dict[str, Any]) -> None:
    """Cross-field rules of run-time changes (e.g. fixed_high > fixed_low, a temperature window with a
    radiometric unit): the schema checked each value already."""
    agc_config(values)
    seg_config(values)


class FusionNode(ManagedNode):
    def __init__(self, *, subscribe_pairs: bool = True, node_name: str = NODE_NAME, autostart: bool = True,
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._setup(subscribe_pairs, autostart)
        except BaseException:
            # a half-built node would keep its services (lifecycle, parameters) on the graph, where a
            # later node of the same name would share their names
            self.destroy_node()
            raise

    def _setup(self, subscribe_pairs: bool, autostart: bool) -> None:
        self._subscribe_pairs = subscribe_pairs
        values = declare_settings(self, SETTINGS)  # type/range errors: a ValueError naming the parameter
        autostart = self._declare_autostart(autostart)
        self._frame_pair_type, self._status_type = load_interfaces()
        self._runtime = RuntimeParameters(self, SETTINGS, values, self._on_runtime_change, _validate)
        self._rate_check, self._age_check = FrequencyCheck("fused output"), StampAgeCheck("input stamps")
        self._apply_node_values(values)
        self._reset_counters()
        self.engine: FusionEngine | None = None
        self.engine_config: EngineConfig | None = None
        self.cpu_threads: int | None = None
        self._pair_sub = None
        self._pubs: list[Any] = []
        self._worker: threading.Thread | None = None
        self._pending: deque[ImagePair] = deque()
        self._cv = threading.Condition()
        self._engine_lock = threading.Lock()  # held while a pair is fused (deactivate waits for it)
        self._stop = False
        self._active = False
        self._engine_update: dict[str, Any] = {}  # run-time changes for the worker (next frame)
        self.finish_construction(values["diagnostics_period"], autostart)

    # -- settings ---------------------------------------------------------------------------------
    def _apply_node_values(self, v: dict[str, Any]) -> None:
        self.queue_size = v["queue_size"]
        self.publish_aligned = v["publish_aligned"]
        self.seg_enabled = v["seg.enabled"]
        self.seg_config = seg_config(v)
        self.silence_timeout = v["silence_timeout"]
        self.flicker_warn = v["flicker_warn"]
        self.reset_after_errors = v["reset_after_errors"]
        self.time_jump = v["time_jump_reset"]
        self._rate_check.set_bounds(v["expected_rate.min_hz"], v["expected_rate.max_hz"])
        self._age_check.set_bounds(v["stamp_age.min"], v["stamp_age.max"])

    def _on_runtime_change(self, changed: dict[str, Any]) -> None:
        """Accepted run-time changes (set-parameters callback): node values at once, the engine's and the
        segmentation output's from the next frame (the worker picks them up before fusing it)."""
        values = self._runtime.values
        with self._cv:
            self._apply_node_values(values)
            if any(k.startswith("agc.") for k in changed):
                self._engine_update["agc"] = agc_config(values)
            while len(self._pending) > self.queue_size:  # a smaller queue: the oldest waiting pairs go
                self._pending.popleft()
                self.queue_overflows += 1
        self.get_logger().info("parameters changed: " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))

    # -- lifecycle --------------------------------------------------------------------------------
    def _configure(self) -> None:
        values = read_settings(self, SETTINGS)
        _validate(values)
        self._runtime.values = dict(values)
        self._apply_node_values(values)
        with self._cv:
            self._engine_update = {}  # the engine is built from the current values
        # "auto": the engine's rule (FTPFusion when its checkpoint ships, else the classical fallback),
        # resolved here so that the log and the status name the model actually run
        engine_values = {s.name: values[s.name] for s in ENGINE_SETTINGS}
        self.engine_config = engine_config(engine_values, model=resolve_model_name(values["model"]))
        self.engine = FusionEngine(self.engine_config)  # loads the model: configuration errors raise here
        registration_file, homography = values["registration_file"], values["homography"]
        self.get_logger().info("registration: " + (f"file {registration_file}" if registration_file else
                                                   "homography parameter" if homography else
                                                   "none (IR resized onto the visible frame)"))
        self.cpu_threads = (_set_cpu_threads(values["cpu_threads"]) if self.engine.device.type == "cpu" else None)
        self._pubs = []

        def pub(msg_type: Any, topic: str) -> Any:
            p = create_publisher(self, msg_type, topic, lifecycle=True)
            self._pubs.append(p)  # cleaned up even when a later one fails
            return p

        self._pub_fused = pub(Image, "fused/image")
        self._pub_info = pub(CameraInfo, "fused/camera_info")
        self._pub_seg = pub(Image, "fused/image_seg") if self.seg_enabled else None
        self._pub_aligned = (pub(Image, "aligned/ir"), pub(Image, "aligned/visible")) if self.publish_aligned else None
        self._pub_status = pub(self._status_type, "fused/status")
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="ftpfusion-engine", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"configured: fusing with {self.engine_config.model} on {self.engine.device}"
            + (f" ({self.cpu_threads} threads)" if self.cpu_threads else "")
            + f" (window {self.engine.window}, look-ahead {self.engine_config.lookahead}), input "
            + (self.resolve_topic_name("frame_pair") if self._subscribe_pairs else "in-process pairs"))

    def _activate(self) -> None:
        self._reset_counters()
        self._last_stamp = None
        if self._subscribe_pairs:
            lost = SubscriptionEventCallbacks(message_lost=self._on_lost)
            self._pair_sub = create_subscription(self, self._frame_pair_type, "frame_pair",
                                                 lambda m: self.submit(pair_from_msg(m)), event_callbacks=lost)
        self._active = True
        self.get_logger().info("active")

    def _deactivate(self) -> None:
        self._active = False
        if self._pair_sub is not None:
            self.destroy_subscription(self._pair_sub)
            self._pair_sub = None
        with self._cv:
            self._pending.clear()
        with self._engine_lock:  # the frame being fused is finished and published first
            if self.engine is not None:
                try:  # frames held back by look-ahead are still due
                    for res in self.engine.flush():
                        self._publish(res)
                except Exception:  # the context may already be shut down; nothing more to do then
                    pass
                self.engine.reset()  # time passes while inactive: the next activation starts a new stream
        self.get_logger().info("inactive")

    def _cleanup(self) -> None:
        self._active = False
        if self._worker is not None:
            with self._cv:
                self._stop = True
                self._cv.notify_all()
            self._worker.join(timeout=10.0)
            self._worker = None
        for p in self._pubs:
            self.destroy_lifecycle_publisher(p)
        self._pubs = []
        device = self.engine.device if self.engine is not None else None
        self.engine = None  # the model and the ring go with it
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _reset_counters(self) -> None:
        # Counters (written by the worker / executor threads, read by diagnostics; ints are atomic enough).
        self.pairs_lost = 0  # FramePair samples the DDS reader reports lost (too large for the transport?)
        self._lost_reported = 0
        self.pairs_received = 0
        self.pairs_fused = 0
        self.queue_overflows = 0
        self.input_errors = 0
        self.internal_errors = 0
        self._consecutive_errors = 0
        self._last_stamp: int | None = None
        self.time_jumps = 0      # big steps back in time: ring reset, stream goes on
        self.size_changes = 0    # visible resolution changed: ring reset, stream goes on
        self._started = time.monotonic()
        self._in_meter, self._out_meter = RateMeter(), RateMeter()
        self._engine_ms, self._node_ms = LatencyWindow(), LatencyWindow()
        self._flicker = FlickerMonitor()  # brightness change of the output the sources do not explain

    @property
    def pairs_dropped(self) -> int:
        return self.queue_overflows + self.input_errors + self.internal_errors

    def _on_lost(self, event: Any) -> None:
        self.pairs_lost += int(event.total_count_change)

    # -- input ------------------------------------------------------------------------------------
    def submit(self, pair: ImagePair) -> None:
        """Queue a pair for fusion (thread-safe, never blocks); drops the oldest waiting one when full.
        Ignored unless the node is active."""
        if not self._active:
            return
        self._in_meter.tick()
        try:
            self._age_check.add(self.stamp_age(pair.visible.header.stamp))
        except Exception:  # noqa: BLE001 - a malformed stamp is the engine's to report
            pass
        with self._cv:
            self.pairs_received += 1
            if len(self._pending) >= self.queue_size:
                self._pending.popleft()
                self.queue_overflows += 1
            self._pending.append(pair)
            self._cv.notify()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                pair = self._pending.popleft()
            try:
                with self._engine_lock:
                    if self._active and self.engine is not None:
                        self._take_engine_update()
                        self._fuse(pair)
            except Exception as exc:  # last resort: the worker must outlive any one frame
                self._internal_error(exc)

    def _take_engine_update(self) -> None:
        """Run-time parameter changes reach the engine here, before the next frame is fused."""
        with self._cv:
            update, self._engine_update = self._engine_update, {}
        if "agc" in update:
            self.engine.agc.reconfigure(update["agc"])

    def _fuse(self, pair: ImagePair) -> None:
        if not self._in_order(stamp_to_ns(pair.visible.header.stamp)):
            return
        try:
            ir = image_to_array(pair.ir, "IR image")
            vis = image_to_array(pair.visible, "visible image")
            encodings = {"ir_encoding": pair.ir.encoding, "vis_encoding": pair.visible.encoding}
            try:
                result = self.engine.push(ir, vis, stamp=pair, **encodings)
            except SizeChangedError as exc:
                # a new resolution is a new stream (camera reconfigured): take it at once, with a fresh ring,
                # rather than rejecting frames until reset_after_errors
                self.size_changes += 1
                self.get_logger().warning(f"{exc}: resetting the engine's temporal ring", throttle_duration_sec=5.0)
                self.engine.reset()
                result = self.engine.push(ir, vis, stamp=pair, **encodings)
        except InputError as exc:
            self._record_error(f"input rejected: {exc}", internal=False)
            return
        except Exception as exc:  # keep the node alive whatever one frame does; the log has the traceback
            self._internal_error(exc)
            return
        self._consecutive_errors = 0
        if result is not None:
            try:
                self._publish(result)
            except Exception as exc:
                if not self.context.ok():
                    return  # shutting down (Ctrl-C, SIGTERM): the outputs are gone, nothing went wrong
                self._internal_error(exc, "publishing failed")

    def _in_order(self, stamp: int) -> bool:
        """False (pair dropped as bad input) for a pair older than the last one by less than
        time_jump_reset: camera or network reordering, whose frames are not the ring's future. A bigger
        step back (a bag looping, a simulator restarting) starts a new stream: the ring is reset. The same
        threshold as the sync node's, so both nodes agree on what a time jump is."""
        last = self._last_stamp
        if last is not None and stamp < last:
            if self.time_jump > 0 and stamp <= last - int(self.time_jump * 1e9):
                self.time_jumps += 1
                self.get_logger().warning(f"time jumped back {(last - stamp) / 1e9:.1f} s: resetting the "
                                          "engine's temporal ring", throttle_duration_sec=5.0)
                self.engine.reset()
            else:
                self._record_error(f"input rejected: pair {(last - stamp) / 1e6:.0f} ms older than the previous "
                                   "one (out of order)", internal=False)
                return False
        self._last_stamp = stamp
        return True

    def _internal_error(self, exc: Exception, what: str = "internal error") -> None:
        """A fault of this package, not of the input: counted, and its traceback logged at most every
        few seconds (a per-frame traceback would flood the log at the camera's rate)."""
        self._record_error(f"{what}: {type(exc).__name__}: {exc}", internal=True)
        self.get_logger().error("".join(traceback.format_exception(exc)), throttle_duration_sec=10.0)

    def _record_error(self, message: str, internal: bool) -> None:
        if internal:
            self.internal_errors += 1
        else:
            self.input_errors += 1
        self.record_error(message)
        self._consecutive_errors += 1
        self.get_logger().warning(message, throttle_duration_sec=5.0)
        if (self.reset_after_errors > 0 and self._consecutive_errors == self.reset_after_errors
                and self.engine is not None):
            # e.g. a camera switched resolution: the engine keeps the first size until reset
            self.get_logger().warning(f"{self._consecutive_errors} consecutive rejected pairs: resetting the engine")
            self.engine.reset()

    # -- output -----------------------------------------------------------------------------------
    def _publish(self, res: FusionResult) -> None:
        pair: ImagePair = res.stamp
        header = pair.visible.header
        h, w = res.fused_bgr.shape[:2]
        self._pub_fused.publish(array_to_image(res.fused_bgr, "bgr8", header))
        self._pub_info.publish(camera_info_for(header, w, h, template=pair.visible_info))
        # Optional outputs cost conversions: only made when someone listens.
        if self._pub_seg is not None and self._pub_seg.get_subscription_count() > 0:
            self._pub_seg.publish(array_to_image(seg_ready(res.fused_bgr, self.seg_config),
                                                 self.seg_config.encoding, header))
        if self._pub_aligned is not None:
            pub_ir, pub_vis = self._pub_aligned
            if pub_ir.get_subscription_count() > 0:
                pub_ir.publish(array_to_image(res.aligned_ir, "mono8", header))
            if pub_vis.get_subscription_count() > 0:
                pub_vis.publish(array_to_image(res.aligned_vis_bgr, "bgr8", header))
        self.pairs_fused += 1
        node_ms = (time.monotonic() - pair.received) * 1e3
        self._engine_ms.add(res.latency_ms)
        self._node_ms.add(node_ms)
        self._out_meter.tick()
        self._flicker.update(luma_mean(res.fused_bgr), luma_mean(res.aligned_ir), luma_mean(res.aligned_vis_bgr))
        status = self._status_type()
        status.header = header
        status.ir_stamp = pair.ir.header.stamp
        status.visible_stamp = pair.visible.header.stamp
        status.skew_sec = float(pair.skew_sec)
        status.latency_ms = float(res.latency_ms)
        status.node_latency_ms = float(node_ms)
        status.ring_fill = int(res.ring_fill)
        status.window = int(res.window)
        status.model = str(res.model)
        status.device = str(res.device)
        status.pairs_received = self.pairs_received
        status.pairs_fused = self.pairs_fused
        status.pairs_dropped = self.pairs_dropped
        self._pub_status.publish(status)

    def stats(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "state": self.state_label,
            "model": self.engine_config.model if self.engine_config else self._runtime.values["model"],
            "device": str(engine.device) if engine is not None else "",
            "cpu_threads": self.cpu_threads or 0,
            "window": engine.window if engine is not None else 0,
            "lookahead": self._runtime.values["lookahead"],
            "pairs_received": self.pairs_received,
            "pairs_fused": self.pairs_fused,
            "pairs_dropped": self.pairs_dropped,
            "queue_overflows": self.queue_overflows,
            "input_errors": self.input_errors,
            "internal_errors": self.internal_errors,
            "time_jumps": self.time_jumps,
            "size_changes": self.size_changes,
            "pairs_lost_in_transport": self.pairs_lost,
            "last_error": self.last_error,
            "latency_ms_p50": self._engine_ms.percentile(50),
            "latency_ms_p99": self._engine_ms.percentile(99),
            "node_latency_ms_p50": self._node_ms.percentile(50),
            "node_latency_ms_p99": self._node_ms.percentile(99),
            # EMAs over ~15 frames: excess brightness change (grey levels/frame, made up by the fusion)
            # and the share of the larger source change that reaches the output (metrics.md)
            "flicker_score": self._flicker.score,
            "flicker_ratio": (self._flicker.fused_change / self._flicker.source_change
                              if self._flicker.source_change > 1e-9 else 0.0),
        }

    def publish_diagnostics(self) -> None:
        now = time.monotonic()
        values: dict[str, Any] = {"input_rate_hz": self._in_meter.rate(now), "fused_rate_hz": self._out_meter.rate(now)}
        values.update(self.stats())
        values["expected_rate_min_hz"] = self._rate_check.min_hz
        values["expected_rate_max_hz"] = self._rate_check.max_hz
        quiet = self._in_meter.silent_for(now)
        quiet = now - self._started if quiet is None else quiet
        values["input_silent_s"] = quiet
        age_level, age_message = self._age_check.report(values, "input")
        state = self.state_label
        if state != "active":
            # not fusing by design: ERROR only when configure failed
            if self.configure_error:
                level, message = ERROR, f"{state}: configure failed: {self.configure_error}"
            else:
                level, message = OK, f"{state}" + (": waiting for configure" if state == "unconfigured" else "")
        elif self.error_is_recent(now):
            level, message = ERROR, self.last_error
        elif self.pairs_lost > self._lost_reported:
            level, message = WARN, (f"{self.pairs_lost - self._lost_reported} pair(s) lost in transport: FramePair "
                                    "larger than the DDS transport carries? Point FASTDDS_DEFAULT_PROFILES_FILE at "
                                    "config/fastdds_large_images.xml, or run composed")
        elif quiet > self.silence_timeout:
            level, message = WARN, f"no input pairs for {quiet:.1f} s"
        elif self.flicker_warn > 0 and values["flicker_score"] > self.flicker_warn:
            level, message = WARN, (f"fused brightness flickers by {values['flicker_score']:.1f} grey levels/frame "
                                    "more than the cameras")
        else:
            level, message = self._rate_check.status(values["fused_rate_hz"], self._out_meter.count)
            if level == OK and age_level != OK:
                level, message = age_level, age_message
            if level == OK:
                message = f"fusing at {values['fused_rate_hz']:.1f} Hz"
        self._lost_reported = self.pairs_lost
        self.send_diagnostics("fusion", level, message, values["device"] or "ftpfusion_ros", values)

    # -- shutdown ---------------------------------------------------------------------------------
    def destroy_node(self) -> None:
        if hasattr(self, "_runtime"):  # __init__ got past the parameters: stop what runs
            try:
                self.stop_managed()  # deactivate (publishes frames held back by look-ahead), clean up
            except Exception:  # noqa: BLE001 - the context may already be shut down
                self._active = False
                self._cleanup()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    from .runner import run_nodes

    return run_nodes(lambda: [FusionNode(autostart=False)], args)


if __name__ == "__main__":
    sys.exit(main())
