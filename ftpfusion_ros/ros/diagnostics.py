"""diagnostic_msgs helpers: one DiagnosticStatus per node, values as strings (the message's contract)."""
from __future__ import annotations

from typing import Any, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def make_array(stamp: Any, name: str, level: int, message: str, hardware_id: str,
               values: Mapping[str, Any]) -> DiagnosticArray:
    status = DiagnosticStatus(
        level=level,  # a byte in the message definition
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=_header(stamp), status=[status])


def _header(stamp: Any):
    from std_msgs.msg import Header

    return Header(stamp=stamp)


def values_of(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


class FrequencyCheck:
    """Expected-rate bounds on an event stream, as diagnostic_updater's FrequencyStatus checks them.

    diagnostic_updater is not installable here (no wheel on PyPI, no Debian package for this ROS build),
    so this is written for this package: events are counted over a sliding window of ``window_s`` seconds
    (the RateMeter's), and the measured rate is compared with ``min_hz`` / ``max_hz`` widened by
    ``tolerance`` (0.1: 10 %), as FrequencyStatus does. A bound of 0 means none. ``status(rate)`` gives
    (level, message) with the level WARN outside the bounds (ERROR when no event arrived at all while a
    minimum is set, as FrequencyStatus reports "No events recorded").
    """

    def __init__(self, what: str, min_hz: float = 0.0, max_hz: float = 0.0, tolerance: float = 0.1) -> None:
        self.what = what
        self.tolerance = float(tolerance)
        self.set_bounds(min_hz, max_hz)

    def set_bounds(self, min_hz: float, max_hz: float) -> None:
        """New bounds (a run-time parameter change)."""
        self.min_hz, self.max_hz = float(min_hz), float(max_hz)

    def status(self, rate_hz: float, events: int) -> tuple[int, str]:
        if self.min_hz > 0 and events == 0:
            return ERROR, f"{self.what}: no events recorded (expected >= {self.min_hz:g} Hz)"
        if self.min_hz > 0 and rate_hz < self.min_hz * (1.0 - self.tolerance):
            return WARN, f"{self.what}: frequency too low ({rate_hz:.1f} Hz < {self.min_hz:g} Hz)"
        if self.max_hz > 0 and rate_hz > self.max_hz * (1.0 + self.tolerance):
            return WARN, f"{self.what}: frequency too high ({rate_hz:.1f} Hz > {self.max_hz:g} Hz)"
        return OK, ""


class StampAgeCheck:
    """Stamp-age checks, as diagnostic_updater's TimeStampStatus does them (written here for the same
    reason as FrequencyCheck): for each message, ``now - stamp`` (s, the node's clock: simulated time with
    use_sim_time) is recorded; ages outside [min_age, max_age] since the last report are counted and give
    WARN (a camera clock far ahead or behind, a stalled pipeline). ``max_age`` 0 disables the check."""

    def __init__(self, what: str, min_age: float = -1.0, max_age: float = 5.0) -> None:
        self.what = what
        self.set_bounds(min_age, max_age)
        self.reset()

    def set_bounds(self, min_age: float, max_age: float) -> None:
        """New bounds (a run-time parameter change); the ages recorded in this period are kept."""
        self.min_age, self.max_age = float(min_age), float(max_age)

    def reset(self) -> None:
        self.count = 0
        self.too_old = 0
        self.too_new = 0
        self.age_min = float("inf")
        self.age_max = float("-inf")
        self.last_age = float("nan")

    def add(self, age_s: float) -> None:
        self.count += 1
        self.last_age = age_s
        self.age_min = min(self.age_min, age_s)
        self.age_max = max(self.age_max, age_s)
        if self.max_age > 0:
            if age_s > self.max_age:
                self.too_old += 1
            elif age_s < self.min_age:
                self.too_new += 1

    def report(self, values: dict[str, Any], key: str) -> tuple[int, str]:
        """Adds ``<key>_age_{min,max}_s`` to ``values``, returns (level, message) and starts a new period."""
        if self.count:
            values[f"{key}_age_min_s"] = self.age_min
            values[f"{key}_age_max_s"] = self.age_max
        values[f"{key}_stamps_too_old"] = self.too_old
        values[f"{key}_stamps_too_new"] = self.too_new
        level, message = OK, ""
        if self.too_old:
            level, message = WARN, (f"{self.what}: {self.too_old} stamp(s) older than {self.max_age:g} s "
                                    f"(max age {self.age_max:.2f} s)")
        elif self.too_new:
            level, message = WARN, (f"{self.what}: {self.too_new} stamp(s) more than {-self.min_age:g} s in the "
                                    f"future (clock offset? min age {self.age_min:.2f} s)")
        self.reset()
        return level, message
