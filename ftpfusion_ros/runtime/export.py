"""Export a fusion model for deployment outside this package.

Clip forward: formats ``pt2`` (torch.export ExportedProgram, loads with torch.export.load) and ``onnx``
(needs the `onnx` and `onnxscript` packages), the full-window forward at a fixed T, H, W: (1,1,T,H,W) IR
and (1,3,T,H,W) visible in [0, 1] -> (1,3,T,H,W) fused RGB.

Streaming (:func:`export_streaming`): the engine's own split as ONNX graphs, one per-frame encoder and
the window fusion per ring fill level, with a manifest; ``runtime.onnx_backend`` runs them (CPU, CUDA or
TensorRT execution providers) with the same ring as the PyTorch engine. See docs/deployment.md.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..models import FusionModel
from .checkpoint import sha256_of

FORMATS = ("pt2", "onnx")


def example_inputs(frames: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(1, 1, frames, height, width, generator=g),
            torch.rand(1, 3, frames, height, width, generator=g))


def export_model(model: FusionModel, out: str | Path, fmt: str, frames: int, width: int, height: int) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    m = model.size_multiple
    if width % m or height % m:
        raise ValueError(f"model {model.name!r} needs sizes that are multiples of {m}; got {width}x{height}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    inputs = example_inputs(frames, width, height)
    if fmt == "pt2":
        program = torch.export.export(model, inputs)
        torch.export.save(program, out)
    else:
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise RuntimeError("ONNX export needs the 'onnx' and 'onnxscript' packages") from exc
        torch.onnx.export(model, inputs, str(out), input_names=["ir", "visible"], output_names=["fused"],
                          dynamo=True, external_data=False)
    return out


# ------------------------------------------------------------------------------------------ streaming
#: version of the streaming folder layout (manifest.json + encoder.onnx + fuse_<n>.onnx)
STREAMING_FORMAT = "ftpfusion-streaming-onnx"
STREAMING_VERSION = 1
MANIFEST = "manifest.json"


def flatten_cache(entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A frame cache (nested dicts/lists of tensors or arrays and static values) -> {dotted name: leaf}
    for its tensor (or array) leaves, in a fixed order. Static values (sizes, grids) are left out."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_cache(value, name + "."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                out.update(flatten_cache(item, f"{name}.{i}."))
        elif isinstance(value, (torch.Tensor, np.ndarray)):
            out[name] = value
    return out


def cache_template(entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """JSON form of a frame cache's structure: tensor leaves become {"$": dotted name}, static values
    lists (the inverse of :func:`flatten_cache` with :func:`unflatten_cache`)."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out[key] = cache_template(value, name + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = [cache_template(item, f"{name}.{i}.") for i, item in enumerate(value)]
        elif isinstance(value, (torch.Tensor, np.ndarray)):
            out[key] = {"$": name}
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def unflatten_cache(template: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    """Rebuild a frame cache from :func:`cache_template` and {name: leaf}; leaves missing from ``flat``
    (trimmed) are left out, static lists become tuples."""
    out: dict[str, Any] = {}
    for key, value in template.items():
        if isinstance(value, dict) and set(value) == {"$"}:
            if value["$"] in flat:
                out[key] = flat[value["$"]]
        elif isinstance(value, dict):
            out[key] = unflatten_cache(value, flat)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = [unflatten_cache(item, flat) for item in value]
        else:
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def _real(t: torch.Tensor) -> torch.Tensor:
    """Complex tensors cross the graph boundary as (..., 2) real pairs (ONNX has no complex I/O)."""
    return torch.view_as_real(t) if t.is_complex() else t


class _EncoderGraph(nn.Module):
    def __init__(self, model: FusionModel, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat = flatten_cache(self.model.encode_frame(ir, vis))
        return tuple(_real(flat[n]) for n in self.names)


class _FusionGraph(nn.Module):
    """fuse_window over ``n`` cached frames (every cached tensor an input) for the newest frame."""

    def __init__(self, model: FusionModel, template: dict[str, Any], names: list[str], complex_names: set[str],
                 n: int) -> None:
        super().__init__()
        self.model, self.template, self.names, self.complex_names, self.n = model, template, names, complex_names, n

    def forward(self, *flat: torch.Tensor) -> torch.Tensor:
        k = len(self.names)
        cache = []
        for j in range(self.n):
            leaves = {name: (torch.view_as_complex(t) if name in self.complex_names else t)
                      for name, t in zip(self.names, flat[j * k:(j + 1) * k])}
            cache.append(unflatten_cache(self.template, leaves))
        return self.model.fuse_window(cache, [self.n - 1])[:, :, 0]


def encoder_output_name(name: str) -> str:
    """Encoder graph output of cached tensor ``name`` (prefixed: the cache holds the input frames too)."""
    return f"cache.{name}"


def fusion_input_name(position: int, name: str) -> str:
    """Graph input name of cached tensor ``name`` of the frame at window position ``position``."""
    return f"f{position}.{name}"


def _onnx_export(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str]) -> None:
    # the exporter and its graph optimiser print progress on stdout; the CLI prints its own
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" notes on every export
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module.eval(), args, str(path), input_names=input_names, output_names=output_names,
                              dynamo=True, external_data=False, verbose=False)
        finally:
            quiet.setLevel(level)


def _prune_unused_inputs(path: Path) -> list[str]:
    """Drop graph inputs no node reads (cached tensors the fusion never uses at that position); returns the
    remaining input names."""
    import onnx

    model = onnx.load(str(path))
    used = {i for node in model.graph.node for i in node.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.input if i.name in used]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)
        onnx.save(model, str(path))
    return [i.name for i in keep]


def export_streaming(model: FusionModel, out_dir: str | Path, width: int, height: int,
                     checkpoint: str | Path | None = None, window: int | None = None,
                     log: Callable[[str], None] | None = None) -> Path:
    """Write the streaming split as ONNX: ``encoder.onnx`` (one frame -> its flat cache tensors) and one
    window-fusion graph per ring fill level (``fuse_<n>.onnx``, n = 1 .. window: the warm-up windows and
    the full one; the stabiliser is inside), plus ``manifest.json``. Causal (the newest frame is fused),
    batch 1, fixed frame size (a multiple of the model's size_multiple). Returns the manifest path."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("ONNX export needs the 'onnx' and 'onnxscript' packages") from exc
    from ..models.ftpfusion import FTPFusion

    if not isinstance(model, FTPFusion):
        raise ValueError(f"streaming export is for FTPFusion's frame ring; {model.name!r} has none "
                         "(export its clip forward with --format onnx)")
    m = model.size_multiple
    if width % m or height % m:
        raise ValueError(f"model {model.name!r} needs sizes that are multiples of {m}; got {width}x{height}")
    window = int(window or model.window)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    say = log or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    g = torch.Generator().manual_seed(0)
    ir = torch.rand(1, 1, height, width, generator=g)
    vis = torch.rand(1, 3, height, width, generator=g)
    with torch.inference_mode():
        sample = model.encode_frame(ir, vis)
        # distinct example caches per window position (the exporter would merge repeated input tensors)
        caches = [flatten_cache(model.encode_frame(torch.roll(ir, j, -1), torch.roll(vis, j, -1)))
                  for j in range(window)]
    flat = flatten_cache(sample)
    names = list(flat)
    complex_names = {n for n, t in flat.items() if t.is_complex()}
    template = cache_template(sample)

    say("exporting encoder.onnx")
    _onnx_export(_EncoderGraph(model, names), (ir, vis), out / "encoder.onnx", ["ir", "visible"],
                 [encoder_output_name(n) for n in names])
    example = [_real(c[name]).clone() for c in caches for name in names]
    fusion = []
    for n in range(1, window + 1):
        say(f"exporting fuse_{n}.onnx ({n} cached frame{'s' if n > 1 else ''})")
        path = out / f"fuse_{n}.onnx"
        inputs = [fusion_input_name(j, name) for j in range(n) for name in names]
        _onnx_export(_FusionGraph(model, template, names, complex_names, n), tuple(example[:n * len(names)]), path,
                     inputs, ["fused"])
        fusion.append({"frames": n, "file": path.name, "inputs": _prune_unused_inputs(path)})

    import onnx

    opset = max((o.version for o in onnx.load(str(out / "encoder.onnx")).opset_import if o.domain in ("", "ai.onnx")),
                default=None)
    net_window, radius = model.cache_reach
    manifest = {
        "format": STREAMING_FORMAT,
        "version": STREAMING_VERSION,
        "model": model.name,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_sha256": sha256_of(Path(checkpoint)) if checkpoint else None,
        "size": [width, height],
        "size_multiple": m,
        "batch": 1,
        "window": window,
        "net_window": net_window,
        "stabiliser_radius": radius,
        "lookahead": 0,
        "opset": opset,
        "encoder": {
            "file": "encoder.onnx",
            "inputs": {"ir": [1, 1, height, width], "visible": [1, 3, height, width]},
            "outputs": {encoder_output_name(n): list(_real(flat[n]).shape) for n in names},
            "complex": sorted(complex_names),
        },
        "fusion": fusion,
        "fusion_output": {"fused": [1, 3, height, width]},
        "cache_template": template,
        "notes": "inputs in [0, 1], RGB visible, IR registered onto the visible frame; fuse_<n> fuses the "
                 "newest of n cached frames (n < window during warm-up); encoder output cache.<name> is fed to "
                 "fusion input f<j>.<name> for the frame at window position j (0 = oldest); complex tensors "
                 "travel as (..., 2) pairs",
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path
