"""FTPFusion's sharpness/steadiness frontier: where a learned model sits against its weight-free pipeline.

The stabiliser's temporal filter buys steadiness (lower BiSWE) with sharpness (lower Qabf), and one
weight-free knob moves along that trade: ``stab_keep``, the fraction of the target frame's own unfiltered
fusion kept over the filtered base (0: the shipped base; 1: de-flicker only), and further towards
steadiness ``stab_neighbour_weight``. A learned model that only moves along this curve (sharper and
less steady by the same exchange rate) adds nothing a constant could not; what it adds is its Qabf
*above the curve at its own BiSWE*: :func:`gain_at_equal_warp`. Scripts: ``scripts/frontier.py``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

#: the weight-free operating points swept by default: {label: FTPFusion model options}
DEFAULT_SWEEP: dict[str, dict[str, Any]] = {
    "filter x2 (neighbour weight 1)": {"refine": False, "stab_neighbour_weight": 1.0},
    "base (keep 0)": {"refine": False},
    "keep 0.25": {"refine": False, "stab_keep": 0.25},
    "keep 0.5": {"refine": False, "stab_keep": 0.5},
    "keep 0.75": {"refine": False, "stab_keep": 0.75},
    "de-flicker only (keep 1)": {"refine": False, "stab_keep": 1.0},
}


def upper_frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (warp, quality) points no other point beats on both (lower warp and higher quality), sorted by
    warp: the curve a weight-free knob can reach."""
    best: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not best or y > best[-1][1]:
            best.append((x, y))
    return best


def curve_value(points: Sequence[tuple[float, float]], x: float) -> float | None:
    """Quality of the upper frontier of ``points`` at warp ``x``, linear between its points; None outside
    its warp range (no extrapolation)."""
    front = upper_frontier(points)
    if not front or x < front[0][0] or x > front[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(front, front[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return front[0][1]  # a frontier of one point, at exactly its warp


def gain_at_equal_warp(weight_free: Sequence[tuple[float, float]], learned: tuple[float, float]) -> float | None:
    """Quality of ``learned`` (warp, quality) minus the weight-free frontier's at the same warp; None
    when its warp lies outside the swept range."""
    at = curve_value(weight_free, learned[0])
    return None if at is None else learned[1] - at


def frontier_table(means: Mapping[str, Mapping[str, float]], learned: Sequence[str], quality: str = "qabf",
                   warp: str = "biswe") -> list[dict[str, Any]]:
    """Rows {label, quality, warp, gain_at_equal_warp (learned rows only)} of one setting's mean metrics
    ``{label: {metric: value}}``; every label not in ``learned`` is a weight-free point of the curve."""
    free = [(m[warp], m[quality]) for label, m in means.items() if label not in learned]
    rows = []
    for label, m in means.items():
        row: dict[str, Any] = {"label": label, quality: m[quality], warp: m[warp]}
        if label in learned:
            row["gain_at_equal_warp"] = gain_at_equal_warp(free, (m[warp], m[quality]))
        rows.append(row)
    return rows
