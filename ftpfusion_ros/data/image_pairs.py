"""Folders of independent IR/visible image pairs (TNO, RoadScene, MSRS and similar benchmarks).

Layout: ``ROOT/<ir folder>/NAME.ext`` and ``ROOT/<visible folder>/NAME.ext``, paired by file stem. The
folder names are matched case-insensitively against :data:`~.sequences.IR_DIR_NAMES` (ir, infrared,
thermal, lwir) and :data:`~.sequences.VIS_DIR_NAMES` (vis, visible, vi, rgb), so ``{ir,vi}`` (MSRS,
RoadScene-style), ``{ir,vis}``, ``{infrared,visible}`` and ``{IR,VIS}`` all work; explicit folders can be
given instead. Unlike a sequence, the pairs are unrelated scenes of any sizes; each is read on its own
with the sequence readers (IR stored as 3-channel grey or 16-bit is kept lossless, visible -> BGR).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .sequences import (IMAGE_EXTENSIONS, IR_DIR_NAMES, VIS_DIR_NAMES, natural_key, read_ir_image,
                        read_vis_image)


@dataclass(frozen=True)
class ImagePair:
    """One IR/visible pair; ``name`` is the shared file stem (what outputs and report rows are named)."""

    name: str
    ir_path: Path
    vis_path: Path

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(ir (H, W) uint8|uint16, vis (H', W', 3) uint8 BGR); ValueError naming the file if unreadable."""
        return read_ir_image(self.ir_path), read_vis_image(self.vis_path)


def _show(names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def images_by_stem(folder: Path, modality: str) -> dict[str, Path]:
    """{file stem: path} of the images in `folder`; several images with one stem are an error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{modality} image folder {folder} does not exist or is not a folder")
    by_stem: dict[str, Path] = {}
    dupes: list[str] = []
    for p in sorted(folder.iterdir(), key=lambda q: natural_key(q.name)):
        # dot files: macOS archives carry "._NAME.png" resource forks next to every image
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if p.stem in by_stem:
            dupes.append(f"{by_stem[p.stem].name}/{p.name}")
        by_stem[p.stem] = p
    if dupes:
        raise ValueError(f"{modality} folder {folder} has several images with one name: {_show(dupes)}")
    if not by_stem:
        raise ValueError(f"{modality} folder {folder} contains no images "
                         f"({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)})")
    return by_stem


def match_image_pairs(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike) -> list[ImagePair]:
    """Pairs of two image folders, matched by file stem (extensions may differ), in natural name order.

    Every image must have a partner: a name in only one folder is an error that lists them, since a
    silently skipped pair would change a benchmark's mean.
    """
    ir_dir, vis_dir = Path(ir_dir), Path(vis_dir)
    ir, vis = images_by_stem(ir_dir, "IR"), images_by_stem(vis_dir, "visible")
    only_ir = sorted(set(ir) - set(vis), key=natural_key)
    only_vis = sorted(set(vis) - set(ir), key=natural_key)
    if only_ir or only_vis:
        parts = [f"only in IR ({ir_dir}): {_show(only_ir)}" if only_ir else "",
                 f"only in visible ({vis_dir}): {_show(only_vis)}" if only_vis else ""]
        raise ValueError(f"{len(only_ir) + len(only_vis)} image names do not pair up; "
                         + "; ".join(p for p in parts if p))
    return [ImagePair(name, ir[name], vis[name]) for name in sorted(ir, key=natural_key)]


def _modality_dir(root: Path, names: tuple[str, ...], modality: str) -> Path:
    wanted = {n.lower() for n in names}
    found = sorted((p for p in root.iterdir() if p.is_dir() and p.name.lower() in wanted), key=lambda p: p.name)
    if not found:
        raise ValueError(f"no {modality} folder under {root}: expected one of "
                         f"{'/'.join(names)} (any case), or give --ir DIR --vis DIR")
    if len(found) > 1:
        # e.g. both vi/ and vis/: guessing would score the wrong images
        raise ValueError(f"several {modality} folders under {root}: {', '.join(p.name for p in found)}; "
                         "give --ir DIR --vis DIR")
    return found[0]


def image_pair_dirs(root: str | os.PathLike) -> tuple[Path, Path]:
    """The (IR, visible) folders of a benchmark root such as ``MSRS/test`` or ``TNO``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
    return _modality_dir(root, IR_DIR_NAMES, "IR"), _modality_dir(root, VIS_DIR_NAMES, "visible")


def find_image_pairs(root: str | os.PathLike | None = None, ir_dir: str | os.PathLike | None = None,
                     vis_dir: str | os.PathLike | None = None) -> list[ImagePair]:
    """All pairs under a benchmark ``root``, or of explicit ``ir_dir`` and ``vis_dir`` folders."""
    if root is not None and (ir_dir is not None or vis_dir is not None):
        raise ValueError("give either an image folder ROOT or --ir DIR --vis DIR, not both")
    if root is not None:
        ir_dir, vis_dir = image_pair_dirs(root)
    elif ir_dir is None or vis_dir is None:
        raise ValueError("image pairs need a folder ROOT with ir/ and vis/ (or vi/, infrared/, visible/) "
                         "sub-folders, or both --ir DIR and --vis DIR")
    return match_image_pairs(ir_dir, vis_dir)
