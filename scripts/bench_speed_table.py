"""The README's speed rows, generated from `ftpfusion bench --json` (one subprocess per configuration, so
each peak RSS is that configuration's own).

    python scripts/bench_speed_table.py [--sizes 320x240,640x480] [--threads 2] [--steps 30]
        [--onnx 320x240=DIR --onnx 640x480=DIR]   # add ONNX Runtime rows for graphs of export --streaming

Prints one markdown table row per configuration and the JSON lines it came from. Run it on an idle
machine: another process on a 2-core CPU makes a 2-thread run several times slower.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys


def bench(size: str, threads: int, steps: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "ftpfusion_ros.cli.main", "bench", "--model", "ftpfusion", "--device", "cpu",
           "--size", size, "--threads", str(threads), "--steps", str(steps), "--json", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def row(res: dict) -> str:
    st = res["stages_ms_p50"]
    if res["backend"] == "pytorch":
        parts = (f"pre {st['pre']:.1f}, encode {st['encode']:.1f}, fuse {st['fuse']:.1f} (stabiliser "
                 f"{st['fuse.stabiliser']:.1f}, DFAM {sum(st.get(f'fuse.dfam{i}', 0) for i in (1, 2, 3)):.1f}, "
                 f"decoder {st['fuse.decoder']:.1f}), post {st['post']:.1f}")
    else:
        parts = f"pre {st['pre']:.1f}, encoder graph {st['encode']:.1f}, fusion graph {st['fuse']:.1f}, post {st['post']:.1f}"
    what = "PyTorch" if res["backend"] == "pytorch" else f"ONNX Runtime {res['providers'][0]}"
    return (f"| FTPFusion streamed frame, {what}, {res['size']}, T={res['frames']}, {res['threads']} threads "
            f"(`ftpfusion bench --json`) | p50 {res['ms_p50']:.0f} ms, p99 {res['ms_p99']:.0f} ms, "
            f"peak RSS {res['peak_mem_mb']:.0f} MB; stages p50: {parts} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="320x240,640x480")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--onnx", action="append", default=[], metavar="WxH=DIR")
    args = parser.parse_args()
    results = [bench(size, args.threads, args.steps, []) for size in args.sizes.split(",")]
    for spec in args.onnx:
        size, _, folder = spec.partition("=")
        results.append(bench(size, args.threads, args.steps, ["--backend", "onnxruntime", "--onnx-dir", folder]))
    print(f"<!-- {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()} -->")
    for res in results:
        print(row(res))
    for res in results:
        print(json.dumps(res), file=sys.stderr)


if __name__ == "__main__":
    main()
