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
