"""The engine's ``backend: onnxruntime``: the streaming ONNX graphs of ``ftpfusion export --streaming``
run by ONNX Runtime with the same frame ring as the PyTorch engine.

Per frame: ``encoder.onnx`` turns the (padded) IR/visible pair into the frame's flat cache tensors; the
ring keeps them per frame and ``fuse_<n>.onnx`` (n = frames in the ring: the warm-up windows, then the
full one) fuses the newest frame from them. After each step the caches are trimmed with the model's own
rule (``models.ftpfusion.trim_caches``), so the ring holds network features only for the frames the
network still reads. Execution providers: TensorRT, then CUDA, when ONNX Runtime offers them and the
device is not ``cpu``; the CPU provider otherwise (and as the fallback of the others).
"""
from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encodings import InputError
from .export import MANIFEST, STREAMING_FORMAT, STREAMING_VERSION, fusion_input_name, flatten_cache, unflatten_cache
from .ring import RingEntry

class BackendError(RuntimeError):
    """The ONNX Runtime backend cannot start (package missing, folder or manifest wrong)."""


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendError("backend onnxruntime needs the 'onnxruntime' package (pip install onnxruntime, or "
                           "onnxruntime-gpu for CUDA/TensorRT)") from None
    return ort


def read_manifest(folder: str | Path | None) -> tuple[Path, dict[str, Any]]:
    if not folder:
        raise BackendError("backend onnxruntime needs the folder written by `ftpfusion export --streaming` "
                           "(onnx_dir / --onnx-dir)")
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BackendError(f"{folder} holds no {MANIFEST}: not a folder written by `ftpfusion export --streaming`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != STREAMING_FORMAT:
        raise BackendError(f"{path}: not a streaming export manifest (format {STREAMING_FORMAT!r} expected)")
    if manifest.get("version") != STREAMING_VERSION:
        raise BackendError(f"{path}: manifest version {manifest.get('version')!r}, this package reads "
                           f"{STREAMING_VERSION}; export again")
    files = [manifest["encoder"]["file"]] + [f["file"] for f in manifest["fusion"]]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise BackendError(f"{folder} lacks {', '.join(missing)} named in its manifest")
    return folder, manifest


def choose_providers(device: torch.device | str, fp16: bool = False, cache_dir: Path | None = None) -> list:
    """TensorRT and CUDA execution providers when ONNX Runtime reports them and the device is not cpu,
    else (and always last) the CPU provider."""
    ort = _import_ort()
    available = set(ort.get_available_providers())
    device = torch.device(device) if isinstance(device, str) and device not in ("", "auto") else device
    want_gpu = device in ("", "auto") or (isinstance(device, torch.device) and device.type == "cuda")
    index = device.index if isinstance(device, torch.device) and device.index is not None else 0
    providers: list = []
    if want_gpu and "TensorrtExecutionProvider" in available:
        opts: dict[str, Any] = {"device_id": index, "trt_fp16_enable": bool(fp16)}
        if cache_dir is not None:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
        providers.append(("TensorrtExecutionProvider", opts))
    if want_gpu and "CUDAExecutionProvider" in available:
        providers.append(("CUDAExecutionProvider", {"device_id": index}))
    providers.append("CPUExecutionProvider")
    return providers


class OnnxStreamRing:
    """:class:`~ftpfusion_ros.runtime.ring.TemporalRing`'s interface (push / flush / fill / window / reset)
    over the exported graphs. Causal only (the graphs fuse the newest frame), batch 1, the export's size."""

    def __init__(self, folder: str | Path | None, device: torch.device | str = "cpu", window: int | None = None,
                 lookahead: int = 0, fp16: bool = False, threads: int | None = None) -> None:
        ort = _import_ort()
        self.folder, self.manifest = read_manifest(folder)
        man = self.manifest
        if lookahead:
            raise BackendError("backend onnxruntime runs the causal ring only (lookahead 0): the exported "
                               "graphs fuse the newest frame")
        exported = int(man["window"])
        self.window = int(window or exported)
        if not 1 <= self.window <= exported:
            raise BackendError(f"window {self.window}: the graphs in {self.folder} were exported for rings of "
                               f"1..{exported} frames")
        self.lookahead = 0
        self.size = tuple(man["size"])  # (W, H), padded to size_multiple
        self.size_multiple = int(man["size_multiple"])
        self.model_name = man["model"]
        self._template = man["cache_template"]
        self._complex = set(man["encoder"]["complex"])
        self._net_window = man["net_window"]
        self._radius = int(man["stabiliser_radius"])
        opts = ort.SessionOptions()
        # one thread setting for both backends: torch's (bench --threads, OMP_NUM_THREADS) unless given
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no CPU memory arena: at 640x480 it held 1.95 GB peak RSS against 0.96 GB without, for ~5 % more
        # CPU time (2-core x86_64); the ring's caches are numpy arrays that the arena would not reuse anyway
        opts.enable_cpu_mem_arena = False
        self.providers = choose_providers(device, fp16, self.folder / "trt_cache")
        try:
            self._encoder = ort.InferenceSession(str(self.folder / man["encoder"]["file"]), opts,
                                                 providers=self.providers)
            self._fusion = {f["frames"]: ort.InferenceSession(str(self.folder / f["file"]), opts,
                                                              providers=self.providers)
                            for f in man["fusion"] if f["frames"] <= self.window}
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"ONNX Runtime could not load the graphs in {self.folder}: {exc}") from None
        self._enc_outputs = [o.name for o in self._encoder.get_outputs()]
        self._inputs = {n: [i.name for i in s.get_inputs()] for n, s in self._fusion.items()}
        self._entries: deque[RingEntry] = deque(maxlen=self.window)
        #: wall time (ms) of the last step's encoder and fusion runs (benchmark breakdown)
        self.last_ms: dict[str, float] = {}

    @property
    def active_providers(self) -> list[str]:
        return list(self._encoder.get_providers())

    @property
    def fill(self) -> int:
        return len(self._entries)

    def reset(self) -> None:
        self._entries.clear()

    def push(self, ir: torch.Tensor, vis: torch.Tensor, meta: Any = None) -> tuple[torch.Tensor, Any]:
        w, h = self.size
        if tuple(ir.shape) != (1, 1, h, w) or tuple(vis.shape) != (1, 3, h, w):
            raise InputError(f"the ONNX graphs in {self.folder} take {w}x{h} frames (padded to "
                             f"{self.size_multiple}); this stream's are {vis.shape[-1]}x{vis.shape[-2]}: "
                             f"export again with --size {vis.shape[-1]}x{vis.shape[-2]}")
        t0 = time.perf_counter()
        outs = self._encoder.run(self._enc_outputs, {"ir": _np(ir), "visible": _np(vis)})
        t1 = time.perf_counter()
        cache = unflatten_cache(self._template, {n[len("cache."):]: a for n, a in zip(self._enc_outputs, outs)})
        self._entries.append(RingEntry(cache, meta))
        n = len(self._entries)
        feeds: dict[str, np.ndarray] = {}
        for j, entry in enumerate(self._entries):
            for name, arr in flatten_cache(entry.cache).items():
                feeds[fusion_input_name(j, name)] = arr
        needed = self._inputs[n]
        missing = [k for k in needed if k not in feeds]
        if missing:  # the trimming rule and the exported graph disagree: a bug, not bad input
            raise RuntimeError(f"fuse_{n}.onnx needs cached tensors the ring no longer holds: {missing[:4]}")
        (fused,) = self._fusion[n].run(["fused"], {k: feeds[k] for k in needed})
        t2 = time.perf_counter()
        self.last_ms = {"encode": (t1 - t0) * 1e3, "fuse": (t2 - t1) * 1e3}
        self._trim()
        return torch.from_numpy(fused).to(ir.device), meta

    def flush(self) -> list[tuple[torch.Tensor, Any]]:
        return []  # causal: nothing is delayed

    def _trim(self) -> None:
        from ..models.ftpfusion import trim_caches

        caches = trim_caches([e.cache for e in self._entries], len(self._entries), len(self._entries) + 1,
                             self._net_window, self._radius)
        for entry, cache in zip(self._entries, caches):
            entry.cache = cache


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())
