"""Training clips: T consecutive frames of registered IR/visible sequences, cropped, flipped and
(optionally) perturbed, all drawn from a seeded generator per sample.

Sequences (frame folders or MP4 pairs, via :mod:`.sequences`) are decoded once into uint8 arrays at an
optional downscale factor: IR (N, H, W), visible (N, H, W, 3) BGR. With a cache directory the arrays
are written as ``.npy`` files and memory-mapped afterwards, so a second run (or a DataLoader worker, or
another DDP process) starts at once and the frames live in the OS page cache rather than in each
process. 16-bit thermal frames are mapped to 8 bit with ONE linear window per sequence (0.5/99.5
percentiles over the sequence, :func:`ftpfusion_ros.metrics.common.ir_to_8bit`'s rule): a per-frame
window would make training clips flicker.

Sample ``i`` of a :class:`ClipDataset` is a pure function of ``(seed, i)`` (``numpy.random.default_rng
([seed, i])``): which sequence, which start frame, crop, flips and perturbation strengths. The trainer
numbers samples consecutively over steps and processes, so runs are reproducible and resumable.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .perturb import ClipPerturber, PerturbConfig
from .sequences import SequencePair

log = logging.getLogger(__name__)

#: bump when the decoded format changes, so that old caches are not reused
CACHE_VERSION = 1
#: IR and visible frames whose aspect ratios differ by more than this need a homography (not supported here)
ASPECT_TOLERANCE = 0.02


@dataclass
class DecodedSequence:
    """A sequence decoded to uint8 arrays (in memory or memory-mapped)."""

    name: str
    ir: np.ndarray    # (N, H, W) uint8
    vis: np.ndarray   # (N, H, W, 3) uint8 BGR
    frame_names: list[str]

    def __len__(self) -> int:
        return int(self.ir.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.ir.shape[1]), int(self.ir.shape[2])


# --------------------------------------------------------------------------------------------- decoding
def _source_signature(path: Path) -> list:
    """Sizes and modification times of a video file or of every file in a frame folder."""
    if path.is_dir():
        return sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(path) if e.is_file())
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def cache_key(pair: SequencePair, scale: float, max_frames: int | None) -> str:
    sig = {
        "version": CACHE_VERSION,
        "ir": str(Path(pair.ir_path).resolve()),
        "vis": str(Path(pair.vis_path).resolve()),
        "ir_files": _source_signature(Path(pair.ir_path)),
        "vis_files": _source_signature(Path(pair.vis_path)),
        "frames": len(pair),
        "scale": round(float(scale), 6),
        "max_frames": max_frames,
    }
    return hashlib.sha256(json.dumps(sig, sort_keys=True).encode()).hexdigest()[:16]


def _scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def _decode(pair: SequencePair, scale: float, max_frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(pair) if max_frames is None else min(len(pair), max_frames)
    if n < 1:
        raise ValueError(f"sequence {pair.name!r} has no frames")
    ir_out = vis_out = None
    for i, (fname, ir, vis) in enumerate(pair.frames(0, n)):
        vh, vw = vis.shape[:2]
        ih, iw = ir.shape[:2]
        if (ih, iw) != (vh, vw) and abs(iw / ih - vw / vh) > ASPECT_TOLERANCE * (vw / vh):
            raise ValueError(f"sequence {pair.name!r} frame {fname}: IR {iw}x{ih} and visible {vw}x{vh} differ in "
                             "aspect ratio; training needs registered pairs (register them first)")
        h, w = _scaled_size(vh, vw, scale)
        if ir_out is None:
            ir_out = np.empty((n, h, w), dtype=ir.dtype)
            vis_out = np.empty((n, h, w, 3), dtype=np.uint8)
        elif ir.dtype != ir_out.dtype or (h, w) != ir_out.shape[1:]:
            raise ValueError(f"sequence {pair.name!r} frame {fname}: size or IR bit depth changed mid-sequence")
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        ir_out[i] = ir if (ih, iw) == (h, w) else cv2.resize(ir, (w, h), interpolation=interp)
        vis_out[i] = vis if (vh, vw) == (h, w) else cv2.resize(vis, (w, h), interpolation=interp)
    assert ir_out is not None and vis_out is not None
    if ir_out.dtype == np.uint16:
        ir_out = _ir16_to_8(ir_out)
    return np.ascontiguousarray(ir_out), vis_out


def _ir16_to_8(ir: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """One fixed linear window for the whole sequence (percentiles over a frame subsample)."""
    sample = ir[:: max(1, len(ir) // 64)]
    lo, hi = np.percentile(sample, [low_pct, high_pct])
    hi = max(hi, lo + 1.0)
    out = np.empty(ir.shape, dtype=np.uint8)
    for i in range(len(ir)):  # frame by frame: a float copy of a whole long sequence would be large
        out[i] = np.clip((ir[i].astype(np.float32) - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
    return out


def decode_sequence(pair: SequencePair, scale: float = 1.0, max_frames: int | None = None,
                    cache_dir: str | Path | None = None) -> DecodedSequence:
    """Decode `pair` to uint8 arrays at `scale`, through the ``.npy`` cache in `cache_dir` if given."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if cache_dir is None:
        ir, vis = _decode(pair, scale, max_frames)
        return DecodedSequence(pair.name, ir, vis, list(pair.frame_names[:len(ir)]))
    root = Path(cache_dir).expanduser()
    target = root / f"{pair.name}-{cache_key(pair, scale, max_frames)}"
    if not (target / "meta.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        log.info("decoding %s (%d frames) into %s", pair.name, len(pair), target)
        ir, vis = _decode(pair, scale, max_frames)
        tmp = Path(tempfile.mkdtemp(prefix=f".{pair.name}-", dir=root))
        try:
            np.save(tmp / "ir.npy", ir)
            np.save(tmp / "vis.npy", vis)
            meta = {"name": pair.name, "ir_path": str(pair.ir_path), "vis_path": str(pair.vis_path),
                    "scale": scale, "frames": len(ir), "frame_names": list(pair.frame_names[:len(ir)])}
            (tmp / "meta.json").write_text(json.dumps(meta))
            try:
                os.replace(tmp, target)  # atomic; another process may have won the race, which is fine
            except OSError:
                if not (target / "meta.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = json.loads((target / "meta.json").read_text())
    ir = np.load(target / "ir.npy", mmap_mode="r")
    vis = np.load(target / "vis.npy", mmap_mode="r")
    return DecodedSequence(pair.name, ir, vis, meta["frame_names"])


# --------------------------------------------------------------------------------------------- tensors
def to_tensors(ir: np.ndarray, vis_bgr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 clips IR (T, H, W) and visible BGR (T, H, W, 3) -> model tensors (1, T, H, W) and RGB
    (3, T, H, W) in [0, 1]."""
    ir_t = torch.from_numpy(_writable(ir)).float().div_(255.0)[None]
    vis_t = torch.from_numpy(_writable(vis_bgr[..., ::-1])).float().div_(255.0).permute(3, 0, 1, 2)
    return ir_t, vis_t.contiguous()


def _writable(a: np.ndarray) -> np.ndarray:
    """A contiguous array torch may wrap (slices of the read-only cache memmap are copied)."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


# ---------------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class PerturbAugment:
    """Perturbation augmentation: with probability `prob`, each corruption at a strength ~ U(0, max)."""

    prob: float = 0.0
    flicker: float = 0.0
    jitter: float = 0.0
    misalign: float = 0.0
    offset: int = 0
    flicker_on: str = "vis"
    jitter_on: str = "both"
    misalign_on: str = "ir"

    @property
    def active(self) -> bool:
        return self.prob > 0 and bool(self.flicker or self.jitter or self.misalign or self.offset)

    @classmethod
    def from_config(cls, cfg) -> "PerturbAugment":
        return cls(**dataclasses.asdict(cfg))


class ClipDataset(Dataset):
    """Random training clips; item ``i`` is sample number i (any int >= 0), see the module docstring.

    Returns ``(ir, vis)``: (1, T, P, P) and RGB (3, T, P, P) float tensors in [0, 1].
    """

    def __init__(self, sequences: Sequence[DecodedSequence], clip_len: int = 5, patch: int = 128,
                 hflip: float = 0.5, vflip: float = 0.0, perturb: PerturbAugment | None = None,
                 seed: int = 0) -> None:
        if not sequences:
            raise ValueError("no training sequences")
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        self.sequences = list(sequences)
        self.clip_len = clip_len
        self.hflip, self.vflip = hflip, vflip
        self.perturb = perturb or PerturbAugment()
        self.seed = int(seed)
        self.starts = np.array([max(0, len(s) - clip_len + 1) for s in self.sequences], dtype=np.int64)
        if self.starts.sum() == 0:
            raise ValueError(f"every sequence is shorter than clip_len={clip_len} frames: "
                             + ", ".join(f"{s.name} ({len(s)})" for s in self.sequences))
        self._weights = self.starts / self.starts.sum()
        self.patch = patch
        self.set_patch(patch)

    def set_patch(self, patch: int) -> None:
        """Change the crop size (the curriculum); checks that every sequence is large enough."""
        small = [f"{s.name} ({s.size[1]}x{s.size[0]})" for s, n in zip(self.sequences, self.starts)
                 if n > 0 and min(s.size) < patch]
        if small:
            raise ValueError(f"patch {patch} is larger than the frames of {', '.join(small)} "
                             "(lower the curriculum patch sizes or raise data.scale)")
        self.patch = int(patch)

    def __len__(self) -> int:
        """Number of distinct clip starts (samples themselves are unbounded: any id >= 0 is valid)."""
        return int(self.starts.sum())

    def __getitem__(self, sample_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        if sample_id < 0:
            raise IndexError(f"sample ids are >= 0, got {sample_id}")
        rng = np.random.default_rng([self.seed, int(sample_id)])
        s = int(rng.choice(len(self.sequences), p=self._weights))
        seq = self.sequences[s]
        t0 = int(rng.integers(0, self.starts[s]))
        h, w = seq.size
        p = self.patch
        y0 = int(rng.integers(0, h - p + 1))
        x0 = int(rng.integers(0, w - p + 1))
        flip_h = rng.random() < self.hflip
        flip_v = rng.random() < self.vflip
        # perturbation draws always happen (fixed draw order), used only when the clip is perturbed
        aug = self.perturb
        use_perturb = aug.active and rng.random() < aug.prob
        strengths = rng.random(3)
        lag = int(rng.integers(0, aug.offset + 1))
        pert_seed = int(rng.integers(0, 2**31 - 1))

        t_idx = np.arange(t0, t0 + self.clip_len)
        if use_perturb and lag:
            ir_idx = np.clip(t_idx - lag, 0, None)  # the IR camera lags by `lag` frames
        else:
            ir_idx = t_idx
        if use_perturb:
            cfg = PerturbConfig(flicker=float(aug.flicker * strengths[0]), jitter=float(aug.jitter * strengths[1]),
                                misalign=float(aug.misalign * strengths[2]), seed=pert_seed,
                                flicker_on=aug.flicker_on, jitter_on=aug.jitter_on, misalign_on=aug.misalign_on)
            # warp a crop with a margin so that the shifted content comes from the real frame
            m = int(math.ceil(3 * cfg.jitter + cfg.misalign)) + 1
            ya, yb = max(0, y0 - m), min(h, y0 + p + m)
            xa, xb = max(0, x0 - m), min(w, x0 + p + m)
            ir = np.array(seq.ir[ir_idx, ya:yb, xa:xb])
            vis = np.array(seq.vis[t_idx, ya:yb, xa:xb])
            perturber = ClipPerturber(cfg, seq.name)
            for t in range(self.clip_len):
                ir[t], vis[t] = perturber(int(t_idx[t]), ir[t], vis[t])
            ir = ir[:, y0 - ya:y0 - ya + p, x0 - xa:x0 - xa + p]
            vis = vis[:, y0 - ya:y0 - ya + p, x0 - xa:x0 - xa + p]
        else:
            ir = seq.ir[ir_idx, y0:y0 + p, x0:x0 + p]
            vis = seq.vis[t_idx, y0:y0 + p, x0:x0 + p]
        if flip_h:
            ir, vis = ir[:, :, ::-1], vis[:, :, ::-1]
        if flip_v:
            ir, vis = ir[:, ::-1], vis[:, ::-1]
        return to_tensors(ir, vis)


def fixed_clips(seq: DecodedSequence, n: int, clip_len: int, crop: int | None = None,
                multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` evenly spaced clips of a (validation) sequence, centre-cropped to `crop` (or the whole frame)
    and to a multiple of `multiple`: (n, 1, T, H, W) and (n, 3, T, H, W)."""
    if len(seq) < clip_len:
        raise ValueError(f"sequence {seq.name!r} has {len(seq)} frames, fewer than clip_len={clip_len}")
    y0, x0, ch, cw = centre_crop_box(seq.size, crop, multiple)
    starts = np.linspace(0, len(seq) - clip_len, num=max(1, n)).round().astype(int)
    irs, viss = [], []
    for s in starts:
        ir, vis = to_tensors(seq.ir[s:s + clip_len, y0:y0 + ch, x0:x0 + cw], seq.vis[s:s + clip_len, y0:y0 + ch, x0:x0 + cw])
        irs.append(ir)
        viss.append(vis)
    return torch.stack(irs), torch.stack(viss)


def centre_crop_box(size: tuple[int, int], crop: int | None, multiple: int = 1) -> tuple[int, int, int, int]:
    """(y0, x0, h, w) of a centred crop of side `crop` (clamped to the frame), sizes rounded down to a
    multiple of `multiple`."""
    h, w = size
    ch, cw = (h, w) if crop is None else (min(crop, h), min(crop, w))
    ch, cw = ch - ch % multiple, cw - cw % multiple
    if ch < 1 or cw < 1:
        raise ValueError(f"frames of {w}x{h} are too small for a crop that is a multiple of {multiple}")
    return (h - ch) // 2, (w - cw) // 2, ch, cw
