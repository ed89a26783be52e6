"""Readers for registered IR/visible sequences: pairs of frame folders or pairs of videos.

Layouts (see DESIGN.md):
  * frame folders  ``ROOT/<seq>/{ir,vis}/<frame>.png`` (png/jpg/tif/bmp; 8- or 16-bit IR kept as stored);
  * video pairs    ``ROOT/{infrared,visible}/<seq>.mp4`` (IR stored as three near-identical channels).

Every reader yields ``(frame_name, ir, vis)`` with ``ir`` an (H, W) uint8/uint16 array and ``vis`` an
(H, W, 3) uint8 BGR array, in sorted (natural) frame order. IR and visible may differ in size: the
runtime registers IR onto the visible frame, so no size check is made here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")
#: folder names accepted for each modality (case-insensitive), first one is the one we write
IR_DIR_NAMES = ("ir", "infrared", "thermal", "lwir")
VIS_DIR_NAMES = ("vis", "visible", "vi", "rgb")

Frame = tuple[str, np.ndarray, np.ndarray]

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2`` before ``frame10`` (numbers compared as numbers)."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in _DIGITS.split(name))


def _numbers(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in _DIGITS.findall(Path(name).stem))


def _show(names: Iterable[str], limit: int = 5) -> str:
    names = list(names)
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# --------------------------------------------------------------------------------------------- images
def to_ir_mono(img: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """One-channel IR frame from an image read with IMREAD_UNCHANGED (8- or 16-bit kept as stored).

    Three-channel IR (how many datasets and all our MP4s store thermal frames) is reduced to one
    channel: a channel copy when the channels are identical (lossless), else the BT.601 grey value
    (what a lossy codec's near-identical channels were encoded from).
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]  # alpha carries no thermal information
        if img.shape[2] != 3:
            raise ValueError(f"{path}: unsupported IR image with {img.shape[2]} channels")
        if np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2]):
            img = img[:, :, 0]
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.ndim != 2:
        raise ValueError(f"{path}: unsupported IR image shape {img.shape}")
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: unsupported IR pixel type {img.dtype} (expected 8- or 16-bit integers)")
    return np.ascontiguousarray(img)


def to_vis_bgr(img: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """(H, W, 3) uint8 BGR visible frame from a grey, BGR or BGRA image (8- or 16-bit)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported visible pixel type {img.dtype}")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return np.ascontiguousarray(img)
    raise ValueError(f"{path}: unsupported visible image shape {img.shape}")


def read_ir_image(path: str | os.PathLike) -> np.ndarray:
    """Read one IR frame losslessly: (H, W) uint8 or uint16."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path} (missing, truncated or not an image)")
    return to_ir_mono(img, path)


def read_vis_image(path: str | os.PathLike) -> np.ndarray:
    """Read one visible frame as (H, W, 3) uint8 BGR."""
    # UNCHANGED rather than IMREAD_COLOR: IMREAD_COLOR applies the JPEG EXIF orientation, which the IR
    # reader does not, and would un-register the pair.
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path} (missing, truncated or not an image)")
    return to_vis_bgr(img, path)


# -------------------------------------------------------------------------------------------- sources
class _FolderSource:
    """A folder of image frames, ordered by natural sort of the file names."""

    def __init__(self, path: Path, modality: str) -> None:
        if not path.exists():
            raise FileNotFoundError(f"{modality} frame folder {path} does not exist")
        self.path = path
        self.modality = modality
        self.files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                            key=lambda p: natural_key(p.name))
        if not self.files:
            raise ValueError(f"{modality} frame folder {path} contains no images "
                             f"({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)})")
        self.names: list[str] | None = [p.name for p in self.files]
        self.fps: float | None = None

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        path = self.files[index]
        return read_ir_image(path) if self.modality == "IR" else read_vis_image(path)

    def iterate(self, start: int, stop: int) -> Iterator[np.ndarray]:
        for i in range(start, stop):
            yield self.read(i)


class _VideoSource:
    """A video file decoded with OpenCV, frame by frame (no seeking: frame-accurate for any codec)."""

    def __init__(self, path: Path, modality: str) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{modality} video {path} does not exist")
        self.path = path
        self.modality = modality
        self.names = None
        cap = self._open()
        try:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = cap.get(cv2.CAP_PROP_FPS)
            if n <= 0:  # container without a frame count: count by decoding once
                n = 0
                while cap.grab():
                    n += 1
        finally:
            cap.release()
        if n <= 0:
            raise ValueError(f"{modality} video {path} contains no frames")
        self.count = n
        self.fps = float(fps) if fps and fps > 0 else None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise ValueError(f"cannot open {self.modality} video {self.path} (unsupported or corrupt file)")
        return cap

    def __len__(self) -> int:
        return self.count

    def _convert(self, frame: np.ndarray) -> np.ndarray:
        return to_ir_mono(frame, self.path) if self.modality == "IR" else to_vis_bgr(frame, self.path)

    def read(self, index: int) -> np.ndarray:
        return next(self.iterate(index, index + 1))

    def iterate(self, start: int, stop: int) -> Iterator[np.ndarray]:
        cap = self._open()
        try:
            for i in range(start):
                if not cap.grab():
                    raise ValueError(f"{self.modality} video {self.path}: ended at frame {i}, "
                                     f"before frame {start}")
            for i in range(start, stop):
                ok, frame = cap.read()
                if not ok:
                    raise ValueError(f"{self.modality} video {self.path}: could not decode frame {i + 1} "
                                     f"of {self.count} (truncated file?)")
                yield self._convert(frame)
        finally:
            cap.release()


def _open_source(path: str | os.PathLike, modality: str) -> _FolderSource | _VideoSource:
    p = Path(path)
    if not p.exists():
        kind = "frame folder or video"
        raise FileNotFoundError(f"{modality} {kind} {p} does not exist")
    if p.is_dir():
        return _FolderSource(p, modality)
    if p.suffix.lower() in VIDEO_EXTENSIONS:
        return _VideoSource(p, modality)
    raise ValueError(f"{modality} input {p} is neither a frame folder nor a video "
                     f"({'/'.join(e[1:] for e in VIDEO_EXTENSIONS)})")


def _pair_names(ir: _FolderSource | _VideoSource, vis: _FolderSource | _VideoSource) -> list[str]:
    """Frame names of a pair (the visible file names where there are any), checking that they pair up."""
    n_ir, n_vis = len(ir), len(vis)
    if ir.names is not None and vis.names is not None:
        ir_stems = [Path(n).stem for n in ir.names]
        vis_stems = [Path(n).stem for n in vis.names]
        same_stems = ir_stems == vis_stems
        # Datasets that prefix each modality (IR_0001 / VIS_0001) pair by their numbers.
        ir_numbers, vis_numbers = [_numbers(n) for n in ir.names], [_numbers(n) for n in vis.names]
        same_numbers = all(ir_numbers) and all(vis_numbers) and ir_numbers == vis_numbers
        if n_ir != n_vis or not (same_stems or same_numbers):
            only_ir = sorted(set(ir_stems) - set(vis_stems), key=natural_key)
            only_vis = sorted(set(vis_stems) - set(ir_stems), key=natural_key)
            detail = []
            if only_ir:
                detail.append(f"only in IR: {_show(only_ir)}")
            if only_vis:
                detail.append(f"only in visible: {_show(only_vis)}")
            what = "unequal frame counts" if n_ir != n_vis else "file names that do not pair up"
            raise ValueError(f"{what}: IR {ir.path} has {n_ir} frames, visible {vis.path} has {n_vis}"
                             + ("; " + "; ".join(detail) if detail else ""))
        return list(vis.names)
    if n_ir != n_vis:
        raise ValueError(f"unequal frame counts: IR {ir.path} has {n_ir} frames, visible {vis.path} has {n_vis}")
    if vis.names is not None:
        return list(vis.names)
    if ir.names is not None:
        return list(ir.names)
    return [f"{i:06d}.png" for i in range(1, n_vis + 1)]


@dataclass
class SequencePair:
    """One registered IR/visible sequence (frame folders or videos, or one of each).

    ``frame_names`` are file names (the visible folder's names; ``000001.png``... for videos).
    """

    name: str
    ir_path: Path
    vis_path: Path
    frame_names: list[str] = field(repr=False)
    fps: float | None = None
    _ir: _FolderSource | _VideoSource | None = field(default=None, repr=False, compare=False)
    _vis: _FolderSource | _VideoSource | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.frame_names)

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        n = len(self)
        start, stop, _ = slice(start, stop).indices(n)
        return start, max(start, stop)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """Yield ``(frame_name, ir, vis_bgr)`` for frames ``start..stop-1`` (Python slice semantics)."""
        start, stop = self._range(start, stop)
        ir_iter = self._ir.iterate(start, stop)
        vis_iter = self._vis.iterate(start, stop)
        for i in range(start, stop):
            yield self.frame_names[i], next(ir_iter), next(vis_iter)

    def read(self, index: int) -> Frame:
        """Random access to one frame (cheap for folders; decodes from the start for videos)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range for sequence {self.name!r} of {len(self)} frames")
        index %= len(self)
        return self.frame_names[index], self._ir.read(index), self._vis.read(index)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()


def open_pair(ir_path: str | os.PathLike, vis_path: str | os.PathLike, name: str | None = None) -> SequencePair:
    """Open a registered pair: two frame folders (paired by sorted file name) or two videos.

    Raises FileNotFoundError for a missing path and ValueError (naming the path) for an empty folder,
    unequal frame counts or frame names that do not pair up. Unreadable frames raise ValueError when read.
    """
    ir = _open_source(ir_path, "IR")
    vis = _open_source(vis_path, "visible")
    names = _pair_names(ir, vis)
    if name is None:
        vp = Path(vis_path)
        # ROOT/<seq>/vis -> <seq>;  ROOT/visible/<seq>.mp4 -> <seq>
        name = vp.stem if vp.is_file() else (vp.parent.name if vp.name.lower() in VIS_DIR_NAMES else vp.name)
        name = name or "sequence"
    return SequencePair(name=name, ir_path=Path(ir_path), vis_path=Path(vis_path), frame_names=names,
                        fps=vis.fps or ir.fps, _ir=ir, _vis=vis)


def _child(parent: Path, names: Sequence[str]) -> Path | None:
    """The sub-directory of `parent` whose name is one of `names` (case-insensitive), if any."""
    wanted = [n.lower() for n in names]
    found = sorted((p for p in parent.iterdir() if p.is_dir() and p.name.lower() in wanted),
                   key=lambda p: wanted.index(p.name.lower()))
    return found[0] if found else None


def _has_images(path: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())


def find_sequences(root: str | os.PathLike) -> list[SequencePair]:
    """All sequences under `root`, sorted by name.

    Recognised layouts: ``ROOT/<seq>/{ir,vis}/*.png``; ``ROOT/{infrared,visible}/<seq>.mp4`` (or
    ``<seq>/`` frame folders there); and ``ROOT/{ir,vis}/*.png`` (ROOT itself is one sequence).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    ir_dir, vis_dir = _child(root, IR_DIR_NAMES), _child(root, VIS_DIR_NAMES)
    pairs: list[SequencePair] = []
    if ir_dir is not None and vis_dir is not None:
        if _has_images(ir_dir) or _has_images(vis_dir):
            return [open_pair(ir_dir, vis_dir, name=root.resolve().name)]

        def entries(d: Path) -> dict[str, Path]:
            return {p.stem if p.is_file() else p.name: p for p in d.iterdir()
                    if p.is_dir() or p.suffix.lower() in VIDEO_EXTENSIONS}

        ir_seqs, vis_seqs = entries(ir_dir), entries(vis_dir)
        if set(ir_seqs) != set(vis_seqs):
            raise ValueError(f"sequences under {ir_dir} and {vis_dir} differ: "
                             f"only IR: {_show(sorted(set(ir_seqs) - set(vis_seqs))) or '-'}; "
                             f"only visible: {_show(sorted(set(vis_seqs) - set(ir_seqs))) or '-'}")
        for seq in sorted(ir_seqs, key=natural_key):
            pairs.append(open_pair(ir_seqs[seq], vis_seqs[seq], name=seq))
    else:
        for seq_dir in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            ir_sub, vis_sub = _child(seq_dir, IR_DIR_NAMES), _child(seq_dir, VIS_DIR_NAMES)
            if ir_sub is None and vis_sub is None:
                continue  # not a sequence folder (e.g. a timestamps or results folder)
            if ir_sub is None or vis_sub is None:
                raise ValueError(f"sequence folder {seq_dir} has {'no IR' if ir_sub is None else 'no visible'} "
                                 f"sub-folder (expected {IR_DIR_NAMES[0]}/ and {VIS_DIR_NAMES[0]}/)")
            pairs.append(open_pair(ir_sub, vis_sub, name=seq_dir.name))
    if not pairs:
        raise ValueError(f"no sequences found under {root}: expected ROOT/<seq>/{{ir,vis}}/*.png "
                         f"or ROOT/{{infrared,visible}}/<seq>.mp4")
    return pairs


def select_sequences(pairs: Sequence[SequencePair], names: Sequence[str]) -> list[SequencePair]:
    """The pairs named in ``names``, in their found order (all of them when ``names`` is empty); a name
    no pair has is refused with the available ones listed."""
    if not names:
        return list(pairs)
    found = [p.name for p in pairs]
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValueError(f"unknown sequences {unknown}; available: {', '.join(found)}")
    return [p for p in pairs if p.name in names]


def write_pair_folders(root: str | os.PathLike, sequence: str,
                       frames: Iterable[tuple[np.ndarray, np.ndarray] | Frame],
                       png_compression: int = 1) -> Path:
    """Write frames as ``ROOT/<sequence>/{ir,vis}/000001.png...`` and return ``ROOT/<sequence>``.

    `frames` yields ``(ir, vis_bgr)`` or ``(name, ir, vis_bgr)`` (then the name's stem is kept). IR is
    written as stored (8- or 16-bit PNG, lossless). Low PNG compression: writing must keep up with
    simulators and extraction, and the files stay lossless anyway.
    """
    seq_dir = Path(root) / sequence
    ir_dir, vis_dir = seq_dir / IR_DIR_NAMES[0], seq_dir / VIS_DIR_NAMES[0]
    ir_dir.mkdir(parents=True, exist_ok=True)
    vis_dir.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    for i, item in enumerate(frames, start=1):
        if len(item) == 3:
            name, ir, vis = item
            stem = Path(name).stem
        else:
            ir, vis = item
            stem = f"{i:06d}"
        ir = to_ir_mono(np.asarray(ir))
        vis = to_vis_bgr(np.asarray(vis))
        for path, img in ((ir_dir / f"{stem}.png", ir), (vis_dir / f"{stem}.png", vis)):
            if not cv2.imwrite(str(path), img, params):
                raise RuntimeError(f"could not write {path}")
    return seq_dir
