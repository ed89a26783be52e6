"""Training of the learned models: YAML train config, schedule and curriculum, the trainer, DDP helpers.

    from ftpfusion_ros.training import load_config, Trainer
    trainer = Trainer(load_config("config/train/ftpfusion_smoke.yaml"))
    trainer.fit(); trainer.close()

Imported lazily (the trainer pulls in torch, data and metrics modules).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"TrainConfig": "config", "ConfigError": "config", "load_config": "config", "Trainer": "trainer"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
