"""FTPFusion's controlled perturbation protocol (sec. 4.1, app. B) for test clips, applied before fusion.

Four seeded corruptions, each with a strength (0 = off); the paper's strength ranges are flicker 0..2,
jitter 0..0.55 px and local misalignment 0..4 px, which the definitions below are scaled for:

* ``flicker`` s: frame-wise global gain and offset of a camera, independently per frame:
  gain = 1 + 0.04 s u1, offset = 4 s u2 grey levels (x257 for 16-bit IR), u ~ U(-1, 1). Applied to the
  visible camera by default (``flicker_on``: vis | ir | both; "both" draws per modality).
* ``jitter`` s (px): per-frame global translation (dx, dy) ~ s N(0, 1) per axis, clipped to 3 s, with
  sub-pixel bilinear resampling. Default ``jitter_on="both"``: the same shake of the whole rig (the
  pair stays registered, the video shakes); "ir" or "vis" shakes one camera only.
* ``misalign`` m (px): a smooth local warp of one modality (IR by default, ``misalign_on``) relative
  to the other: a random coarse 4x5 grid of displacements U(-m, m), bicubic-upsampled; new fields are
  drawn every ``misalign_period`` frames and interpolated linearly in between (slowly wobbling
  registration error).
* ``offset`` k (frames, integer): the IR camera lags the visible by k frames (temporal offset); the
  first IR frame repeats at the start.

Deterministic: every draw comes from ``numpy.random.default_rng([seed, sequence id, t, stream])``
(sequence id = CRC32 of the sequence name), so a frame's corruption depends only on (seed, sequence,
t) and not on what else was perturbed or in which order the sequences run.
"""
from __future__ import annotations

import zlib
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Iterator

import cv2
import numpy as np

_S_FLICKER, _S_JITTER, _S_MISALIGN, _S_MISALIGN_VIS = 0, 1, 2, 3
_TARGETS = ("ir", "vis", "both")
_FLICKER_GAIN, _FLICKER_OFFSET = 0.04, 4.0  # per unit strength: relative gain, 8-bit grey levels
_GRID = (4, 5)  # coarse misalignment grid (rows, cols)


@dataclass(frozen=True)
class PerturbConfig:
    flicker: float = 0.0
    jitter: float = 0.0
    misalign: float = 0.0
    offset: int = 0
    seed: int = 0
    flicker_on: str = "vis"
    jitter_on: str = "both"
    misalign_on: str = "ir"
    misalign_period: int = 5

    def __post_init__(self) -> None:
        for name in ("flicker", "jitter", "misalign"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"perturbation strength {name}={v} must be a finite number >= 0")
        if int(self.offset) != self.offset or self.offset < 0:
            raise ValueError(f"offset must be a whole number of frames >= 0, got {self.offset}")
        if self.flicker * _FLICKER_GAIN >= 1:
            raise ValueError(f"flicker={self.flicker} is too strong (gain would reach 0); use < {1 / _FLICKER_GAIN:g}")
        for name in ("flicker_on", "jitter_on", "misalign_on"):
            if getattr(self, name) not in _TARGETS:
                raise ValueError(f"{name} must be one of {_TARGETS}, got {getattr(self, name)!r}")
        if self.misalign_period < 1:
            raise ValueError("misalign_period must be >= 1 frame")

    @property
    def active(self) -> bool:
        return bool(self.flicker or self.jitter or self.misalign or self.offset)

    def describe(self) -> str:
        """Compact form, e.g. ``flicker=1,jitter=0.25,misalign=2`` (``clean`` when nothing is on)."""
        parts = [f"{k}={getattr(self, k):g}" for k in ("flicker", "jitter", "misalign", "offset") if getattr(self, k)]
        return ",".join(parts) if parts else "clean"

    def to_dict(self) -> dict:
        return asdict(self)


def parse_perturb(spec: str | None, seed: int = 0) -> PerturbConfig:
    """Parse ``"flicker=1,jitter=0.25,misalign=2"`` (also ``offset``, ``*_on``, ``misalign_period``)."""
    cfg = PerturbConfig(seed=seed)
    if not spec or spec.strip().lower() in ("", "none", "clean"):
        return cfg
    values: dict = {}
    fields_ = set(PerturbConfig.__dataclass_fields__) - {"seed"}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"bad perturbation {item!r}: expected name=value (e.g. flicker=1,jitter=0.25)")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in fields_:
            raise ValueError(f"unknown perturbation {key!r}; known: {', '.join(sorted(fields_))}")
        if key.endswith("_on"):
            values[key] = value
        else:
            try:
                values[key] = int(value) if key in ("offset", "misalign_period") else float(value)
            except ValueError:
                raise ValueError(f"perturbation {key}={value!r}: not a number") from None
    return replace(cfg, **values)


def sequence_id(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class ClipPerturber:
    """Applies a :class:`PerturbConfig` to the frames of one sequence, frame by frame.

    Call with frames in order (``offset`` keeps the last k IR frames); :meth:`reset` to restart.
    Images keep their dtype (uint8 / uint16 IR, uint8 BGR visible) and size.
    """

    def __init__(self, config: PerturbConfig, sequence: str = "") -> None:
        self.config = config
        self.seq = sequence_id(sequence)
        self._ir_delay: deque[np.ndarray] = deque(maxlen=config.offset + 1)

    def reset(self) -> None:
        self._ir_delay.clear()

    # ------------------------------------------------------------------------------ per-frame draws
    def _rng(self, t: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, self.seq, t, stream])

    def flicker_params(self, t: int) -> dict[str, tuple[float, float]]:
        """{modality: (gain, offset in 8-bit grey levels)} of frame t for the flickering modalities."""
        s = self.config.flicker
        if s <= 0:
            return {}
        u = self._rng(t, _S_FLICKER).uniform(-1.0, 1.0, 4)
        on = self.config.flicker_on
        out = {}
        if on in ("ir", "both"):
            out["ir"] = (1.0 + _FLICKER_GAIN * s * u[0], _FLICKER_OFFSET * s * u[1])
        if on in ("vis", "both"):
            out["vis"] = (1.0 + _FLICKER_GAIN * s * u[2], _FLICKER_OFFSET * s * u[3])
        return out

    def jitter_shift(self, t: int) -> tuple[float, float]:
        """(dx, dy) in visible-frame pixels: frame t shows the scene moved by (-dx, -dy)."""
        s = self.config.jitter
        if s <= 0:
            return 0.0, 0.0
        d = np.clip(self._rng(t, _S_JITTER).standard_normal(2) * s, -3 * s, 3 * s)
        return float(d[0]), float(d[1])

    def _coarse_field(self, key: int, stream: int) -> np.ndarray:
        m = self.config.misalign
        return self._rng(key, stream).uniform(-m, m, (2, *_GRID)).astype(np.float32)

    def misalign_field(self, t: int, shape: tuple[int, int], modality: str = "ir"
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        """(dx, dy) displacement fields (H, W) float32 of `modality` at frame t, or None when off."""
        if self.config.misalign <= 0:
            return None
        stream = _S_MISALIGN if modality == "ir" else _S_MISALIGN_VIS
        p = self.config.misalign_period
        k0, r = divmod(t, p)
        w = r / p
        coarse = self._coarse_field(k0, stream)
        if w:
            coarse = (1 - w) * coarse + w * self._coarse_field(k0 + 1, stream)
        h, wd = shape
        return (cv2.resize(coarse[0], (wd, h), interpolation=cv2.INTER_CUBIC),
                cv2.resize(coarse[1], (wd, h), interpolation=cv2.INTER_CUBIC))

    # ------------------------------------------------------------------------------------- applying
    def _geometry(self, img: np.ndarray, shift: tuple[float, float] | None,
                  field: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        if shift is None and field is None:
            return img
        h, w = img.shape[:2]
        dx, dy = shift or (0.0, 0.0)
        if field is None:
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT_101)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return cv2.remap(img, gx + field[0] + dx, gy + field[1] + dy, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)

    @staticmethod
    def _photometric(img: np.ndarray, gain: float, offset8: float) -> np.ndarray:
        top = 65535.0 if img.dtype == np.uint16 else 255.0
        offset = offset8 * (257.0 if img.dtype == np.uint16 else 1.0)
        out = img.astype(np.float32) * gain + offset
        return np.clip(np.rint(out), 0, top).astype(img.dtype)

    def __call__(self, t: int, ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        if cfg.offset:
            self._ir_delay.append(ir)
            ir = self._ir_delay[0]  # IR from frame t - offset (the first frame while the delay fills)
        if not (cfg.flicker or cfg.jitter or cfg.misalign):
            return ir, vis
        jx, jy = self.jitter_shift(t)
        vis_w = vis.shape[1]
        for_ir = cfg.jitter > 0 and cfg.jitter_on in ("ir", "both")
        for_vis = cfg.jitter > 0 and cfg.jitter_on in ("vis", "both")
        # the shift is in visible pixels; IR of another resolution shakes by the same angle
        sx = ir.shape[1] / vis_w
        ir_shift = (jx * sx, jy * sx) if for_ir else None
        vis_shift = (jx, jy) if for_vis else None
        ir_field = self.misalign_field(t, ir.shape[:2]) if cfg.misalign_on in ("ir", "both") else None
        vis_field = self.misalign_field(t, vis.shape[:2], "vis") if cfg.misalign_on in ("vis", "both") else None
        ir = self._geometry(ir, ir_shift, ir_field)
        vis = self._geometry(vis, vis_shift, vis_field)
        for modality, (gain, off) in self.flicker_params(t).items():
            if modality == "ir":
                ir = self._photometric(ir, gain, off)
            else:
                vis = self._photometric(vis, gain, off)
        return ir, vis

    def frames(self, frames: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Perturb a ``(name, ir, vis)`` frame stream (as yielded by SequencePair.frames), frame t = 0, 1, ..."""
        self.reset()
        for t, (name, ir, vis) in enumerate(frames):
            ir2, vis2 = self(t, ir, vis)
            yield name, ir2, vis2


def perturb_clip(ir: np.ndarray | list, vis: np.ndarray | list, config: PerturbConfig,
                 sequence: str = "") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Perturb whole clips given as sequences of frames (T x (H,W) IR, T x (H,W,3) visible)."""
    p = ClipPerturber(config, sequence)
    out_ir, out_vis = [], []
    for t, (i, v) in enumerate(zip(ir, vis)):
        i2, v2 = p(t, i, v)
        out_ir.append(i2)
        out_vis.append(v2)
    return out_ir, out_vis
