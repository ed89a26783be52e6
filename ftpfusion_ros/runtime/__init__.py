"""The streaming engine shared by the ROS node, the offline tools and evaluation.

Names are imported lazily: ROS-side modules that need only the pairing policy or the encodings (the sync
node, the camera simulator) must not pay for importing torch (seconds and ~300 MB per process).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AGCConfig": "agc",
    "ThermalAGC": "agc",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "packaged_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "ENCODINGS": "encodings",
    "InputError": "encodings",
    "SizeChangedError": "encodings",
    "EngineConfig": "engine",
    "FusionEngine": "engine",
    "FusionResult": "engine",
    "resolve_model_name": "engine",
    "parse_model_options": "engine",
    "TemporalRing": "ring",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
