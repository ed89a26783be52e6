"""Training objectives by model name: each learned model's paper loss is registered here.

A loss module is called as ``loss(ir, vis, fused, aux) -> (total, terms)`` on clips in the model
convention (ir (B,1,T,H,W), vis/fused (B,3,T,H,W) in [0, 1]; aux from ``model.forward_train``) and
returns the scalar to minimise and a dict of its named, detached terms for logging.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

_LOSSES: dict[str, type[nn.Module]] = {}
_LOSS_MODULES = ("ftpfusion_ros.losses.ftpfusion_loss", "ftpfusion_ros.losses.rpfnet_loss",
                 "ftpfusion_ros.losses.f3net_loss", "ftpfusion_ros.losses.isfm_loss")


def register_loss(model_name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        _LOSSES[model_name] = cls
        return cls

    return wrap


def _load_all() -> None:
    for module in _LOSS_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def build_loss(model_name: str, config: dict[str, Any] | None = None) -> nn.Module:
    _load_all()
    if model_name not in _LOSSES:
        raise ValueError(f"no training loss registered for model {model_name!r}; have: {sorted(_LOSSES)}")
    return _LOSSES[model_name](**(config or {}))
