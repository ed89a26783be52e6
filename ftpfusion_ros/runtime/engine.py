"""The streaming fusion engine: one code path for the ROS node, the offline tools and evaluation.

numpy frames in (any supported encoding) -> registration, thermal AGC, colour -> model through the
temporal ring -> fused BGR frame out, with the registered inputs and timing.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from ..models import FusionModel, build_model, default_config, model_class
from .agc import AGCConfig, ThermalAGC
from .checkpoint import load_checkpoint, packaged_checkpoint
from .device import autocast, resolve_device, resolve_dtype
from .encodings import (HIGH_DEPTH, InputError, SizeChangedError, check_array, convert_input, to_luminance_raw,
                        to_rgb_float)
from .registration import load_registration, parse_homography, register_ir
from .ring import TemporalRing

log = logging.getLogger(__name__)

#: the flagship model, used by "auto" whenever its checkpoint ships with the package
FLAGSHIP_MODEL = "ftpfusion"
#: what "auto" falls back to without that checkpoint: the classical baseline with the best balance of
#: Qabf, temporal stability (BiSWE, flicker) and CPU speed on M3SVD (docs/evaluation.md)
FALLBACK_MODEL = "laplacian"

#: how the engine runs the model: PyTorch, or the graphs of `ftpfusion export --streaming` in ONNX Runtime
BACKENDS = ("pytorch", "onnxruntime")

#: relative aspect-ratio difference tolerated when resizing IR onto the visible frame without a homography
ASPECT_TOLERANCE = 0.02


@dataclass
class EngineConfig:
    model: str = "auto"                # a registry name, or auto (see resolve_model_name)
    checkpoint: str | None = None      # None: the packaged checkpoint of a learned model
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    precision: str = "auto"            # auto (fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16
    window: int | None = None          # ring length T; None: the model's default
    lookahead: int = 0                 # 0 = causal; L > 0 outputs frame t-L seeing L future frames
    homography: list[float] | None = None  # 3x3 row-major IR -> visible pixel mapping
    registration_file: str | None = None  # YAML of `ftpfusion calibrate` (homography + image sizes);
                                       # instead of `homography`, rescaled to resized streams
    agc: AGCConfig = field(default_factory=AGCConfig)
    allow_untrained: bool = False      # run a learned model with random weights (benchmarks, tests)
    model_options: dict[str, Any] = field(default_factory=dict)  # model config keys over the checkpoint's
                                       # (e.g. {"stabiliser": False}); see parse_model_options
    backend: str = "pytorch"           # pytorch | onnxruntime (the graphs of `ftpfusion export --streaming`)
    onnx_dir: str | None = None        # backend onnxruntime: the folder that export wrote

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineConfig":
        """From a YAML/ROS-parameter mapping, checked against the settings schema (runtime/settings.py):
        unknown keys and bad values are an error naming the key (typos must not pass silently)."""
        from .settings import engine_config

        return engine_config(data)


@dataclass
class FusionResult:
    fused_bgr: np.ndarray        # (H, W, 3) uint8, the visible camera's frame
    aligned_ir: np.ndarray       # (H, W) uint8, IR registered onto the visible frame, after AGC
    aligned_vis_bgr: np.ndarray  # (H, W, 3) uint8
    stamp: Any
    latency_ms: float            # from this frame's push to its result (look-ahead delay included)
    ring_fill: int
    window: int
    model: str
    device: str


@dataclass
class _Meta:
    stamp: Any
    ir8: np.ndarray
    vis_bgr: np.ndarray
    t0: float


def resolve_model_name(name: str) -> str:
    """"auto" -> the flagship model when its checkpoint is packaged, else the classical fallback."""
    if name in ("", "auto"):
        return FLAGSHIP_MODEL if packaged_checkpoint(FLAGSHIP_MODEL) else FALLBACK_MODEL
    return name


class FusionEngine:
    def __init__(self, config: EngineConfig | None = None, model: FusionModel | None = None) -> None:
        """``model``: an already built model (e.g. the one being trained, for validation) instead of one
        loaded from the config's model name and checkpoint; it is moved to the device and put in eval mode."""
        cfg = dataclasses.replace(config or EngineConfig())
        cfg.model = model.name if model is not None else resolve_model_name(cfg.model)
        self.config = cfg
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.precision, self.device)
        if cfg.backend not in BACKENDS:
            raise ValueError(f"backend must be {' or '.join(BACKENDS)}, got {cfg.backend!r}")
        self.model: FusionModel | None = None
        if cfg.backend == "onnxruntime":  # the exported streaming graphs; no PyTorch model is loaded
            from .onnx_backend import OnnxStreamRing

            if model is not None:
                raise ValueError("backend onnxruntime runs exported graphs, not a given model")
            if cfg.checkpoint:
                raise ValueError("backend onnxruntime: the weights are inside the exported graphs; give no "
                                 "checkpoint (export again with --checkpoint to change them)")
            self.ring = OnnxStreamRing(cfg.onnx_dir, self.device, cfg.window, cfg.lookahead,
                                       fp16=self.dtype == torch.float16)
            requested = (config.model if config else "") or "auto"
            if requested != "auto" and requested != self.ring.model_name:
                raise ValueError(f"model {requested!r}: the graphs in {cfg.onnx_dir} are {self.ring.model_name}'s")
            cfg.model = self.ring.model_name
            self.size_multiple = self.ring.size_multiple
        else:
            self.model = (model if model is not None else self._load_model(cfg)).to(self.device).eval()
            self.size_multiple = self.model.size_multiple
        if cfg.registration_file and cfg.homography:
            raise ValueError("give either a homography or a registration file, not both")
        self.registration = load_registration(cfg.registration_file) if cfg.registration_file else None
        self.homography = self.registration.homography if self.registration else parse_homography(cfg.homography)
        if self.model is not None:
            self.ring = TemporalRing(self.model, cfg.window or self.model.window, cfg.lookahead)
        self.agc = ThermalAGC(cfg.agc)
        self._size: tuple[int, int] | None = None  # (W, H) of the stream, fixed until reset()
        self._ir_unit: np.dtype | None = None  # dtype of the last high-depth IR frame (counts or float)

    @staticmethod
    def _load_model(cfg: EngineConfig):
        cls = model_class(cfg.model)
        check_model_options(cfg.model, cfg.model_options)
        if not cls.learned:
            if cfg.checkpoint:
                raise ValueError(f"model {cfg.model!r} is classical and takes no checkpoint")
            return build_model(cfg.model, cfg.model_options or None)
        path = cfg.checkpoint or packaged_checkpoint(cfg.model)
        if path:
            return load_checkpoint(cfg.model, path, cfg.model_options)
        if cfg.allow_untrained:
            log.warning("model %s runs with untrained weights", cfg.model)
            return build_model(cfg.model, cfg.model_options or None)
        raise FileNotFoundError(f"model {cfg.model!r} needs a checkpoint and none is packaged; pass one "
                                "or choose a classical model")

    @property
    def window(self) -> int:
        return self.ring.window

    @property
    def model_name(self) -> str:
        return self.config.model

    def reset(self) -> None:
        self.ring.reset()
        self.agc.reset()
        self._size = None
        self._ir_unit = None

    # -- pre-processing -------------------------------------------------------------------------
    def _prepare(self, ir: np.ndarray, vis: np.ndarray, ir_encoding: str, vis_encoding: str):
        ir, ir_encoding = convert_input(ir, ir_encoding, "IR image", ir=True)
        vis, vis_encoding = convert_input(vis, vis_encoding, "visible image", ir=False)
        check_array(ir, ir_encoding, "IR image")
        check_array(vis, vis_encoding, "visible image")
        h, w = vis.shape[:2]
        ih, iw = ir.shape[:2]
        homography = self.homography
        if self.registration is not None:
            try:  # the file's matrix for these image sizes (refused for another aspect ratio)
                homography = self.registration.for_sizes((iw, ih), (w, h))
            except ValueError as exc:
                raise InputError(str(exc)) from None
        if homography is None and (ih, iw) != (h, w):
            if abs(iw / ih - w / h) > ASPECT_TOLERANCE * (w / h):
                raise InputError(f"IR image {iw}x{ih} and visible image {w}x{h} differ in aspect ratio; "
                                 "configure an IR->visible homography")
        vis_rgb = to_rgb_float(vis, vis_encoding)
        # after the visible frame's own checks, so that only a valid frame of another size says so
        if self._size is not None and self._size != (w, h):
            raise SizeChangedError(f"visible image size changed from {self._size[0]}x{self._size[1]} to {w}x{h} "
                                   "mid-stream; reset the engine to accept the new size")
        raw = to_luminance_raw(ir, ir_encoding)
        if ir_encoding in HIGH_DEPTH:
            if self._ir_unit is not None and self._ir_unit != raw.dtype:
                self.agc.reset()  # counts vs. temperatures: the old window means nothing for the new unit
            self._ir_unit = raw.dtype
            ir_f = self.agc(raw)
        else:
            ir_f = raw.astype(np.float32) * (1.0 / 255.0)
        ir_f = register_ir(ir_f, (w, h), homography)
        return ir_f, vis_rgb

    def _to_tensor(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(arr))
        t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
        t = t.to(self.device, non_blocking=True)
        m = self.size_multiple
        h, w = t.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            t = F.pad(t, (0, pw, 0, ph), mode=mode)
        return t

    # -- streaming --------------------------------------------------------------------------------
    @torch.inference_mode()
    def push(self, ir: np.ndarray, vis: np.ndarray, ir_encoding: str = "mono8", vis_encoding: str = "bgr8",
             stamp: Any = None) -> FusionResult | None:
        """Add one registered-or-not IR/visible pair; return the fused frame due now (see TemporalRing).

        Raises InputError for frames that cannot be fused; the ring is then left as it was.
        """
        t0 = time.perf_counter()
        ir_f, vis_rgb = self._prepare(ir, vis, ir_encoding, vis_encoding)
        h, w = vis_rgb.shape[:2]
        self._size = (w, h)
        meta = _Meta(stamp, (ir_f * 255.0 + 0.5).astype(np.uint8),
                     np.ascontiguousarray((vis_rgb[:, :, ::-1] * 255.0 + 0.5).astype(np.uint8)), t0)
        with autocast(self.device, self.dtype):
            out = self.ring.push(self._to_tensor(ir_f), self._to_tensor(vis_rgb), meta)
        return None if out is None else self._result(*out)

    @torch.inference_mode()
    def flush(self) -> list[FusionResult]:
        with autocast(self.device, self.dtype):
            outs = self.ring.flush()
        return [self._result(*o) for o in outs]

    def _result(self, fused: torch.Tensor, meta: _Meta) -> FusionResult:
        h, w = meta.vis_bgr.shape[:2]
        rgb = fused[0, :, :h, :w].float().clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8)
        bgr = rgb.flip(0).permute(1, 2, 0).contiguous().cpu().numpy()
        return FusionResult(
            fused_bgr=bgr,
            aligned_ir=meta.ir8,
            aligned_vis_bgr=meta.vis_bgr,
            stamp=meta.stamp,
            latency_ms=(time.perf_counter() - meta.t0) * 1e3,
            ring_fill=self.ring.fill,
            window=self.ring.window,
            model=self.config.model,
            device=str(self.device),
        )


def parse_model_options(spec: str | Sequence[str] | None) -> dict[str, Any]:
    """``"stabiliser=false,stab_sigma=0.02"`` (or a list of ``key=value``) -> {key: YAML value}.

    The form the CLI (``--model-option``) and the node (``model_options`` parameter) take; keys are the
    model's config keys and are checked when the model is built.
    """
    items = [spec] if isinstance(spec, str) else list(spec or [])
    out: dict[str, Any] = {}
    for item in (part.strip() for text in items for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad model option {item!r}: expected key=value (e.g. stabiliser=false)")
        try:
            out[key.strip()] = yaml.safe_load(value.strip())
        except yaml.YAMLError as exc:
            raise ValueError(f"model option {item!r}: value is not valid YAML ({exc})") from None
    return out


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number" if isinstance(value, float) else "an integer"
    return "a list" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"


def check_model_options(model: str, options: dict[str, Any]) -> None:
    """ValueError unless each option's value has the type of the model's default for that key.

    YAML reads ``stabiliser=banana`` as the string "banana", which the model would take as true; this
    catches it where the options are parsed, naming the key. Unknown keys are left to the model's own
    check, which lists the known ones.
    """
    defaults = default_config(model)
    for key, value in (options or {}).items():
        if key not in defaults or defaults[key] is None:
            continue
        want = defaults[key]
        if isinstance(want, bool):
            ok = isinstance(value, bool)
        elif isinstance(want, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(want, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(want, (list, tuple)):
            ok = isinstance(value, (list, tuple))
        else:
            ok = isinstance(value, type(want))
        if not ok:
            raise ValueError(f"model option {key}={value!r} for {model!r}: expected {_type_name(want)} "
                             f"(default {want!r})")
