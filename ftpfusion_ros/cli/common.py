"""Arguments shared by the subcommands that run the streaming engine."""
from __future__ import annotations

import argparse

from ..runtime import EngineConfig, parse_model_options
from ..runtime import settings

DEFAULT_MODEL = "auto"
#: engine settings whose flags have a form of their own here (a default per command, a repeatable
#: KEY=VALUE, a shorter name); every other CLI setting of the schema becomes --<name> automatically
CLI_OWN_FORM = {"model", "model_options", "registration_file"}


#: largest side accepted by --size: beyond any camera this package serves, and frames of 100000x100000
#: would only end in a MemoryError deep inside numpy or torch
MAX_SIDE = 8192


def parse_size(text: str, minimum: int = 8, maximum: int = MAX_SIDE) -> tuple[int, int]:
    """'640x480' -> (640, 480), with a clear error for anything else."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 640x480, got {text!r}") from None
    if w < minimum or h < minimum:
        raise ValueError(f"--size must be at least {minimum}x{minimum}, got {text}")
    if w > maximum or h > maximum:
        raise ValueError(f"--size must be at most {maximum}x{maximum}, got {text}")
    return w, h


def add_engine_arguments(parser: argparse.ArgumentParser, default_model: str = DEFAULT_MODEL) -> None:
    g = parser.add_argument_group("engine")
    g.add_argument("--model", default=default_model,
                   help=f"model name (default: {default_model} = ftpfusion with its packaged checkpoint, "
                        "else the laplacian baseline)")
    # --checkpoint, --device, --precision, --window, --lookahead, --allow-untrained, --backend, --onnx-dir
    # and the thermal gain control (--agc-*) come from the engine settings schema (runtime/settings.py), as
    # the node's parameters
    settings.add_arguments(g, exclude=CLI_OWN_FORM)
    g.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="model config key over the checkpoint's, repeatable or comma-separated "
                        "(e.g. stabiliser=false: FTPFusion without its temporal stabiliser)")
    g.add_argument("--registration", metavar="FILE",
                   help="IR->visible registration YAML written by `ftpfusion calibrate` (key homography: 3x3, "
                        "IR pixel -> visible pixel); default: none (IR resized onto the visible frame)")


def engine_config(args: argparse.Namespace, **overrides) -> EngineConfig:
    """The EngineConfig of the engine flags (checked against the settings schema: a bad value is a
    ValueError naming the flag); ``overrides`` are set on it afterwards."""
    values = settings.values_from_args(args, exclude=CLI_OWN_FORM)
    values.update(model=args.model, registration_file=getattr(args, "registration", None) or "")
    cfg = settings.engine_config(values, model_options=parse_model_options(args.model_option))
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg
