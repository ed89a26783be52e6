"""Quality-of-service profiles per REP-2003 (sensor data and map QoS), configurable by parameters.

REP-2003: sensor drivers publish with the system-default (reliable) profile, and consumers of sensor data
subscribe with the sensor-data profile (best effort, keep last, small depth) so that a slow consumer
never throttles a camera, and reliable publishers still match best-effort subscriptions. Both the
reliability and the history depth can be overridden per topic group by parameters.
"""
from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
    "system_default": ReliabilityPolicy.SYSTEM_DEFAULT,
}

#: defaults: (reliability, depth) for subscriptions to cameras (sensor data) and for our publishers
SENSOR_DATA = ("best_effort", 5)
PUBLISHER = ("reliable", 5)


def make_qos(reliability: str, depth: int) -> QoSProfile:
    """A keep-last, volatile profile with the given reliability name and depth."""
    key = str(reliability).strip().lower().replace("-", "_")
    if key not in RELIABILITY:
        raise ValueError(f"unknown QoS reliability {reliability!r}; use one of {', '.join(RELIABILITY)}")
    if int(depth) < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=RELIABILITY[key],
        durability=DurabilityPolicy.VOLATILE,
    )


def declare_qos_parameters(node, prefix: str, default: tuple[str, int]) -> QoSProfile:
    """Declare ``<prefix>.reliability`` and ``<prefix>.depth`` on ``node`` and return the profile."""
    from .params import declare

    reliability = declare(node, f"{prefix}.reliability", default[0], "best_effort | reliable | system_default")
    depth = declare(node, f"{prefix}.depth", default[1], "history depth", minimum=1)
    return make_qos(reliability, depth)
