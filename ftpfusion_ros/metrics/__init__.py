"""Spatial and temporal fusion metrics with a registry keyed by lower-case metric name.

Inputs are luminance on the 8-bit grey scale (0..255 floats): BT.601 Y of fused and visible BGR
frames (:func:`bgr_to_y`), IR mono 8-bit (16-bit thermal mapped by :func:`ir_to_8bit`).

    from ftpfusion_ros.metrics import spatial_metrics, temporal_metrics
    spatial_metrics(f, a, b)                       # {'en': ..., 'sd': ..., ..., 'ssim': ...} one frame
    temporal_metrics(F, A, B, flow="dis_medium")   # {'biswe': ..., 'ms2r': ..., ...} one clip

``conventions`` select published variants per metric, e.g. ``{"vif": {"convention": "mean"}}``;
:func:`parse_conventions` reads the CLI form ``"vif=mean,ssim=mean,qabf=reference_code,mi.unit=bits"``
or a preset name (``"mmif"``: the defaults, sum over sources; ``"vfbench"``: mean over sources).
See docs/metrics.md.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from . import online, spatial, temporal
from .common import bgr_to_y, ir_to_8bit
from .flow import DEFAULT_FLOW, FLOW_METHODS, FlowEstimator, VideoFlows, get_flow, video_flows
from .online import FlickerMonitor, clip_flicker, clip_flicker_ratio, luma_mean
from .temporal import PairFlows, TemporalStream


@dataclass(frozen=True)
class MetricInfo:
    name: str
    fn: Callable[..., float]
    kind: str  # "spatial" (per frame) or "temporal" (per clip)
    higher_is_better: bool
    unit: str
    description: str
    uses_flow: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _m(name, fn, kind, higher, unit_, desc, uses_flow=False, **defaults) -> MetricInfo:
    return MetricInfo(name, fn, kind, higher, unit_, desc, uses_flow, defaults)


METRICS: dict[str, MetricInfo] = {m.name: m for m in [
    _m("en", spatial.entropy, "spatial", True, "bits", "Shannon entropy of F (256 bins)"),
    _m("sd", spatial.standard_deviation, "spatial", True, "grey levels", "standard deviation of F"),
    _m("sf", spatial.spatial_frequency, "spatial", True, "grey levels/px", "spatial frequency of F",
       convention="mean"),
    _m("ag", spatial.average_gradient, "spatial", True, "grey levels/px", "average gradient of F",
       convention="gradient"),
    _m("mi", spatial.mutual_information, "spatial", True, "nats", "I(F;A) + I(F;B)", convention="sum",
       unit="nats"),
    _m("scd", spatial.scd, "spatial", True, "unitless", "sum of the correlations of differences"),
    _m("vif", spatial.vif, "spatial", True, "unitless", "VIFp(A->F) + VIFp(B->F)", convention="sum"),
    _m("qabf", spatial.qabf, "spatial", True, "unitless", "Xydeas-Petrovic edge transfer Q^AB/F",
       convention="xydeas"),
    _m("ssim", spatial.ssim, "spatial", True, "unitless", "SSIM(F,A) + SSIM(F,B)", convention="sum",
       window="gaussian", data_range=255.0),
    _m("biswe", temporal.biswe, "temporal", False, "grey levels", "bidirectional self-warping error",
       uses_flow=True),
    _m("ms2r", temporal.ms2r, "temporal", False, "px", "motion-change residual vs sources", uses_flow=True),
    _m("flowd", temporal.flowd, "temporal", False, "grey levels", "warp error along the visible flow",
       uses_flow=True),
    _m("mmci_approx", temporal.mmci_approx, "temporal", False, "unitless",
       "modal mixing continuity (FTPFusion prose)"),
    _m("tcpe_approx", temporal.tcpe_approx, "temporal", False, "unitless (0..1)",
       "temporal correlation preservation error (FTPFusion prose)"),
    _m("flicker", clip_flicker, "temporal", False, "grey levels/frame",
       "mean excess change of the fused mean luminance over the sources' (online score, offline)"),
    _m("flicker_ratio", clip_flicker_ratio, "temporal", False, "unitless",
       "fused frame-mean luminance change / larger source change, summed over the clip"),
]}

SPATIAL_METRICS = tuple(n for n, m in METRICS.items() if m.kind == "spatial")
TEMPORAL_METRICS = tuple(n for n, m in METRICS.items() if m.kind == "temporal")
ALL_METRICS = tuple(METRICS)

#: published conventions; "mmif" are the defaults (sum over the two sources, CDDFuse-style code)
CONVENTION_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "mmif": {},
    "vfbench": {"vif": {"convention": "mean"}, "ssim": {"convention": "mean"}, "mi": {"convention": "mean"}},
}


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_conventions(spec: str | None) -> dict[str, dict[str, Any]]:
    """CLI form -> {metric: {param: value}}: preset names and ``metric=value`` / ``metric.param=value``.

    ``metric=value`` sets the metric's ``convention`` argument. Unknown metrics/parameters are errors.
    """
    out: dict[str, dict[str, Any]] = {}
    if not spec:
        return out
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if "=" not in item:
            if item not in CONVENTION_PRESETS:
                raise ValueError(f"unknown convention preset {item!r}; presets: {', '.join(CONVENTION_PRESETS)}")
            for k, v in CONVENTION_PRESETS[item].items():
                out.setdefault(k, {}).update(v)
            continue
        key, value = (s.strip() for s in item.split("=", 1))
        metric, _, param = key.partition(".")
        param = param or "convention"
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r} in conventions; metrics: {', '.join(METRICS)}")
        if param == "cache" or param not in inspect.signature(METRICS[metric].fn).parameters:
            raise ValueError(f"metric {metric!r} has no parameter {param!r}")
        out.setdefault(metric, {})[param] = _parse_value(value)
    return out


def resolved_conventions(conventions: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Every metric's effective keyword arguments (defaults updated by `conventions`), for the record."""
    out = {}
    for name, info in METRICS.items():
        kw = dict(info.defaults)
        kw.update((conventions or {}).get(name, {}))
        if kw:
            out[name] = kw
    return out


_CACHED = {"mi", "vif", "qabf", "ssim"}


def spatial_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray, names=None,
                    conventions: Mapping[str, Mapping[str, Any]] | None = None,
                    cache: dict | None = None) -> dict[str, float]:
    """All (or `names`) spatial metrics of one frame triplet (fused, IR, visible luminance).

    ``cache``: a dict reused for several fused frames scored against the same (a, b) (source
    features are computed once); use a new dict for every new pair of sources.
    """
    names = SPATIAL_METRICS if names is None else names
    out = {}
    for n in names:
        info = METRICS[n]
        if info.kind != "spatial":
            raise ValueError(f"{n!r} is not a spatial metric")
        kw = dict((conventions or {}).get(n, {}))
        if cache is not None and n in _CACHED:
            kw["cache"] = cache
        out[n] = float(info.fn(f, a, b, **kw))
    return out


def temporal_metrics(f, a, b, names=None, flows: Mapping[str, VideoFlows] | None = None,
                     flow: str | FlowEstimator = DEFAULT_FLOW,
                     conventions: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, float]:
    """All (or `names`) temporal metrics of one clip (fused, IR, visible luminance (T,H,W)), one pass."""
    names = TEMPORAL_METRICS if names is None else tuple(names)
    for n in names:
        if METRICS[n].kind != "temporal":
            raise ValueError(f"{n!r} is not a temporal metric")
    return temporal.score_clip(f, a, b, names, flows, flow, conventions)


__all__ = [
    "METRICS", "MetricInfo", "SPATIAL_METRICS", "TEMPORAL_METRICS", "ALL_METRICS", "CONVENTION_PRESETS",
    "spatial_metrics", "temporal_metrics", "TemporalStream", "parse_conventions", "resolved_conventions",
    "bgr_to_y", "ir_to_8bit", "FlickerMonitor", "clip_flicker", "clip_flicker_ratio", "luma_mean",
    "DEFAULT_FLOW", "FLOW_METHODS", "get_flow", "video_flows", "VideoFlows", "PairFlows",
    "spatial", "temporal", "online",
]
