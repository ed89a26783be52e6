"""FTPFusion's sharpness/steadiness frontier on real video: the weight-free pipeline swept along its
one knob (``stab_keep``, and a heavier temporal filter), and each learned checkpoint placed against it.

    python scripts/frontier.py --data ../shared/data/m3svd --sequences 0111_1716 --frames 60 \
        [--checkpoint ftpfusion_ros/checkpoints/ftpfusion.pt ...] [--out runs/frontier]

Every configuration streams through the same engine and scorer as ``ftpfusion eval`` (lock-step, causal
ring), clean and under the perturbation protocol. Prints per setting a table with each learned model's
Qabf above the weight-free curve at its own BiSWE (``ftpfusion_ros.evaluation.frontier``) and writes
frontier.json and frontier_<setting>.png (Qabf against BiSWE) to --out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ftpfusion_ros.data.perturb import parse_perturb
from ftpfusion_ros.data.sequences import find_sequences, select_sequences
from ftpfusion_ros.evaluation.frontier import DEFAULT_SWEEP, frontier_table, upper_frontier
from ftpfusion_ros.evaluation.report import md_table
from ftpfusion_ros.evaluation.runner import EvalConfig, evaluate_models
from ftpfusion_ros.runtime import FusionEngine
from ftpfusion_ros.runtime.settings import engine_config


def plot(rows: list[dict], learned: list[str], setting: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    free = [r for r in rows if r["label"] not in learned]
    front = upper_frontier([(r["biswe"], r["qabf"]) for r in free])
    ax.plot([p[0] for p in front], [p[1] for p in front], "-", color="grey", label="weight-free curve")
    for r in free:
        ax.plot(r["biswe"], r["qabf"], "o", color="grey")
        ax.annotate(r["label"], (r["biswe"], r["qabf"]), fontsize=7, xytext=(4, -10), textcoords="offset points")
    for r in rows:
        if r["label"] in learned:
            gain = r["gain_at_equal_warp"]
            text = f"{r['label']} ({'outside the curve' if gain is None else f'{gain:+.3f} at equal BiSWE'})"
            ax.plot(r["biswe"], r["qabf"], "*", markersize=12, label=text)
    ax.margins(x=0.15)  # room for the labels of the outermost points
    ax.set_xlabel("BiSWE (grey levels; lower is steadier)")
    ax.set_ylabel("Qabf (higher keeps more source edges)")
    ax.set_title(f"FTPFusion: learned vs weight-free operating points, {setting}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="sequence root, as for ftpfusion eval")
    parser.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="learned FTPFusion checkpoint to place on the curve (repeatable; default: the packaged one)")
    parser.add_argument("--perturb", default="flicker=1,jitter=0.25,misalign=2")
    parser.add_argument("--out", default="runs/frontier")
    args = parser.parse_args()

    try:
        seqs = select_sequences(find_sequences(args.data), [n for n in (args.sequences or "").split(",") if n])
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    engines = {}
    for label, options in DEFAULT_SWEEP.items():
        engines[label] = FusionEngine(engine_config({"model": "ftpfusion"}, model_options=dict(options)))
    learned = []
    for path in args.checkpoint or [""]:
        label = f"learned: {Path(path).name}" if path else "learned: packaged"
        engines[label] = FusionEngine(engine_config({"model": "ftpfusion", "checkpoint": path}))
        learned.append(label)
    cfg = EvalConfig(frames=args.frames, perturb=parse_perturb(args.perturb), metrics=["qabf", "biswe"])
    res = evaluate_models(seqs, cfg, engines)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"sequences": [p.name for p in seqs], "frames": args.frames, "settings": {}}
    for setting in res.settings:
        rows = frontier_table({m: res.mean(setting, m) for m in res.models}, learned)
        report["settings"][setting] = rows
        plot(rows, learned, setting, out / f"frontier_{setting}.png")
        print(f"\n{setting} ({', '.join(report['sequences'])}, {args.frames} frames)")
        cells = []
        for r in rows:
            gain = r.get("gain_at_equal_warp")
            cell = "-" if r["label"] not in learned else ("outside the swept range" if gain is None else f"{gain:+.3f}")
            cells.append([r["label"], f"{r['qabf']:.3f}", f"{r['biswe']:.3f}", cell])
        print(md_table(["operating point", "Qabf", "BiSWE", "Qabf above the weight-free curve at equal BiSWE"], cells))
    (out / "frontier.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out / 'frontier.json'} and frontier_<setting>.png")


if __name__ == "__main__":
    main()
