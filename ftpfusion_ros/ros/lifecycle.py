"""Managed (lifecycle) nodes on rclpy's own lifecycle support (rclpy.lifecycle.LifecycleNode).

The sync and fusion nodes start *unconfigured* and follow the standard state machine, driven through
the standard services (``<node>/change_state``, ``<node>/get_state``; ``ros2 lifecycle set``):

- configure: read and validate the parameters, load the model (fusion), create the publishers. A failure
  returns FAILURE (the node stays unconfigured) with the reason in the log and in /diagnostics;
- activate: subscribe and publish (rclpy's managed publishers are enabled);
- deactivate: unsubscribe, publish nothing;
- cleanup: free the model, the ring and the publishers; shutdown: the same on the way out.

The ``autostart`` parameter (the launch files set it from their ``autostart`` argument, default true)
configures and activates the node as soon as it is built; a failure then ends the process with one line.
Constructed directly in Python, the nodes autostart unless told otherwise (``autostart=False``).
"""
from __future__ import annotations

import time
import traceback
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..runtime.sync_policy import stamp_to_ns
from .diagnostics import make_array
from .params import declare

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
#: errors of configuration (a user's settings, a missing file), reported as one line
CONFIG_ERRORS = (ValueError, RuntimeError, FileNotFoundError, OSError, KeyError)


class ConfigureError(RuntimeError):
    """configure failed (the reason is the message); raised by :meth:`ManagedNode.start`."""


class ManagedNode(LifecycleNode):
    """A LifecycleNode whose subclasses implement ``_configure``, ``_activate``, ``_deactivate`` and
    ``_cleanup`` (plain methods; exceptions in ``_configure`` become FAILURE with the reason kept) and
    ``publish_diagnostics`` (with :meth:`send_diagnostics`; in every state)."""

    def __init__(self, node_name: str, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.configure_error = ""         # reason of the last failed configure ("" after a success)
        self._configure_exc: BaseException | None = None
        self.last_error = ""              # the latest rejected input or failure, for diagnostics
        self._last_error_time: float | None = None
        self._diag_timer = None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)  # in every state

    def _declare_autostart(self, default: bool) -> bool:
        return declare(self, "autostart", bool(default), "configure and activate at start-up (the launch files "
                       "set it from their autostart argument); false: unconfigured until a lifecycle "
                       "transition (ros2 lifecycle set <node> configure / activate)")

    @property
    def state_label(self) -> str:
        """unconfigured | inactive | active | finalized (or a transition state)."""
        return self._state_machine.current_state[1]

    def start(self) -> None:
        """configure + activate now; the configure error itself (ValueError, FileNotFoundError ...) is
        raised when configure fails, so that a process exits with its one line."""
        if self.trigger_configure() != SUCCESS:
            exc = self._configure_exc
            raise exc if exc is not None else ConfigureError(self.configure_error or "configure failed")
        if self.trigger_activate() != SUCCESS:
            exc = self._configure_exc
            raise exc if exc is not None else ConfigureError(f"{self.get_name()}: activate failed")

    def finish_construction(self, diagnostics_period: float, autostart: bool) -> None:
        """The end of both nodes' constructors: the diagnostics timer (period 0: none), then configure +
        activate (autostart) or a log line saying how to do it."""
        self._diag_timer = (self.create_timer(diagnostics_period, self.publish_diagnostics)
                            if diagnostics_period > 0 else None)
        if autostart:
            self.start()
        else:
            self.get_logger().info("unconfigured: waiting for lifecycle transitions (ros2 lifecycle set "
                                   f"{self.get_fully_qualified_name()} configure, then activate)")

    def publish_diagnostics(self) -> None:
        raise NotImplementedError

    def send_diagnostics(self, what: str, level: int, message: str, hardware_id: str, values: dict[str, Any]) -> None:
        """One DiagnosticStatus ``<node>: <what>`` on /diagnostics (nothing once the context is shut down)."""
        try:
            self._diag_pub.publish(make_array(self.get_clock().now().to_msg(), f"{self.get_name()}: {what}", level,
                                              message, hardware_id, values))
        except Exception:  # noqa: BLE001 - shutting down: the publisher is gone
            if self.context.ok():
                raise

    def record_error(self, message: str) -> None:
        """Keep ``message`` as the last error; diagnostics report it as ERROR while it is recent."""
        self.last_error = message
        self._last_error_time = time.monotonic()

    def error_is_recent(self, now: float) -> bool:
        """An error recorded within two diagnostics periods (at least 2 s) of ``now`` (time.monotonic)."""
        period = self._diag_timer.timer_period_ns * 1e-9 if self._diag_timer else 1.0
        return self._last_error_time is not None and now - self._last_error_time < max(2.0, 2 * period)

    def stamp_age(self, stamp: Any) -> float:
        """Seconds from a message stamp to now on the node's clock (simulated time with use_sim_time)."""
        return (self.get_clock().now().nanoseconds - stamp_to_ns(stamp)) * 1e-9

    # -- transitions ---------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._configure_exc = None
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none crashes the node
            self._configure_exc = exc
            self.configure_error = str(exc) if isinstance(exc, CONFIG_ERRORS) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, CONFIG_ERRORS):
                self.get_logger().error("".join(traceback.format_exception(exc)))
            self.get_logger().error(f"configure failed: {self.configure_error}")
            try:
                self._cleanup()  # whatever was created before the failure
            except Exception:  # noqa: BLE001
                pass
            self._configure_failed()
            return FAILURE
        self.configure_error = ""
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._configure_exc = None
        try:
            self._activate()
        except CONFIG_ERRORS as exc:  # e.g. a bad QoS override of a subscription made here
            self._configure_exc = exc
            self.get_logger().error(f"activate failed: {exc}")
            try:
                self._deactivate()
            except Exception:  # noqa: BLE001
                pass
            return FAILURE  # stays inactive
        return super().on_activate(state)  # enables the managed publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.label == "active":
            self._deactivate()
        if state.label in ("active", "inactive"):
            self._cleanup()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in state {state.label}: cleaning up")
        try:
            self._cleanup()
        except Exception:  # noqa: BLE001
            pass
        return SUCCESS  # back to unconfigured

    def destroy_node(self) -> None:
        super().destroy_node()
        # rclpy's LifecycleNode leaves its state machine alive, and the state machine holds the node's
        # handle: node and lifecycle services stayed on the graph until garbage collection (a later node of
        # the same name then shared their service names and a client could reach the dead one)
        machine = getattr(self, "_state_machine", None)
        if machine is not None:
            machine.destroy_when_not_in_use()

    def stop_managed(self) -> None:
        """deactivate and clean up from wherever the node is (before destroy_node)."""
        if self.state_label == "active":
            self.trigger_deactivate()
        if self.state_label == "inactive":
            self.trigger_cleanup()

    # -- for subclasses --------------------------------------------------------------------------------
    def _configure(self) -> None:
        pass

    def _activate(self) -> None:
        pass

    def _deactivate(self) -> None:
        pass

    def _cleanup(self) -> None:
        pass

    def _configure_failed(self) -> None:
        """Called after a failed configure: the reason goes to diagnostics at once."""
        self.record_error(f"configure failed: {self.configure_error}")
        self.publish_diagnostics()
