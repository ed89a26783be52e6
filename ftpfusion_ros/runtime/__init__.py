"""The streaming engine shared by the ROS node, the offline tools and evaluation."""
from .agc import AGCConfig, ThermalAGC
from .checkpoint import CheckpointError, load_checkpoint, packaged_checkpoint, save_checkpoint
from .encodings import ENCODINGS, InputError
from .engine import EngineConfig, FusionEngine, FusionResult, resolve_model_name
from .ring import TemporalRing

__all__ = [
    "AGCConfig",
    "CheckpointError",
    "ENCODINGS",
    "EngineConfig",
    "FusionEngine",
    "FusionResult",
    "InputError",
    "TemporalRing",
    "ThermalAGC",
    "load_checkpoint",
    "resolve_model_name",
    "packaged_checkpoint",
    "save_checkpoint",
]
