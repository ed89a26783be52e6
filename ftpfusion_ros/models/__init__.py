"""Fusion models: FTPFusion (video), frame-wise learned models and classical baselines, one registry."""
from .base import FrameFusionModel, FusionModel
from .registry import build_model, default_config, model_class, model_names, register_model

__all__ = [
    "FusionModel",
    "FrameFusionModel",
    "build_model",
    "default_config",
    "model_class",
    "model_names",
    "register_model",
]
