"""The one interface every fusion model implements, learned or classical, video or frame-wise.

Tensor conventions (all models):
  * ir  : (B, 1, T, H, W) float in [0, 1] (registered onto the visible frame)
  * vis : (B, 3, T, H, W) float RGB in [0, 1]
  * out : (B, 3, T, H, W) float RGB in [0, 1]

Streaming contract (what lets the node pay for one frame of encoding per new frame, not T):
  * ``encode_frame(ir_t, vis_t)`` takes one frame of each modality, (B,1,H,W) and (B,3,H,W), and
    returns a per-frame cache entry (any tensors) that the engine stores in its temporal ring;
  * ``fuse_window(cache, targets)`` fuses the frames at window positions ``targets`` from the cached
    entries of the whole window and returns (B, 3, len(targets), H, W);
  * ``forward(ir, vis)`` is exactly ``fuse_window([encode_frame(...) for each t], range(T))``.
So the streaming output for frame t equals the full-clip forward on the same window.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

FrameCache = Any


class FusionModel(nn.Module):
    """Base class of all fusion models (see module docstring for the contract)."""

    #: registry name, set by :func:`ftpfusion_ros.models.registry.register_model`
    name: ClassVar[str] = ""
    #: True when the model has trainable weights (and can load a checkpoint)
    learned: ClassVar[bool] = False
    #: True when outputs depend on neighbouring frames (video model)
    temporal: ClassVar[bool] = False
    #: config values of keys added after checkpoints were first saved: a checkpoint whose sidecar config
    #: lacks such a key was trained with this value (not the current default), so it still loads as trained
    legacy_config: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        #: default temporal window T the engine keeps in its ring (1 for frame-wise models)
        self.window: int = 1
        #: spatial sizes must be multiples of this; the engine pads (reflect) and crops around it
        self.size_multiple: int = 1

    def encode_frame(self, ir: torch.Tensor, vis: torch.Tensor) -> FrameCache:
        return (ir, vis)

    def fuse_window(self, cache: Sequence[FrameCache], targets: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def trim_caches(self, cache: Sequence[FrameCache], first_target: int, n_t: int) -> list[FrameCache]:
        """The window's caches without what no later :meth:`fuse_window` reads (the ring calls this after
        every step): ``first_target`` is the oldest position still to be fused, ``n_t`` the shortest window
        a later fusion sees. Default: everything is kept."""
        return list(cache)

    def warm_start_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Another configuration's weights made to fit this model for a warm start (training ``init_from``),
        where a model knows how (e.g. a shorter temporal window). Default: unchanged."""
        return state

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        _check_clip(ir, vis)
        cache = [self.encode_frame(ir[:, :, t], vis[:, :, t]) for t in range(ir.shape[2])]
        return self.fuse_window(cache, range(ir.shape[2]))

    def forward_train(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training forward: the fused clip plus auxiliary outputs a model's loss needs (e.g. RPFNet's
        auxiliary decoder). Models without auxiliary outputs inherit this."""
        return self(ir, vis), {}


class FrameFusionModel(FusionModel):
    """A model that fuses each frame on its own; runs on a clip frame by frame."""

    def fuse_frame(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) IR and (B,3,H,W) visible -> (B,3,H,W) fused RGB in [0, 1]."""
        raise NotImplementedError

    def fuse_window(self, cache: Sequence[FrameCache], targets: Sequence[int]) -> torch.Tensor:
        return torch.stack([self.fuse_frame(*cache[t]) for t in targets], dim=2)


def _check_clip(ir: torch.Tensor, vis: torch.Tensor) -> None:
    if ir.dim() != 5 or vis.dim() != 5:
        raise ValueError(f"expected 5-D clips (B,C,T,H,W), got ir {tuple(ir.shape)}, vis {tuple(vis.shape)}")
    if ir.shape[1] != 1 or vis.shape[1] != 3:
        raise ValueError(f"expected 1 IR channel and 3 visible channels, got {ir.shape[1]} and {vis.shape[1]}")
    if ir.shape[0] != vis.shape[0] or ir.shape[2:] != vis.shape[2:]:
        raise ValueError(f"IR clip {tuple(ir.shape)} and visible clip {tuple(vis.shape)} differ in B, T, H or W")
