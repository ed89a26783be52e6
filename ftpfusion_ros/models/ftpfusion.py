"""FTPFusion: frequency-aware infrared/visible video fusion with temporal perturbation (papers/ftpfusion.txt).

Structure (Sec. 3, App. A), laid out for streaming (one new frame per step, ring of T frames):

  encode_frame (once per new frame, cached by the engine):
    * two modality-independent 2-D encoders with unshared weights, 3 scales (H/2, H/4, H/8 with the
      default stem; channels (16, 32, 64));
    * per scale, the per-frame half of DFAM: the learned LF/HF split, the LF temporal tokens, the
      nonlinear spatial part of the LFPM enhancement, and SCAM's per-frame prep (blocked HF tokens,
      normalised key/value projections, HF magnitude, the spatial part of the local branch).
  fuse_window(cache, targets):
    * per scale, DFAM over the window: LFPM (per modality) and LTCM work on tokens of all T frames and on
      maps of the target frames only; SCAM selects blocks per window and attends with the target frames'
      queries; the local branch mixes cached maps temporally; out = 1x1([LF_fused ; beta * HF_fused]);
    * temporal refinement at the coarsest scale: a per-channel attention over the window (from LTCM's
      shared context) mixes the cached coarsest LF maps of both modalities into the target's features;
    * multi-scale decoder per target frame; the head predicts a residual over a base fusion:
      Y = sigmoid(logit(base_Y) + dY) with base_Y = max (or mean) of IR and visible luminance, and
      CbCr = visible CbCr + dCbCr, back to RGB (BT.601, ``ftpfusion_ros.nn.colour``), clamped to [0, 1].
      The head starts near zero, so the untrained network already outputs the base fusion in colour.
    * with ``stabiliser`` on (the default), base_Y and the visible frame are first stabilised over the
      window (``ftpfusion_ros.nn.stabilise``: per-frame gain/offset de-flicker against the window's
      statistics, then a motion-compensated bilateral temporal filter of the base). This part has no
      weights and is our addition to the paper: it is what holds the output steady under flicker and
      jitter (docs/models.md has the ablation).

Two window lengths: ``window`` is the ring the engine keeps (the stabiliser's statistics use all of it;
per-frame statistics are tiny) and ``net_window`` the frames the network attends over (the newest
``net_window`` of the ring, or the ones around the target in look-ahead mode).

The paper's encoders are spatio-temporal; here the per-frame encoders are 2-D (cacheable once per
frame) and all temporal modelling lives in DFAM and the decoder's refinement, which is what makes a
streaming step cost one frame of encoding plus target-only fusion.

Sizes: H and W must be at least 32; sizes that are not multiples of ``size_multiple`` (8 with the
default stem) are reflection-padded inside ``encode_frame`` and cropped in ``fuse_window`` (the engine
pads to ``size_multiple`` itself, so there this is a no-op). SCAM pads its blocks internally.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.block_attention import SparseCrossModalAttention
from ..nn.colour import rgb_to_y, ycbcr_to_rgb
from ..nn.frequency import FrequencySplit
from ..nn.lowfreq import LFPM, LTCM, mix_frames
from ..nn.base_fusion import BASE_MODES, fuse_base
from ..nn.stabilise import TemporalStabiliser, apply_gain
from .base import FusionModel
from .registry import register_model

_CL = torch.channels_last  # depthwise / 1x1 convs are several times faster channels-last on CPU


def trim_caches(cache: Sequence[dict[str, Any]], first_target: int, n_t: int, net_window: int | None,
                radius: int) -> list[dict[str, Any]]:
    """FTPFusion frame caches (nested dicts of tensors or arrays) without what no later fusion reads.

    ``first_target``: the oldest window position that may still be a target; ``n_t``: the shortest
    window any later fusion sees, in the same positions (for a ring: its length, plus one when the next
    target needs another frame); ``net_window``: the frames the network reads (None without the network);
    ``radius``: the stabiliser's temporal radius (0 without its filter). Frames older than the network's
    sub-window of every such target and beyond the stabiliser's radius keep only their de-flicker
    statistics (4 numbers); frames within the stabiliser's radius but outside the network's sub-windows
    (a network window shorter than the radius + 1) keep their maps and statistics without their network
    features; frames that are no longer targets drop what only a target's own fusion reads
    (the visible frame, the HF maps, the LF maps of the two finer scales). Returns new dicts; works on the
    keys only, so the ONNX Runtime backend trims its flat caches with the same rule.
    """
    keep_maps = first_target - radius  # the stabiliser reads the maps of frames within its radius
    keep_net = keep_maps if net_window is None else min(first_target, n_t - net_window)
    out = []
    for i, fr in enumerate(cache):
        if i < min(keep_maps, keep_net) and "ir" in fr:
            slim: dict[str, Any] = {"hw": fr["hw"]}
            if "stab" in fr:
                slim["stab"] = {"stats": fr["stab"]["stats"]}
            fr = slim
        elif i < keep_net and ("scales" in fr or "vis" in fr):
            # within the stabiliser's radius but outside every later network window: its maps only
            fr = {k: v for k, v in fr.items() if k not in ("scales", "vis")}
        elif i < first_target and "vis" in fr:
            fr = {k: v for k, v in fr.items() if k != "vis"}
            if "scales" in fr:
                last = len(fr["scales"]) - 1  # TemporalRefine mixes the coarsest LF maps of every frame
                fr["scales"] = [
                    {**{k: v for k, v in sc.items() if k != "lf" or i_s == last},
                     "scam": {k: v for k, v in sc["scam"].items() if k != "hf"}}
                    for i_s, sc in enumerate(fr["scales"])
                ]
        out.append(fr)
    return out


class FrameEncoder(nn.Module):
    """2-D per-frame encoder: pixel-unshuffle stem, then 2 convs per scale (the 2nd residual)."""

    def __init__(self, in_channels: int, channels: Sequence[int], stem_factor: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.stem_factor = stem_factor
        self.stem = nn.Conv2d(in_channels * stem_factor**2, c1, 3, padding=1)
        self.body1 = nn.Conv2d(c1, c1, 3, padding=1)
        self.down2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.body2 = nn.Conv2d(c2, c2, 3, padding=1)
        self.down3 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.body3 = nn.Conv2d(c3, c3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.stem_factor > 1:
            x = F.pixel_unshuffle(x, self.stem_factor)
        x = x.contiguous(memory_format=_CL)
        x1 = F.gelu(self.stem(x))
        x1 = x1 + F.gelu(self.body1(x1))
        x2 = F.gelu(self.down2(x1))
        x2 = x2 + F.gelu(self.body2(x2))
        x3 = F.gelu(self.down3(x2))
        x3 = x3 + F.gelu(self.body3(x3))
        return [x1, x2, x3]


class DFAM(nn.Module):
    """Dual-branch frequency-aware fusion module for one scale (Sec. 3.2), split into frame / window parts.

    Both modalities travel as one (B, 2C, h, w) tensor, channels [IR ; visible]; the LF/HF split is one
    operator with shared logits, LFPM has per-modality (block-diagonal) weights, LTCM and SCAM fuse.
    """

    def __init__(self, channels: int, heads: int, rho: float, cfg: dict[str, Any]) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.split = FrequencySplit(2 * c, cfg["smooth_kernels"])
        self.lfpm = LFPM(
            c,
            groups=cfg["lfpm_groups"],
            max_shift=cfg["lfpm_max_shift"],
            prob=cfg["lfpm_prob"],
            hidden_ratio=cfg["lfpm_hidden_ratio"],
            temporal_kernel=cfg["lfpm_temporal_kernel"],
            dilation=cfg["lfpm_dilation"],
            strength_init=cfg["lfpm_strength_init"],
            inject_init=cfg["lfpm_inject_init"],
            modalities=2,
        )
        self.ltcm = LTCM(c, cfg["ltcm_temporal_kernel"])
        self.scam = SparseCrossModalAttention(
            c,
            heads=heads,
            block_size=cfg["block_size"],
            rho=rho,
            window=cfg["window"],
            expansion=cfg["attn_expansion"],
            ffn_ratio=cfg["ffn_ratio"],
            local_kernel=cfg["local_temporal_kernel"],
            pe_frequencies=cfg["pe_frequencies"],
            gate_init=cfg["attn_gate_init"],
            kv_pool=cfg["attn_kv_pool"],
        )
        #: learnable high-frequency gain beta (init 1)
        self.beta = nn.Parameter(torch.ones(()))
        self.out = nn.Conv2d(2 * c, c, 1)

    def encode(self, x_ir: torch.Tensor, x_vis: torch.Tensor) -> dict[str, Any]:
        lf, hf = self.split(torch.cat((x_ir, x_vis), 1))
        entry: dict[str, Any] = {"lf": lf, "tok": lf.mean((-2, -1)), "scam": self.scam.prepare(hf)}
        if not self.training:  # in training LFPM recomputes the spatial part on the perturbed LF
            f = self.lfpm.spatial(lf)
            entry["f"] = f
            entry["tokf"] = f.mean((-2, -1))
        return entry

    def forward(
        self, frames: Sequence[dict[str, Any]], targets: Sequence[int]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Fused features (B, C, h, w) per target frame, and LTCM's shared context (B, T, C)."""
        cached = all("f" in fr for fr in frames)
        lf_out, tok_out = self.lfpm(
            [fr.get("lf") for fr in frames],  # None for frames trimmed by the ring (read for targets only)
            targets,
            f=[fr["f"] for fr in frames] if cached else None,
            tok_lf=torch.stack([fr["tok"] for fr in frames], 1),
            tok_f=torch.stack([fr["tokf"] for fr in frames], 1) if cached else None,
        )
        ctx, gates = self.ltcm.context(tok_out)
        hf = self.scam([fr["scam"] for fr in frames], targets)
        c = self.channels
        # 1x1([LF ; beta * HF]) as two convs with beta folded in (contiguous weights keep the fast path)
        w_lf = self.out.weight[:, :c].contiguous()
        w_hf = self.out.weight[:, c:] * self.beta
        fused = []
        for j, t in enumerate(targets):
            lf_f = self.ltcm.fuse(lf_out[j], gates[:, t])
            fused.append(F.conv2d(lf_f, w_lf, self.out.bias) + F.conv2d(hf[j], w_hf))
        return fused, ctx


class TemporalRefine(nn.Module):
    """Coarsest-scale temporal refinement: per-channel attention over the window from LTCM's context
    tokens mixes the cached LF maps of both modalities (cheap: coarsest scale, no per-frame recompute)."""

    def __init__(self, channels: int, window: int) -> None:
        super().__init__()
        c = channels
        self.window = window
        self.q = nn.Linear(c, c)
        self.k = nn.Linear(c, c)
        self.rel_bias = nn.Parameter(torch.zeros(2 * window - 1))
        self.mix1 = nn.Conv2d(3 * c, c, 1)
        self.mix2 = nn.Conv2d(c, c, 1)
        nn.init.normal_(self.mix2.weight, std=0.01)
        nn.init.zeros_(self.mix2.bias)

    def forward(
        self,
        x: torch.Tensor,
        ctx: torch.Tensor,
        lf: Sequence[torch.Tensor],
        t: int,
    ) -> torch.Tensor:
        """x (B, C, h, w) target features, ctx (B, T, C) context tokens, lf T cached (B, 2C, h, w) maps."""
        n_t = ctx.shape[1]
        logits = self.q(ctx[:, t]).unsqueeze(1) * self.k(ctx)  # (B, T, C)
        off = (torch.arange(n_t, device=ctx.device) - t).clamp(-(self.window - 1), self.window - 1)
        logits = logits + self.rel_bias[off + self.window - 1].view(1, n_t, 1)
        a = torch.softmax(logits, dim=1).repeat(1, 1, 2)  # the same weights for both modalities
        return x + self.mix2(F.gelu(self.mix1(torch.cat((x, mix_frames(lf, a)), 1))))


class Decoder(nn.Module):
    """Multi-scale decoder (per target frame): sub-pixel upsampling (1x1 conv at the coarse scale +
    pixel shuffle) + skip + one 3x3 conv per scale, and a pixel-shuffle head back to full resolution."""

    def __init__(self, channels: Sequence[int], stem_factor: int, head_init_std: float,
                 guided: bool = True, gate_init: float | None = None) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.stem_factor = stem_factor
        self.up3 = nn.Conv2d(c3, 4 * c2, 1)
        self.body2 = nn.Conv2d(c2, c2, 3, padding=1)
        self.up2 = nn.Conv2d(c2, 4 * c1, 1)
        self.body1 = nn.Conv2d(c1, c1, 3, padding=1)
        # 3 outputs per full-resolution pixel: luminance residual (logit space) and CbCr residuals
        self.head = nn.Conv2d(c1, 3 * stem_factor**2, 3, padding=1)
        nn.init.normal_(self.head.weight, std=head_init_std)
        nn.init.zeros_(self.head.bias)
        self.guide: nn.Conv2d | None = None
        if guided:  # starts at zero: a warm start from an unguided checkpoint begins with its output
            self.guide = nn.Conv2d(3 * stem_factor**2, 3 * stem_factor**2, 3, padding=1)
            nn.init.zeros_(self.guide.weight)
            nn.init.zeros_(self.guide.bias)
        self.gate: nn.Conv2d | None = None
        if gate_init is not None:  # sharpening gate logit per full-resolution pixel (FTPFusion._fuse)
            self.gate = nn.Conv2d(c1 + (3 * stem_factor**2 if guided else 0), stem_factor**2, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, gate_init)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor,
                guide: torch.Tensor | None = None) -> torch.Tensor:
        """``guide``: the base and the de-flickered sources at full resolution (N, 3, H, W), seen by the head
        through ``self.guide`` (a zero-initialised 3x3 conv on their pixel-unshuffled maps). Returns the
        residuals (dY, dCb, dCr) and, with a gate, its logit as a 4th channel, at full resolution."""
        y = f2 + F.pixel_shuffle(self.up3(f3), 2)
        y = y + self.body2(F.gelu(y))
        y = f1 + F.pixel_shuffle(self.up2(y), 2)
        y = y + self.body1(F.gelu(y))
        y = F.gelu(y)
        out = self.head(y)
        g = None
        if guide is not None and self.guide is not None:
            g = F.pixel_unshuffle(guide, self.stem_factor) if self.stem_factor > 1 else guide
            g = g.to(out.dtype).contiguous(memory_format=_CL)
            out = out + self.guide(g)
        if self.gate is not None:
            out = torch.cat((out, self.gate(y if g is None else torch.cat((y, g), 1))), 1)
        return F.pixel_shuffle(out, self.stem_factor) if self.stem_factor > 1 else out


@register_model("ftpfusion")
class FTPFusion(FusionModel):
    """The flagship video fusion network; constructor arguments are the keys of configs/ftpfusion.yaml."""

    learned = True
    temporal = True
    # switches added in 0.2 whose default changes the weights' layout or the input the network sees
    legacy_config = {"encoder_norm": False, "guided_head": False, "sharpen_gate": False, "train_targets": "clip",
                     "gate_base": "frame"}

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        window: int = 9,
        net_window: int = 5,
        stem_factor: int = 2,
        smooth_kernels: Sequence[int] = (3, 5, 7),
        lfpm_groups: int = 4,
        lfpm_max_shift: int = 1,
        lfpm_prob: float = 0.5,
        lfpm_hidden_ratio: float = 0.25,
        lfpm_temporal_kernel: int = 3,
        lfpm_dilation: int = 2,
        lfpm_strength_init: float = 0.5,
        lfpm_inject_init: float = 0.1,
        ltcm_temporal_kernel: int = 3,
        block_size: int = 8,
        rho: Sequence[float] = (0.25, 0.5, 0.75),
        heads: Sequence[int] = (1, 2, 4),
        attn_expansion: float = 1.0,
        ffn_ratio: float = 1.0,
        attn_gate_init: float = 0.1,
        attn_kv_pool: int = 2,
        pe_frequencies: int = 4,
        local_temporal_kernel: int = 3,
        head_init_std: float = 1e-3,
        base_fusion: str = "max",
        stabiliser: bool = True,
        stab_sigma: float = 0.03,
        stab_neighbour_weight: float = 0.5,
        stab_radius: int = 4,
        stab_max_shift: float = 3.0,
        stab_downsample: int = 2,
        stab_keep: float = 0.0,
        refine: bool = True,
        encoder_norm: bool = True,
        guided_head: bool = True,
        sharpen_gate: bool = True,
        gate_init: float = -2.0,
        gate_base: str = "frame",
        train_targets: str = "causal",
        train_last: int = 2,
    ) -> None:
        super().__init__()
        channels, rho, heads = list(channels), list(rho), list(heads)
        if not (len(channels) == len(rho) == len(heads) == 3):
            raise ValueError(f"channels, rho and heads need 3 entries (one per scale), got {channels}, {rho}, {heads}")
        if window < 1 or net_window < 1:
            raise ValueError(f"window and net_window must be >= 1, got {window}, {net_window}")
        if stem_factor < 1:
            raise ValueError(f"stem_factor must be >= 1, got {stem_factor}")
        if base_fusion not in BASE_MODES:
            raise ValueError(f"base_fusion must be one of {BASE_MODES}, got {base_fusion!r}")
        for key, flag in (("refine", refine), ("stabiliser", stabiliser), ("encoder_norm", encoder_norm),
                          ("guided_head", guided_head), ("sharpen_gate", sharpen_gate)):
            if not isinstance(flag, bool):
                raise ValueError(f"{key} must be true or false, got {flag!r}")
        if not (isinstance(stab_keep, (int, float)) and not isinstance(stab_keep, bool) and 0.0 <= stab_keep <= 1.0):
            raise ValueError(f"stab_keep must be a number in [0, 1], got {stab_keep!r}")
        if gate_base != "frame" and gate_base not in BASE_MODES:
            raise ValueError(f"gate_base must be 'frame' or one of {BASE_MODES}, got {gate_base!r}")
        if train_targets not in ("causal", "clip"):
            raise ValueError(f"train_targets must be 'causal' or 'clip', got {train_targets!r}")
        if train_last < 1:
            raise ValueError(f"train_last must be >= 1, got {train_last}")
        self.refine_enabled = refine
        self.encoder_norm = encoder_norm
        self.train_targets = train_targets
        self.train_last = int(train_last)
        self.window = int(window)
        self.net_window = int(net_window)
        self.size_multiple = int(stem_factor) * 4  # two stride-2 stages after the stem
        self.base_fusion = base_fusion
        #: fraction of the target frame's own (de-flickered, unfiltered) base fusion the base keeps over the
        #: stabiliser's temporal filter: the weight-free sharpness/steadiness knob (0: fully filtered)
        self.stab_keep = float(stab_keep) if stabiliser else 0.0
        cfg = dict(
            smooth_kernels=smooth_kernels,
            lfpm_groups=lfpm_groups,
            lfpm_max_shift=lfpm_max_shift,
            lfpm_prob=lfpm_prob,
            lfpm_hidden_ratio=lfpm_hidden_ratio,
            lfpm_temporal_kernel=lfpm_temporal_kernel,
            lfpm_dilation=lfpm_dilation,
            lfpm_strength_init=lfpm_strength_init,
            lfpm_inject_init=lfpm_inject_init,
            ltcm_temporal_kernel=ltcm_temporal_kernel,
            block_size=block_size,
            window=self.net_window,
            attn_expansion=attn_expansion,
            ffn_ratio=ffn_ratio,
            local_temporal_kernel=local_temporal_kernel,
            pe_frequencies=pe_frequencies,
            attn_gate_init=attn_gate_init,
            attn_kv_pool=attn_kv_pool,
        )
        self.enc_ir = FrameEncoder(1, channels, stem_factor)
        self.enc_vis = FrameEncoder(3, channels, stem_factor)
        self.dfam = nn.ModuleList(DFAM(c, h, r, cfg) for c, h, r in zip(channels, heads, rho))
        self.refine = TemporalRefine(channels[2], self.net_window)
        self.decoder = Decoder(channels, stem_factor, head_init_std, guided_head,
                               float(gate_init) if sharpen_gate else None)
        self.sharpen_gate = sharpen_gate
        #: what the gate brings back over the base: "frame" (the target frame's own unfiltered base fusion)
        #: or a second fusion mode, stabilised like the base (a per-pixel choice between two steady bases)
        self.gate_base = gate_base
        #: the fusions :meth:`_base` returns, one channel each: the base, then the gate's second one if any
        self.base_modes = (base_fusion, *((gate_base,) if sharpen_gate and refine and gate_base != "frame" else ()))
        self.stabiliser = (TemporalStabiliser(stab_sigma, stab_neighbour_weight, stab_radius, stab_max_shift,
                                              stab_downsample, base_fusion, self.base_modes[1:])
                           if stabiliser else None)
        # RGB change per unit CbCr change in the project's BT.601 convention (ycbcr_to_rgb is linear)
        basis = torch.tensor([[0.0, 0.5, 0.5], [0.0, 1.5, 0.5], [0.0, 0.5, 1.5]]).view(3, 3, 1, 1)
        rgb = ycbcr_to_rgb(basis)[..., 0, 0]
        self.register_buffer("chroma_to_rgb", (rgb[1:] - rgb[:1]).t().contiguous(), persistent=False)  # (3, 2)
        # the smallest map (H / size_multiple) must exceed the reflection radius of the frequency split
        self.min_size = self.size_multiple * (max(smooth_kernels) // 2 + 1)

    # ----------------------------------------------------------------------------------- streaming
    def encode_frame(self, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, Any]:
        if ir.dim() != 4 or vis.dim() != 4 or ir.shape[1] != 1 or vis.shape[1] != 3:
            raise ValueError(
                f"encode_frame expects IR (B,1,H,W) and visible (B,3,H,W), got {tuple(ir.shape)}, {tuple(vis.shape)}"
            )
        if ir.shape[0] != vis.shape[0] or ir.shape[-2:] != vis.shape[-2:]:
            raise ValueError(f"IR {tuple(ir.shape)} and visible {tuple(vis.shape)} frames differ in batch or size")
        h, w = ir.shape[-2:]
        if min(h, w) < self.min_size:
            raise ValueError(f"FTPFusion needs frames of at least {self.min_size}x{self.min_size} pixels, got {w}x{h}")
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # the engine pads to size_multiple itself; this keeps direct calls working
            ir = F.pad(ir, (0, pw, 0, ph), mode="reflect")
            vis = F.pad(vis, (0, pw, 0, ph), mode="reflect")
        y_vis = rgb_to_y(vis)
        entry: dict[str, Any] = {"ir": ir, "vis": vis, "y_vis": y_vis, "hw": (h, w)}
        if self.refine_enabled:
            entry["scales"] = self._encode(ir, vis, y_vis)
        if self.stabiliser is not None:
            entry["stab"] = self.stabiliser.frame_stats(ir, y_vis)
        return entry

    def trim_caches(self, cache: Sequence[dict[str, Any]], first_target: int, n_t: int) -> list[dict[str, Any]]:
        """The window's caches without what no later :meth:`fuse_window` reads (the ring's memory); see
        :func:`trim_caches`, which this calls with :attr:`cache_reach`."""
        return trim_caches(cache, first_target, n_t, *self.cache_reach)

    @property
    def cache_reach(self) -> tuple[int | None, int]:
        """(frames the network reads, None without the network; the stabiliser filter's temporal radius,
        0 without it): what :func:`trim_caches` keeps, for the PyTorch ring and the exported graphs' ring."""
        radius = 0
        if self.stabiliser is not None and self.stabiliser.neighbour_weight > 0:
            radius = self.stabiliser.radius
        return (self.net_window if self.refine_enabled else None), radius

    def warm_start_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights of a longer ``net_window`` cut to this one: SCAM's frame encodings keep their newest
        rows (row 0 is the newest frame) and the temporal refinement's relative-offset biases their centre
        (offsets -(T-1)..T-1). Everything else is left for load_state_dict to check."""
        out = dict(state)
        for key, value in state.items():
            if key.endswith("scam.pe_time") and value.shape[0] > self.net_window:
                out[key] = value[:self.net_window]
            elif key == "refine.rel_bias" and value.shape[0] > 2 * self.net_window - 1:
                cut = (value.shape[0] - (2 * self.net_window - 1)) // 2
                out[key] = value[cut:value.shape[0] - cut]
        return out

    def _encode(self, ir: torch.Tensor, vis: torch.Tensor, y_vis: torch.Tensor) -> list[dict[str, Any]]:
        if self.encoder_norm:
            # Each frame standardised by its own luminance statistics: a global gain/offset change of a
            # camera (flicker, auto-exposure) leaves the features, and so the residual, unchanged; the
            # output's brightness comes from the stabilised base alone. 0.2 keeps the input range the
            # encoders were first trained with (x - 0.5).
            ir = (ir - ir.mean((-2, -1), keepdim=True)) * (0.2 / ir.std((-2, -1), keepdim=True).clamp_min(0.02))
            mu = y_vis.mean((-2, -1), keepdim=True)
            vis = (vis - mu) * (0.2 / y_vis.std((-2, -1), keepdim=True).clamp_min(0.02))
        else:
            ir, vis = ir - 0.5, vis - 0.5
        feats_ir = self.enc_ir(ir)
        feats_vis = self.enc_vis(vis)
        return [d.encode(a, b) for d, a, b in zip(self.dfam, feats_ir, feats_vis)]

    def fuse_window(self, cache: Sequence[dict[str, Any]], targets: Sequence[int]) -> torch.Tensor:
        n_t = len(cache)
        targets = [int(t) for t in targets]
        if n_t == 0 or not targets:
            raise ValueError("fuse_window needs at least one cached frame and one target")
        if any(not 0 <= t < n_t for t in targets):
            raise ValueError(f"targets {targets} out of range for a window of {n_t} frames")
        rgb = self._fuse(cache, targets)["rgb"]
        h, w = cache[0]["hw"]
        b = cache[targets[0]]["ir"].shape[0]
        return rgb[..., :h, :w].reshape(len(targets), b, 3, h, w).permute(1, 2, 0, 3, 4)

    def _fuse(self, cache: Sequence[dict[str, Any]], targets: list[int]) -> dict[str, torch.Tensor]:
        """Targets fused from the window, target-major (len(targets) * B, ...): 'rgb' (output, padded size),
        'base' (the base luminance the network refines), 'gain' (the targets' de-flicker gain/offset,
        (a_ir, b_ir, a_vis, b_vis)), 'y' (the output luminance before colour and clamping), 'ir' and 'vis'
        (the targets' sources de-flickered with that gain), 'anchor' (the base after the gate: what the
        residual refines)."""
        bases, gain = self._base(cache, targets)
        base = bases[:, :1]
        g = gain.to(base.dtype).view(-1, 4, 1, 1)
        ir = apply_gain(torch.cat([cache[t]["ir"] for t in targets], 0).to(base.dtype), g[:, 0:1], g[:, 1:2])
        vis = torch.cat([cache[t]["vis"] for t in targets], 0)
        vis = apply_gain(vis, g[:, 2:3].to(vis.dtype), g[:, 3:4].to(vis.dtype))
        y_vis = rgb_to_y(vis)
        y_vis_b = y_vis.to(base.dtype)
        frame: torch.Tensor | None = None  # the target frame's own (de-flickered, unfiltered) base fusion
        if self.stab_keep > 0 or (self.refine_enabled and self.sharpen_gate and bases.shape[1] == 1):
            frame = fuse_base(ir, y_vis_b, self.base_fusion)
        if self.stab_keep > 0:  # part of the target frame's own fusion back over the filtered one, no weights
            base = base + self.stab_keep * (frame - base)
        refined = base
        if self.refine_enabled:
            res = self._residuals(cache, targets, torch.cat((base, ir, y_vis_b), 1))
            if self.sharpen_gate:
                # per pixel, how much of the target frame's own base fusion (or the second stabilised one)
                # comes back over the base: edges the filter softened, not the noise it removed
                w = torch.sigmoid(res[:, 3:4].float()).to(base.dtype)
                refined = base + w * ((frame if bases.shape[1] == 1 else bases[:, 1:2]) - base)
            res = res[:, :3]
        else:  # the weight-free base alone (refine=false): same stabiliser, same colour path
            res = torch.zeros_like(vis)
        rgb, y = self._compose(refined, vis, res, y_vis)
        return {"rgb": rgb, "base": base, "gain": gain, "y": y, "ir": ir, "vis": vis, "anchor": refined}

    def _compose(self, base: torch.Tensor, vis: torch.Tensor, res: torch.Tensor,
                 y_vis: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Base luminance refined by the residual in logit space; visible chroma plus a residual.

        Returns (RGB, Y). RGB equals ``ycbcr_to_rgb([Y, Cb_vis + dCb, Cr_vis + dCr]).clamp(0, 1)`` (BT.601,
        nn.colour), written as vis + (Y - Y_vis) + M [dCb, dCr] because the conversion is linear (fewer
        full-size ops). ``y_vis``: the visible luminance when the caller has it already.
        """
        if res.dtype != vis.dtype:
            res = res.float()
        eps = 1e-3
        y = torch.sigmoid(torch.logit(base.to(res.dtype).clamp(eps, 1.0 - eps)) + res[:, :1])
        chroma = F.conv2d(res[:, 1:3], self.chroma_to_rgb.to(res.dtype)[:, :, None, None])
        return (vis + (y - (rgb_to_y(vis) if y_vis is None else y_vis)) + chroma).clamp(0.0, 1.0), y

    def _base(self, cache: Sequence[dict[str, Any]], targets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The base luminance of the targets (window-stabilised with the stabiliser, else the per-frame
        fusion; with a second ``gate_base`` fusion as a second channel) and their de-flicker gain/offset
        (identity without the stabiliser)."""
        if self.stabiliser is not None:
            # frames trimmed by trim_caches hold only their statistics (None maps): the stabiliser reads
            # the maps of the frames within its radius of a target only
            return self.stabiliser([fr.get("ir") for fr in cache], [fr.get("y_vis") for fr in cache],
                                   [fr["stab"] for fr in cache], targets)
        ir = torch.cat([cache[t]["ir"] for t in targets], 0)
        y_vis = torch.cat([cache[t]["y_vis"] for t in targets], 0)
        base = torch.cat([fuse_base(ir, y_vis, mode) for mode in self.base_modes], 1)
        gain = torch.tensor([1.0, 0.0, 1.0, 0.0], device=ir.device).expand(base.shape[0], 4)
        return base, gain

    def _residuals(self, cache: Sequence[dict[str, Any]], targets: list[int], guide: torch.Tensor) -> torch.Tensor:
        """Decoder outputs (len(targets) * B, 3 or 4, H', W') target-major: residuals (dY, dCb, dCr) and,
        with the sharpening gate, its logit. The network sees the newest
        net_window frames, or (for early targets of a long clip) the net_window frames starting at the
        target; targets sharing a sub-window are decoded together."""
        n_t = len(cache)
        b = cache[targets[0]]["ir"].shape[0]
        groups: dict[int, list[int]] = {}
        for t in targets:
            groups.setdefault(max(0, min(t, n_t - self.net_window)), []).append(t)
        per_target: dict[int, torch.Tensor] = {}
        guides = dict(zip(targets, guide.split(b, 0)))
        for lo, ts in groups.items():
            out = self._network(cache[lo:lo + self.net_window], [t - lo for t in ts],
                                torch.cat([guides[t] for t in ts], 0))
            per_target.update(zip(ts, out.split(b, 0)))
        return torch.cat([per_target[t] for t in targets], 0)

    def _network(self, cache: Sequence[dict[str, Any]], targets: list[int], guide: torch.Tensor) -> torch.Tensor:
        """Decoder outputs as in :meth:`_residuals`, from a window of <= net_window frames."""
        fused, ctxs = [], []
        for i, dfam in enumerate(self.dfam):
            f, ctx = dfam([fr["scales"][i] for fr in cache], targets)
            fused.append(f)
            ctxs.append(ctx)
        lf3 = [fr["scales"][2]["lf"] for fr in cache]
        f3 = [self.refine(x, ctxs[2], lf3, t) for x, t in zip(fused[2], targets)]
        # decode all targets as one batch, target-major
        return self.decoder(torch.cat(fused[0], 0), torch.cat(fused[1], 0), torch.cat(f3, 0), guide)

    def forward_train(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training forward. ``train_targets: causal`` (default): the last ``train_last`` frames of the clip,
        each fused exactly as the engine's causal ring holds it (the ``window`` frames ending at it), so
        the loss sees what the node outputs. Returns the fused targets (B, 3, K, H, W) and aux clips of the
        same length: 'ir', 'vis' (the targets' sources de-flickered as the model uses them), 'base'
        (the base the network refines), 'y' (output luminance before colour), 'shift' (B, K-1, 2): the
        global shift between consecutive targets (``translate(prev, shift)`` aligns the previous target
        onto the next), 'anchor' (the base after the gate). ``clip``: every frame of the clip from the whole clip, aux as 'ir', 'vis' only."""
        if self.train_targets == "clip":
            return self._forward_train_clip(ir, vis)
        n_t = ir.shape[2]
        cache = [self.encode_frame(ir[:, :, t], vis[:, :, t]) for t in range(n_t)]
        h, w = cache[0]["hw"]
        parts: dict[str, list[torch.Tensor]] = {}
        k = min(self.train_last, n_t)
        for t in range(n_t - k, n_t):
            lo = max(0, t + 1 - self.window)
            out = self._fuse(cache[lo:t + 1], [t - lo])
            for key in ("rgb", "ir", "vis", "base", "y", "anchor"):
                parts.setdefault(key, []).append(out[key][..., :h, :w])
        clips = {key: torch.stack(v, 2) for key, v in parts.items()}
        aux = {key: clips[key] for key in ("ir", "vis", "base", "y", "anchor")}
        if k > 1 and self.stabiliser is not None:
            size = (cache[0]["ir"].shape[-2] // self.stabiliser.downsample,
                    cache[0]["ir"].shape[-1] // self.stabiliser.downsample)
            with torch.no_grad():
                aux["shift"] = torch.stack([self.stabiliser.shift(cache[t]["stab"]["spec"], cache[t - 1]["stab"]["spec"],
                                                                  size) for t in range(n_t - k + 1, n_t)], 1)
        return clips["rgb"], aux

    def _forward_train_clip(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fused = self(ir, vis)
        if self.stabiliser is None:
            return fused, {}
        with torch.no_grad():
            n_t = ir.shape[2]
            stats = [self.stabiliser.luma_stats(ir[:, :, t], rgb_to_y(vis[:, :, t])) for t in range(n_t)]
            ab = self.stabiliser.photometric(stats).to(ir.dtype)  # (B, T, 4)
            g = ab.permute(0, 2, 1)[..., None, None]  # (B, 4, T, 1, 1)
            ir_t = apply_gain(ir, g[:, 0:1], g[:, 1:2])
            vis_t = apply_gain(vis, g[:, 2:3], g[:, 3:4])
        return fused, {"ir": ir_t, "vis": vis_t}
