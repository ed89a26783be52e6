"""Declaring node parameters with a type check that gives one clear line instead of a traceback.

rclpy fixes a parameter's type from its default and raises InvalidParameterTypeException (a traceback
from deep inside Node) for ``slop: 1`` in a YAML file, an integer where a float is expected, although
the user meant 1.0. Parameters are therefore declared with ``dynamic_typing`` and checked here: integers
are accepted for floats (and integer arrays for float arrays), anything else of the wrong type, out of
range or not among the allowed choices is a ValueError naming the parameter, which the process entry
point (runner.py) prints as one line. The descriptor still carries the description and range, so
``ros2 param describe`` shows them, and is read-only: the values are read once, when the node starts.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def coerce(name: str, value: Any, kind: str) -> Any:
    """``value`` as read from rclpy, converted to ``kind`` (bool | int | float | str | float_list);
    ValueError naming ``name`` otherwise."""
    def bad(expected: str) -> ValueError:
        return ValueError(f"parameter {name!r} must be {expected}, got {value!r} ({type(value).__name__})")

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if kind == "float":
        if not _is_number(value) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "float_list":
        if value is None:
            return []
        if not isinstance(value, (list, tuple)) or not all(_is_number(v) and math.isfinite(v) for v in value):
            raise bad("a list of finite numbers")
        return [float(v) for v in value]
    raise ValueError(f"unknown parameter kind {kind!r}")


def declare(node: Node, name: str, default: Any, description: str = "", *, kind: str | None = None,
            minimum: float | None = None, maximum: float | None = None,
            choices: Sequence[str] | None = None, length: Sequence[int] | None = None) -> Any:
    """Declare ``name`` on ``node`` and return its checked value (see the module docstring).

    ``kind`` defaults to the default's type ("float_list" for a list; pass it for a None default);
    ``minimum``/``maximum`` bound numbers, ``choices`` strings, ``length`` the allowed list lengths.
    """
    kind = kind or _kind_of(default)
    # read_only: the nodes read their parameters once, at start; a later `ros2 param set` must be refused
    # (rclpy answers with the reason) rather than accepted and silently ignored
    descriptor = ParameterDescriptor(description=description, dynamic_typing=True, read_only=True)
    if kind == "int" and (minimum is not None or maximum is not None):
        descriptor.integer_range = [IntegerRange(from_value=int(minimum if minimum is not None else -INT_MAX),
                                                 to_value=int(maximum if maximum is not None else INT_MAX), step=0)]
    elif kind == "float" and (minimum is not None or maximum is not None):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(minimum if minimum is not None else -math.inf),
            to_value=float(maximum if maximum is not None else math.inf), step=0.0)]
    if choices:
        descriptor.additional_constraints = "one of: " + ", ".join(choices)
    if isinstance(default, tuple):
        default = list(default)
    try:
        raw = node.declare_parameter(name, default, descriptor).value
    except ParameterException as exc:  # e.g. out of the descriptor's range
        raise ValueError(f"parameter {name!r}: {exc}") from None
    value = coerce(name, raw, kind)
    if minimum is not None and value < minimum:
        raise ValueError(f"parameter {name!r} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"parameter {name!r} must be <= {maximum}, got {value}")
    if choices is not None and value not in choices:
        raise ValueError(f"parameter {name!r} must be one of {', '.join(choices)}; got {value!r}")
    if length is not None and len(value) not in length:
        raise ValueError(f"parameter {name!r} needs {' or '.join(map(str, length))} values, got {len(value)}")
    return value
