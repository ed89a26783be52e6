"""The papers' training objectives, one registry keyed by model name."""
from .registry import build_loss, register_loss

__all__ = ["build_loss", "register_loss"]
