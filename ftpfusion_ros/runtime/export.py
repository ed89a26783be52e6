"""Export a fusion model's clip forward for deployment outside this package.

Formats: ``pt2`` (torch.export ExportedProgram, loads with torch.export.load) and ``onnx`` (needs the
`onnx` and `onnxscript` packages). The exported graph is the full-window forward at a fixed T, H, W:
(1,1,T,H,W) IR and (1,3,T,H,W) visible in [0, 1] -> (1,3,T,H,W) fused RGB. The node's cheaper
per-frame streaming split (encode once, fuse the window) stays in PyTorch.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..models import FusionModel

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
