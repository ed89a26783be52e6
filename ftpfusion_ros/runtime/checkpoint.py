"""Checkpoints: a plain state_dict file (`<name>.pt`, loaded with weights_only=True) plus a YAML sidecar
(`<name>.yaml`) holding the model name, its config, the file's sha256 and how it was trained.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch
import yaml

from ..models import FusionModel, build_model, default_config, model_class

PACKAGED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, for another model, or does not fit the model."""


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".yaml")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def packaged_checkpoint(model: str) -> Path | None:
    """The checkpoint shipped in the package for `model`, if any."""
    path = PACKAGED_DIR / f"{model}.pt"
    return path if path.exists() else None


def save_checkpoint(model: FusionModel, path: str | Path, config: dict[str, Any], **info: Any) -> Path:
    """Write `model`'s state_dict and its sidecar (model name, config, sha256 and any `info`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    path.write_bytes(buffer.getvalue())
    meta = {"model": model.name, "config": config, "sha256": sha256_of(path), **info}
    sidecar_path(path).write_text(yaml.safe_dump(meta, sort_keys=False))
    return path


def read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.exists():
        return {}
    try:
        meta = yaml.safe_load(side.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CheckpointError(f"checkpoint sidecar {side} is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint sidecar {side} must be a mapping")
    return meta


def read_state(name: str, path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint's state_dict and sidecar, checked: file present, for model `name`, sha256 as recorded,
    a plain state_dict of tensors (loaded with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not model_class(name).learned:
        raise CheckpointError(f"model {name!r} has no weights; do not pass a checkpoint for it")
    meta = read_sidecar(path)
    if meta.get("model", name) != name:
        raise CheckpointError(f"checkpoint {path} is for model {meta['model']!r}, not {name!r}")
    if "sha256" in meta and meta["sha256"] != sha256_of(path):
        raise CheckpointError(f"checkpoint {path} does not match the sha256 recorded in {sidecar_path(path)}: "
                              "the file is corrupt or was replaced")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated / non-torch files
        raise CheckpointError(f"checkpoint {path} cannot be read as a state_dict: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} is not a plain state_dict of tensors")
    return state, meta


def load_checkpoint(name: str, path: str | Path, overrides: dict[str, Any] | None = None) -> FusionModel:
    """Build model `name` with the checkpoint's config (updated by `overrides`, e.g. switches that do not
    change the weights' shapes) and load its weights; clear errors otherwise."""
    path = Path(path)
    unknown = set(overrides or {}) - set(default_config(name))
    if unknown:  # the user's mistake, not the checkpoint's: say so before reading the file
        raise ValueError(f"unknown model options {sorted(unknown)} for {name!r}; known: {sorted(default_config(name))}")
    state, meta = read_state(name, path)
    config = dict(meta.get("config") or {})
    model = _build_and_load(name, path, state, {**config, **(overrides or {})})
    if isinstance(model, FusionModel):
        return model
    # Weights missing for modules added since: a sidecar written before those switches existed lacks
    # their keys, and the checkpoint was trained with their legacy values, not today's defaults.
    legacy = {k: v for k, v in model_class(name).legacy_config.items() if k not in config}
    if legacy:
        retry = _build_and_load(name, path, state, {**legacy, **config, **(overrides or {})})
        if isinstance(retry, FusionModel):
            return retry
    raise model


def _build_and_load(name: str, path: Path, state: dict[str, torch.Tensor],
                    config: dict[str, Any]) -> FusionModel | CheckpointError:
    """The model built from `config` with `state` loaded, or the CheckpointError saying why not (returned
    for missing keys, so that the caller can retry with legacy switches; raised otherwise)."""
    try:
        model = build_model(name, config or None)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: its config does not build model {name!r}: {exc}") from exc
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"checkpoint {path} does not fit model {name!r}: {exc}") from exc
    if missing or unexpected:
        error = CheckpointError(f"checkpoint {path} does not fit model {name!r}: missing keys {missing[:5]}, "
                                f"unexpected keys {unexpected[:5]}")
        if unexpected:
            raise error
        return error
    return model
