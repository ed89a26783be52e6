"""Quality of service: REP-2003 defaults, overridable with rclpy's standard QoS override parameters.

REP-2003: sensor drivers publish with the system-default (reliable) profile, and consumers of sensor data
subscribe with the sensor-data profile (best effort, keep last, small depth) so that a slow consumer
never throttles a camera, and reliable publishers still match best-effort subscriptions.

Every subscription and publisher of the nodes is created with rclpy's ``QoSOverridingOptions``, so the
user changes a profile the way any ROS 2 node allows, per resolved topic name (after remapping):

    qos_overrides./ir/image_raw.subscription.reliability: reliable
    qos_overrides./fused/image.publisher.depth: 10

(policies: history, depth, reliability, durability; read-only, taken when the node starts). A value
rclpy cannot apply is a ValueError naming the parameter, which the process entry point prints as one line.
"""
from __future__ import annotations

from typing import Any, Callable

from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions

#: the policies a user may override (the usual set, plus durability for late-joining subscribers)
POLICIES = (QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY, QoSPolicyKind.DURABILITY)


def sensor_data() -> QoSProfile:
    """Default of the camera (and FramePair) subscriptions: best effort, keep last 5, volatile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def publisher_default() -> QoSProfile:
    """Default of the nodes' publishers: reliable (the system default of ROS 2 publishers), keep last 5."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def _check(profile: QoSProfile) -> SetParametersResult:
    # keep_last with depth 0 would be accepted by rclpy and then keep nothing
    if profile.history == HistoryPolicy.KEEP_LAST and profile.depth < 1:
        return SetParametersResult(successful=False, reason=f"depth must be >= 1 with keep_last, got {profile.depth}")
    return SetParametersResult(successful=True)


def overriding_options() -> QoSOverridingOptions:
    return QoSOverridingOptions(POLICIES, callback=_check)


def _create(node: Any, entity: str, topic: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except (ParameterException, InvalidQosOverridesError, RuntimeError, TypeError) as exc:
        # rclpy raises these from deep inside Node for a bad override (a RuntimeError for an unknown
        # policy value): one line naming the parameters instead
        raise ValueError(f"QoS override qos_overrides.{node.resolve_topic_name(topic)}.{entity}.*: {exc}") from None


def create_subscription(node: Any, msg_type: Any, topic: str, callback: Callable[[Any], None],
                        default: QoSProfile | None = None, **kwargs: Any) -> Any:
    """``node.create_subscription`` with sensor-data QoS (or ``default``) and the standard overrides."""
    qos = default or sensor_data()
    return _create(node, "subscription", topic, lambda: node.create_subscription(
        msg_type, topic, callback, qos, qos_overriding_options=overriding_options(), **kwargs))


def create_publisher(node: Any, msg_type: Any, topic: str, default: QoSProfile | None = None,
                     lifecycle: bool = False, **kwargs: Any) -> Any:
    """``node.create_publisher`` with the publisher default (or ``default``) and the standard overrides;
    ``lifecycle``: a managed publisher of a LifecycleNode (publishes only while the node is active)."""
    qos = default or publisher_default()
    make = node.create_lifecycle_publisher if lifecycle else node.create_publisher
    return _create(node, "publisher", topic, lambda: make(
        msg_type, topic, qos, qos_overriding_options=overriding_options(), **kwargs))


def override_parameters(topic: str, entity: str = "subscription", **policies: Any) -> dict[str, Any]:
    """{parameter name: value} overriding ``policies`` of ``topic`` (a resolved name such as
    "/ir/image_raw"), e.g. for ``parameter_overrides`` or ``-p`` on the command line."""
    return {f"qos_overrides.{topic}.{entity}.{name}": value for name, value in policies.items()}
