"""Model registry: every model, learned or classical, is built by name from one place.

Each model's default constants live in ``ftpfusion_ros/models/configs/<name>.yaml`` (next to the code
that reads them); a checkpoint's sidecar or a user's config overrides them key by key.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from .base import FusionModel

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_REGISTRY: dict[str, type[FusionModel]] = {}
# Modules that register models when imported; imported lazily so `import ftpfusion_ros` stays cheap.
_MODEL_MODULES = (
    "ftpfusion_ros.models.classical",
    "ftpfusion_ros.models.ftpfusion",
    "ftpfusion_ros.models.rpfnet",
    "ftpfusion_ros.models.f3net",
    "ftpfusion_ros.models.isfm",
)
_loaded = False

M = TypeVar("M", bound=type[FusionModel])


def register_model(name: str) -> Callable[[M], M]:
    def wrap(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in _MODEL_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # a real missing dependency, not a model module not yet written
                    raise
        _loaded = True


def model_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def model_class(name: str) -> type[FusionModel]:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def default_config(name: str) -> dict[str, Any]:
    """The model's default constants from its YAML file ({} when the model has none)."""
    model_class(name)
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        return {}
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of constants, got {type(data).__name__}")
    return data


def build_model(name: str, config: dict[str, Any] | None = None) -> FusionModel:
    """Instantiate model `name` with its default config updated by `config`."""
    cls = model_class(name)
    merged = default_config(name)
    unknown = set(config or {}) - set(merged)
    if unknown:
        raise ValueError(f"unknown config keys for model {name!r}: {sorted(unknown)}; known: {sorted(merged)}")
    merged.update(config or {})
    return cls(**merged)
