"""The engine's settings, declared once: the ROS node's parameters, the CLI flags and evaluation derive from here.

Each :class:`Setting` has a name (dotted for groups: ``agc.mode``), a kind (bool | int | float | str |
float_list), a default, a description, optional bounds / choices / allowed list lengths, and whether it
may change while the engine runs (``runtime``: applied on the next frame, e.g. the thermal gain control);
the others need a reconfigure (the node marks them ``read_only``).

- ``ftpfusion_ros/ros/params.py`` declares :data:`ENGINE_SETTINGS` (and the nodes' own settings, written
  with the same class) as ROS parameters with descriptors (description, range, read_only);
- ``ftpfusion_ros/cli/common.py`` adds one flag per setting (``agc.fixed_low`` -> ``--agc-fixed-low``);
- the evaluation runner builds its engine configs with :func:`engine_config`.

:func:`check` and :func:`check_mapping` refuse a wrong type, an out-of-range value or an unknown key
with a ValueError that names the key. No ROS import here: the offline tools use this module too.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

KINDS = ("bool", "int", "float", "str", "float_list")


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    length: tuple[int, ...] | None = None      # allowed list lengths (float_list)
    runtime: bool = False                      # may change while running (applied on the next frame)
    cli: bool = True                           # offered as a command-line flag by the offline tools

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name}: unknown kind {self.kind!r}")

    @property
    def flag(self) -> str:
        """The command-line flag: ``agc.fixed_low`` -> ``--agc-fixed-low``."""
        return "--" + self.name.replace(".", "-").replace("_", "-")

    @property
    def dest(self) -> str:
        """The argparse destination of :attr:`flag`."""
        return self.name.replace(".", "_")

    def help(self) -> str:
        extra = []
        if self.choices:
            extra.append("one of " + " | ".join(self.choices))
        if self.minimum is not None or self.maximum is not None:
            lo = "" if self.minimum is None else f"{self.minimum:g} <= "
            hi = "" if self.maximum is None else f" <= {self.maximum:g}"
            extra.append(f"{lo}value{hi}")
        extra.append(f"default: {self.default!r}")
        return f"{self.description} ({'; '.join(extra)})"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def coerce(name: str, value: Any, kind: str) -> Any:
    """``value`` converted to ``kind``; ValueError naming ``name`` otherwise. Integers are accepted for
    floats (``slop: 1`` in YAML means 1.0), integer lists for float lists."""
    def bad(expected: str) -> ValueError:
        return ValueError(f"{name!r} must be {expected}, got {value!r} ({type(value).__name__})")

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if kind == "float":
        if not _is_number(value) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "float_list":
        if value is None:
            return []
        if not isinstance(value, (list, tuple)) or not all(_is_number(v) and math.isfinite(v) for v in value):
            raise bad("a list of finite numbers")
        return [float(v) for v in value]
    raise ValueError(f"unknown kind {kind!r}")


def check(setting: Setting, value: Any, prefix: str = "") -> Any:
    """The checked value of ``setting`` (type, range, choices, list length); ValueError naming the key."""
    name = prefix + setting.name
    value = coerce(name, value, setting.kind)
    if setting.minimum is not None and value < setting.minimum:
        raise ValueError(f"{name!r} must be >= {setting.minimum:g}, got {value}")
    if setting.maximum is not None and value > setting.maximum:
        raise ValueError(f"{name!r} must be <= {setting.maximum:g}, got {value}")
    if setting.choices is not None and value not in setting.choices:
        raise ValueError(f"{name!r} must be one of {', '.join(setting.choices)}; got {value!r}")
    if setting.length is not None and len(value) not in setting.length:
        raise ValueError(f"{name!r} needs {' or '.join(map(str, setting.length))} values, got {len(value)}")
    return value


def _engine_settings() -> tuple[Setting, ...]:
    from .agc import AGC_MODES, IR_UNITS, WINDOW_UNITS, AGCConfig
    from .device import PRECISIONS
    from .engine import BACKENDS
    from .seg_output import IMAGENET_MEAN, IMAGENET_STD, SEG_FORMATS

    agc = AGCConfig()
    S = Setting
    return (
        S("model", "str", "auto", "model name, or auto (ftpfusion with its packaged checkpoint, else the "
          "classical fallback)"),
        S("checkpoint", "str", "", "state_dict checkpoint; empty: the packaged one"),
        S("device", "str", "auto", "auto | cpu | cuda | cuda:N"),
        S("precision", "str", "auto", "auto (fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16", choices=PRECISIONS),
        S("window", "int", 0, "temporal ring length T; 0: the model's", minimum=0, maximum=1024),
        S("lookahead", "int", 0, "frames of look-ahead (0: causal)", minimum=0, maximum=1024),
        S("model_options", "str", "", "model config keys over the checkpoint's: key=value,... "
          "(e.g. stabiliser=false)"),
        S("homography", "float_list", [], "3x3 row-major IR->visible homography (IR pixel -> visible pixel), "
          "instead of a registration file; empty: none", length=(0, 9)),
        S("registration_file", "str", "", "IR->visible registration YAML written by `ftpfusion calibrate` "
          "(instead of homography); empty: none"),
        S("allow_untrained", "bool", False, "run a learned model with random weights (smoke tests)"),
        S("backend", "str", "pytorch", "pytorch | onnxruntime (the graphs of `ftpfusion export --streaming` in "
          "onnx_dir; TensorRT/CUDA execution providers when present, else CPU; causal only)",
          choices=BACKENDS),
        S("onnx_dir", "str", "", "backend onnxruntime: the folder written by `ftpfusion export --streaming`"),
        # thermal gain control: safe to change while running (the next frame uses the new window)
        S("agc.mode", "str", agc.mode, "thermal gain control: percentile (smoothed robust percentiles) | "
          "fixed (a steady radiometric window: fixed_low..fixed_high)", choices=AGC_MODES, runtime=True),
        S("agc.ir_unit", "str", agc.ir_unit, "what the IR camera's 16-bit/float values are: counts (no "
          "temperature meaning) | centikelvin (Lepton TLinear, radiometric 16-bit) | kelvin | celsius "
          "(32FC1 temperature)", choices=IR_UNITS, runtime=True),
        S("agc.window_unit", "str", agc.window_unit, "unit of fixed_low/fixed_high: raw (the camera's values) "
          "| kelvin | celsius (needs a radiometric ir_unit)", choices=WINDOW_UNITS, runtime=True),
        S("agc.fixed_low", "float", agc.fixed_low, "fixed window: the value mapped to black", runtime=True),
        S("agc.fixed_high", "float", agc.fixed_high, "fixed window: the value mapped to white", runtime=True),
        S("agc.low_percentile", "float", agc.low_percentile, "percentile mode: lower percentile",
          minimum=0.0, maximum=100.0, runtime=True),
        S("agc.high_percentile", "float", agc.high_percentile, "percentile mode: upper percentile",
          minimum=0.0, maximum=100.0, runtime=True),
        S("agc.smoothing", "float", agc.smoothing, "percentile mode: EMA weight of the newest frame",
          minimum=1e-6, maximum=1.0, runtime=True),
        S("agc.max_step", "float", agc.max_step, "percentile mode: largest move of a bound per frame, as a "
          "fraction of the window's span", minimum=1e-6, maximum=1.0, runtime=True),
        S("agc.min_span", "float", agc.min_span, "narrowest window in raw values (avoids amplifying noise)",
          minimum=0.0, runtime=True),
        # segmentation-ready output (fused/image_seg of the node)
        S("seg.enabled", "bool", True, "publish fused/image_seg", cli=False),
        S("seg.width", "int", 640, "fused/image_seg width", minimum=1, maximum=8192, runtime=True, cli=False),
        S("seg.height", "int", 480, "fused/image_seg height", minimum=1, maximum=8192, runtime=True, cli=False),
        S("seg.format", "str", "rgb8", "rgb8 | float (32FC3, (x/255 - mean) / std)", choices=SEG_FORMATS,
          runtime=True, cli=False),
        S("seg.mean", "float_list", list(IMAGENET_MEAN), "per-channel mean (float format)", length=(3,),
          runtime=True, cli=False),
        S("seg.std", "float_list", list(IMAGENET_STD), "per-channel std (float format)", length=(3,),
          runtime=True, cli=False),
    )


ENGINE_SETTINGS: tuple[Setting, ...] = _engine_settings()
BY_NAME: dict[str, Setting] = {s.name: s for s in ENGINE_SETTINGS}


def defaults(settings: Iterable[Setting] = ENGINE_SETTINGS) -> dict[str, Any]:
    return {s.name: (list(s.default) if isinstance(s.default, (list, tuple)) else s.default) for s in settings}


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"agc": {"mode": "fixed"}} -> {"agc.mode": "fixed"} (YAML groups as dotted keys)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_mapping(data: Mapping[str, Any], settings: Sequence[Setting] = ENGINE_SETTINGS) -> dict[str, Any]:
    """Every key checked: an unknown key (the nearest known one suggested) or a bad value is a ValueError
    naming it. Returns the defaults updated with the checked values."""
    import difflib

    by_name = {s.name: s for s in settings}
    values = defaults(settings)
    for key, value in flatten(data).items():
        if key not in by_name:
            near = difflib.get_close_matches(key, list(by_name), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"unknown engine setting {key!r}{hint}; known: {', '.join(by_name)}")
        values[key] = check(by_name[key], value)
    return values


def agc_config(values: Mapping[str, Any]):
    """The AGCConfig of checked ``values`` (its own cross-field checks apply, e.g. fixed_high > fixed_low)."""
    from .agc import AGCConfig

    known = {f.name for f in fields(AGCConfig)}
    return AGCConfig(**{k[4:]: v for k, v in values.items() if k.startswith("agc.") and k[4:] in known})


def seg_config(values: Mapping[str, Any]):
    from .seg_output import SegOutputConfig

    return SegOutputConfig(width=values["seg.width"], height=values["seg.height"], format=values["seg.format"],
                           mean=tuple(values["seg.mean"]), std=tuple(values["seg.std"]))


def engine_config(data: Mapping[str, Any] | None = None, **overrides: Any):
    """The EngineConfig of ``data`` (dotted or nested keys, checked: unknown keys and bad values refused
    with the key named) and ``overrides`` (already-typed EngineConfig fields, e.g. model_options as a dict)."""
    from .engine import EngineConfig, parse_model_options

    values = check_mapping(data or {})
    cfg_fields = {f.name: f for f in fields(EngineConfig)}
    kwargs: dict[str, Any] = dict(
        model=values["model"],
        checkpoint=values["checkpoint"] or None,
        device=values["device"],
        precision=values["precision"],
        window=values["window"] or None,
        lookahead=values["lookahead"],
        model_options=parse_model_options(values["model_options"]),
        homography=values["homography"] or None,
        registration_file=values["registration_file"] or None,
        allow_untrained=values["allow_untrained"],
        agc=agc_config(values),
    )
    # settings added to EngineConfig by name (e.g. a backend choice) pass straight through
    for name in cfg_fields.keys() - kwargs.keys():
        if name in values:  # "" stands for None where the config's default is None (e.g. onnx_dir)
            empty = values[name] in ("", []) and cfg_fields[name].default is None
            kwargs[name] = None if empty else values[name]
    kwargs.update(overrides)
    return EngineConfig(**kwargs)


# -- command line --------------------------------------------------------------------------------
def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(group: Any, settings: Iterable[Setting] = ENGINE_SETTINGS, exclude: Iterable[str] = (),
                  defaults_override: Mapping[str, Any] | None = None) -> list[Setting]:
    """One flag per CLI setting (``exclude``: names a command declares itself). Flags default to None
    (not given); :func:`values_from_args` fills in the schema's defaults. Returns the settings added."""
    exclude = set(exclude)
    added = []
    for s in settings:
        if not s.cli or s.name in exclude:
            continue
        default = (defaults_override or {}).get(s.name)
        kwargs: dict[str, Any] = dict(dest=s.dest, default=default, help=s.help())
        if s.kind == "bool":
            kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="BOOL")
        elif s.kind == "int":
            kwargs.update(type=int)
        elif s.kind == "float":
            kwargs.update(type=float)
        elif s.kind == "float_list":
            kwargs.update(type=float, nargs="+")
        if s.choices:
            kwargs["choices"] = s.choices
        group.add_argument(s.flag, **kwargs)
        added.append(s)
    return added


def values_from_args(args: argparse.Namespace, settings: Iterable[Setting] = ENGINE_SETTINGS,
                     exclude: Iterable[str] = ()) -> dict[str, Any]:
    """{setting name: value} of the flags :func:`add_arguments` added (the same ``exclude``) that were
    given on the command line, checked against the schema."""
    exclude = set(exclude)
    out = {}
    for s in settings:
        if not s.cli or s.name in exclude:
            continue
        value = getattr(args, s.dest, None)
        if value is not None:
            try:
                out[s.name] = check(s, value)
            except ValueError as exc:
                raise ValueError(f"{s.flag}: {exc}") from None
    return out

