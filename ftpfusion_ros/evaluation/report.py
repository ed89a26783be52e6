"""Writing evaluation results: metrics.json, CSV / Markdown tables, bar charts and temporal slices.

Layout of OUT/:
  metrics.json              per model: per-sequence and mean values keyed by lower-case metric name
                            (the requested setting: perturbed when --perturb is given, else clean),
                            every setting under "settings", and the run's metadata under "meta"
  metrics_mean.csv          setting, model, <metrics...>, latency_ms
  metrics_per_sequence.csv  setting, model, sequence, frames, <metrics...>, latency_ms
  metrics.md                the same tables in Markdown (arrows: higher / lower is better)
  plots/bar_<metric>.png    one bar chart per metric (models x settings, mean over sequences)
  plots/slices_<setting>_<sequence>.png   temporal slices (FTPFusion fig. 3): one image column stacked
                            over time for IR, visible and every model
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..metrics import METRICS
from .runner import EvalResults


def _clean(v: Any) -> Any:
    """JSON-safe values: NaN/inf -> null, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _models_block(res: EvalResults, setting: str) -> dict[str, Any]:
    out = {}
    for model in res.models:
        rows = res.select(setting, model)
        if not rows:
            continue
        out[model] = {
            "mean": res.mean(setting, model),
            "sequences": {r.sequence: dict(r.metrics) for r in rows},
            "frames": {r.sequence: r.frames for r in rows},
            "latency_ms": res.mean_latency(setting, model),
        }
    return out


def to_json_dict(res: EvalResults) -> dict[str, Any]:
    settings = res.settings
    primary = "perturbed" if "perturbed" in settings else settings[0]
    return _clean({
        "schema": "ftpfusion-eval/1",
        "setting": primary,
        "models": _models_block(res, primary),
        "settings": {s: {"models": _models_block(res, s)} for s in settings},
        "meta": res.meta,
    })


def _fmt(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "nan"
    a = abs(v)
    if a != 0 and (a >= 1e4 or a < 1e-3):
        return f"{v:.3e}"
    return f"{v:.4f}"


def _header(names: list[str]) -> list[str]:
    return [f"{n} {'↑' if METRICS[n].higher_is_better else '↓'}" for n in names]


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table of string cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _mean_cells(res: EvalResults, setting: str, model: str, names: list[str], missing: str) -> list[str]:
    """A model's mean metrics in `names` order, then its mean latency (`missing` when not measured)."""
    mean, lat = res.mean(setting, model), res.mean_latency(setting, model)
    return [*[_fmt(mean[n]) for n in names], _fmt(lat) if lat is not None else missing]


def write_tables(res: EvalResults, out: Path) -> list[Path]:
    names = res.metric_names
    paths = []
    p = out / "metrics_mean.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["setting", "model", *names, "latency_ms"])
        for s in res.settings:
            for m in res.models:
                if res.select(s, m):
                    w.writerow([s, m, *_mean_cells(res, s, m, names, missing="")])
    paths.append(p)
    p = out / "metrics_per_sequence.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["setting", "model", "sequence", "frames", *names, "latency_ms"])
        for r in res.rows:
            w.writerow([r.setting, r.model, r.sequence, r.frames, *[_fmt(r.metrics.get(n)) for n in names],
                        _fmt(r.latency_ms) if r.latency_ms is not None else ""])
    paths.append(p)

    meta = res.meta
    md = ["# Evaluation results", ""]
    md.append(f"Sequences: {', '.join(res.sequences)}; frames per sequence: "
              f"{meta.get('frames') or 'all'} (stride {meta.get('stride', 1)}). "
              f"Optical flow: {meta.get('flow') or '-'}. Wall time: {meta.get('wall_s', '?')} s.")
    if meta.get("settings"):
        md.append("Settings: " + "; ".join(f"{k}: {v.get('describe', '')}" for k, v in meta["settings"].items()) + ".")
    md.append("Means are over sequences (equal weight). ↑ higher is better, ↓ lower is better. Units: "
              + ", ".join(f"{n} {meta['units'][n]}" for n in names if n in meta.get("units", {})) + ".")
    md += ["", "## Mean over sequences", ""]
    rows = []
    for m in res.models:
        for s in res.settings:
            if res.select(s, m):
                rows.append([m, s, *_mean_cells(res, s, m, names, missing="-")])
    md.append(md_table(["model", "setting", *_header(names), "ms/frame"], rows))
    gains = network_gains(res)
    if gains:
        md += ["", "## What the network adds (model minus its weight-free base, `refine=false`)", ""]
        md.append(md_table(["model", "setting", *[f"Δ {n}" for n in _header(list(gains[0][2]))]],
                            [[m, s, *[f"{v:+.4f}" for v in d.values()]] for m, s, d in gains]))
    for s in res.settings:
        md += ["", f"## Per sequence ({s})", ""]
        rows = [[r.model, r.sequence, str(r.frames), *[_fmt(r.metrics.get(n)) for n in names]]
                for r in res.rows if r.setting == s]
        md.append(md_table(["model", "sequence", "frames", *_header(names)], rows))
    md.append("")
    p = out / "metrics.md"
    p.write_text("\n".join(md))
    paths.append(p)
    return paths


def network_gains(res: EvalResults) -> list[tuple[str, str, dict[str, float]]]:
    """(model, setting, {metric: model mean - base mean}) for every learned model evaluated next to its
    base (``meta['bases']``): the network's gain as a number."""
    out = []
    for model, base in (res.meta.get("bases") or {}).items():
        for s in res.settings:
            if res.select(s, model) and res.select(s, base):
                a, b = res.mean(s, model), res.mean(s, base)
                out.append((model, s, {n: a[n] - b[n] for n in res.metric_names}))
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def slice_panel(slices: dict[str, np.ndarray], title: str = "", max_height: int = 240) -> np.ndarray:
    """Temporal slices stacked as one grey image: a labelled row per source/model, time to the right.

    Drawn with OpenCV: time is pixel-exact (whole-pixel column repetition for short clips); columns
    taller than `max_height` are area-averaged to that height.
    """
    labels = list(slices)
    h, t = next(iter(slices.values())).shape
    if h > max_height:  # keep tall frames readable: area-average rows (time stays pixel-exact)
        slices = {k: cv2.resize(v, (t, max_height), interpolation=cv2.INTER_AREA) for k, v in slices.items()}
        h = max_height
    rep = int(min(32, max(1, 480 // max(t, 1))))  # short clips: widen each frame (~480 px in all)
    margin, gap, top = 120, 4, 28
    width = max(margin + t * rep, 560)
    rows = [np.full((top, width), 255, np.uint8)]
    cv2.putText(rows[0], title, (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
    for lab in labels:
        panel = np.full((h, width), 255, np.uint8)
        panel[:, margin : margin + t * rep] = np.repeat(slices[lab], rep, axis=1)
        cv2.putText(panel, lab[:14], (4, min(h - 4, h // 2 + 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
        rows += [panel, np.full((gap, width), 255, np.uint8)]
    axis = np.full((18, width), 255, np.uint8)
    step = max(1, int(np.ceil(60 / rep)))  # a frame index every ~60 px
    for k in range(0, t, step):
        x = margin + k * rep
        axis[:4, x] = 0
        cv2.putText(axis, str(k), (x + 1, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 0, 1, cv2.LINE_AA)
    rows.append(axis)
    return np.vstack(rows)


def write_plots(res: EvalResults, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    paths = []
    models, settings = res.models, res.settings
    x = np.arange(len(models))
    width = 0.8 / max(1, len(settings))
    for n in res.metric_names:
        info = METRICS[n]
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(models) + 1.5), 3.4))
        for i, s in enumerate(settings):
            vals = [res.mean(s, m)[n] if res.select(s, m) else np.nan for m in models]
            ax.bar(x + (i - (len(settings) - 1) / 2) * width, vals, width, label=s)
        ax.set_xticks(x, models, rotation=20, ha="right")
        arrow = "higher is better" if info.higher_is_better else "lower is better"
        title = f"{n} ({info.unit}; {arrow}), mean over sequences"
        if info.uses_flow and res.meta.get("flow"):
            title += f"\nflow: {res.meta['flow']}"
        ax.set_title(title, fontsize=8)
        if len(settings) > 1:
            ax.legend(fontsize=7)
        fig.subplots_adjust(left=0.16, right=0.97, bottom=0.25, top=0.84)  # tight_layout costs 2x the plot
        p = plots / f"bar_{_safe(n)}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)
    for (setting, seq), sl in res.slices.items():
        if not sl:
            continue
        img = slice_panel(sl, f"temporal slices (one column over time): {seq}, {setting}")
        p = plots / f"slices_{_safe(setting)}_{_safe(seq)}.png"
        if not cv2.imwrite(str(p), img):
            raise RuntimeError(f"could not write {p}")
        paths.append(p)
    return paths


def write_outputs(res: EvalResults, out: str | Path, plots: bool = True) -> list[Path]:
    """Write metrics.json, the CSV/Markdown tables and (optionally) the plots under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = out / "metrics.json"
    p.write_text(json.dumps(to_json_dict(res), indent=2, allow_nan=False))
    paths = [p, *write_tables(res, out)]
    if plots:
        paths += write_plots(res, out)
    return paths
