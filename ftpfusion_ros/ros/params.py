"""Node parameters from the settings schema (runtime/settings.py): descriptors, checks, run-time changes.

Every parameter is declared from a :class:`~ftpfusion_ros.runtime.settings.Setting` with a descriptor
that ``ros2 param describe`` shows: the description, the range (integer_range / floating_point_range),
the choices (additional_constraints) and ``read_only`` for those whose change needs a reconfigure
(deactivate, clean up, configure again: the model, the device, the topics ...). The others may be set
while the node runs (``ros2 param set``); :class:`RuntimeParameters` checks them in a set-parameters
callback, refuses a bad value with the reason (``ros2 param set`` prints it) and hands accepted ones to
the node, which applies them on the next frame.

Parameters are declared with ``dynamic_typing`` and checked here, because rclpy fixes a parameter's type
from its default and would raise InvalidParameterTypeException (a traceback from deep inside Node) for
``slop: 1`` in a YAML file, although the user meant 1.0: integers are accepted for floats (and integer
lists for float lists); anything else of the wrong type, out of range or not among the choices is a
ValueError naming the parameter, which the process entry point (runner.py) prints as one line.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from ..runtime.settings import Setting, check

INT_MAX = 2**31 - 1


def _kind_of(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, (list, tuple)):
        return "float_list"
    raise TypeError(f"no parameter kind for default {default!r}")


def descriptor_of(setting: Setting) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=setting.description, dynamic_typing=True,
                                     read_only=not setting.runtime)
    lo, hi = setting.minimum, setting.maximum
    if setting.kind == "int" and (lo is not None or hi is not None):
        descriptor.integer_range = [IntegerRange(from_value=int(lo if lo is not None else -INT_MAX),
                                                 to_value=int(hi if hi is not None else INT_MAX), step=0)]
    elif setting.kind == "float" and (lo is not None or hi is not None):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(lo if lo is not None else -math.inf),
            to_value=float(hi if hi is not None else math.inf), step=0.0)]
    constraints = []
    if setting.choices:
        constraints.append("one of: " + ", ".join(setting.choices))
    if setting.length:
        constraints.append("list of " + " or ".join(map(str, setting.length)) + " numbers")
    constraints.append("changeable at run time (applied on the next frame)" if setting.runtime
                       else "read-only: a change needs a reconfigure")
    descriptor.additional_constraints = "; ".join(constraints)
    return descriptor


def _checked(setting: Setting, value: Any) -> Any:
    try:
        return check(setting, value)
    except ValueError as exc:
        raise ValueError(f"parameter {exc}") from None


def declare_setting(node: Node, setting: Setting) -> Any:
    """Declare ``setting`` on ``node`` (see the module docstring) and return its checked value."""
    default = setting.default
    if isinstance(default, (list, tuple)):
        default = list(default) or None  # rclpy cannot type an empty list; None: not set (read as [])
    try:
        raw = node.declare_parameter(setting.name, default, descriptor_of(setting)).value
    except ParameterException as exc:  # e.g. out of the descriptor's range
        raise ValueError(f"parameter {setting.name!r}: {exc}") from None
    return _checked(setting, raw)


def declare_settings(node: Node, settings: Iterable[Setting]) -> dict[str, Any]:
    """Declare every setting; {name: checked value}."""
    return {s.name: declare_setting(node, s) for s in settings}


def read_settings(node: Node, settings: Iterable[Setting]) -> dict[str, Any]:
    """The checked current values of declared settings (e.g. when a lifecycle node configures)."""
    return {s.name: _checked(s, node.get_parameter(s.name).value) for s in settings}


def declare(node: Node, name: str, default: Any, description: str = "", *, kind: str | None = None,
            minimum: float | None = None, maximum: float | None = None,
            choices: Sequence[str] | None = None, length: Sequence[int] | None = None,
            runtime: bool = False) -> Any:
    """Declare one read-only (unless ``runtime``) parameter without a schema entry; its checked value."""
    setting = Setting(name, kind or _kind_of(default), default if default is not None else [], description,
                      minimum=minimum, maximum=maximum, choices=tuple(choices) if choices else None,
                      length=tuple(length) if length else None, runtime=runtime)
    return declare_setting(node, setting)


class RuntimeParameters:
    """The set-parameters callback of a node: checks changes of its run-time settings against the schema,
    then ``validate(values)`` (cross-field rules; a ValueError refuses the change with its message) and,
    when accepted, ``apply(changed)`` with {name: checked value}. Parameters it does not know (QoS overrides,
    use_sim_time) pass through; read-only ones never reach it (rclpy refuses them first)."""

    def __init__(self, node: Node, settings: Iterable[Setting], values: Mapping[str, Any],
                 apply: Callable[[dict[str, Any]], None],
                 validate: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._settings = {s.name: s for s in settings}
        self.values = dict(values)
        self._apply = apply
        self._validate = validate
        self._lock = threading.Lock()
        node.add_on_set_parameters_callback(self._callback)

    def _callback(self, params: list) -> SetParametersResult:
        changed: dict[str, Any] = {}
        for p in params:
            setting = self._settings.get(p.name)
            if setting is None:
                continue
            try:
                changed[p.name] = _checked(setting, p.value)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if not changed:
            return SetParametersResult(successful=True)
        with self._lock:
            candidate = {**self.values, **changed}
            if self._validate is not None:
                try:
                    self._validate(candidate)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
            self.values = candidate
            self._apply(changed)
        return SetParametersResult(successful=True)
