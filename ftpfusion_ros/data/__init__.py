"""Datasets and data sources: registered IR/visible sequence readers (frame folders, MP4 pairs), folders
of independent image pairs (TNO/RoadScene/MSRS) and the synthetic dual-camera scene generator.
Submodules are imported on use (they pull in OpenCV)."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SequencePair": "sequences", "open_pair": "sequences", "find_sequences": "sequences",
    "write_pair_folders": "sequences",
    "ImagePair": "image_pairs", "find_image_pairs": "image_pairs",
    "SceneConfig": "synthetic", "SyntheticScene": "synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
