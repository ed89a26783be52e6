"""Sparse block attention: FTPFusion's Sparse Cross-modal Attention Module (SCAM, Sec. 3.2.3, App. A.3).

The HF features of each frame are cut into non-overlapping p x p blocks (stride p). A window-level
importance score per block (HF magnitude of both modalities plus its change from the previous frame,
averaged over the block and over the window) selects the top k = ceil(rho * N) blocks. For each
selected block the tokens of the whole window (T * p * p) are the keys/values; the queries are that
block's tokens in the target frame(s). Attention is bidirectional across modalities (IR queries the
visible tokens and vice versa), followed by a gated residual and a feed-forward layer, and written back
to the same positions. Blocks that are not selected are untouched by attention. A local spatio-temporal
branch (depthwise 3x3 + 1x1 per frame, depthwise temporal mixing) runs on every position, and a 1x1
conv fuses [attended IR HF ; attended visible HF ; local branch] into the scale's HF output.

Streaming split (see ``ftpfusion_ros.models.base``): everything that depends on one frame only is
computed once in :meth:`SparseCrossModalAttention.prepare` and cached (blocked HF tokens, normalised
key/value projections, HF magnitude per token, the depthwise spatial part of the local branch); the
window step (:meth:`SparseCrossModalAttention.forward`) only gathers the selected blocks, adds the
position encodings (linear, so their projections are added to the cached projections) and runs the
attention for the query frames.

Layout: both modalities travel together, channels concatenated as [IR ; visible] (2C), maps (B, 2C, H, W)
preferably channels-last, blocked tokens (B, N, p*p, 2C) with blocks in row-major order. Per-modality
linear maps become block-diagonal matrices (LayerNorm affine folded in) and both attention directions run
as one attention call with 2 x heads heads (the first half: IR queries against visible keys; the second:
visible queries against IR keys), which halves the number of small CPU ops. Maps whose sides are not
multiples of p are padded (replicate) at the bottom/right for the attention only and cropped again.

Choice ``kv_pool`` (default in the model config): keys/values may be averaged over kv_pool x kv_pool cells
of each block (T * (p / kv_pool)^2 keys per block instead of T * p * p) to save CPU time.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def num_selected(rho: float, n_blocks: int) -> int:
    """k = ceil(rho * N), at least 1 and at most N (rounded first so 0.1 * 30 gives 3, not 4)."""
    return max(1, min(n_blocks, math.ceil(round(rho * n_blocks, 6))))


def blockify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) with H, W multiples of p -> (B, N, p*p, C) tokens, blocks in row-major order."""
    b, c, h, w = x.shape
    hb, wb = h // p, w // p
    t = x.permute(0, 2, 3, 1).reshape(b, hb, p, wb, p, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(b, hb * wb, p * p, c)


def unblockify(t: torch.Tensor, hb: int, wb: int, p: int) -> torch.Tensor:
    """Inverse of :func:`blockify`: (B, N, p*p, C) -> (B, C, hb*p, wb*p) in channels-last memory."""
    b, _, _, c = t.shape
    x = t.reshape(b, hb, wb, p, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hb * p, wb * p, c)
    return x.permute(0, 3, 1, 2)


def pad_to_multiple(x: torch.Tensor, p: int) -> torch.Tensor:
    """Replicate-pad the bottom/right of (B, C, H, W) so H and W become multiples of p."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % p, (-w) % p
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def fourier_features(coords: torch.Tensor, n_freq: int) -> torch.Tensor:
    """(..., D) coordinates in [0, 1] -> (..., 2 * D * n_freq) sin/cos features at octave frequencies."""
    freqs = (2.0 ** torch.arange(n_freq, device=coords.device, dtype=coords.dtype)) * math.pi
    ang = coords.unsqueeze(-1) * freqs
    return torch.cat((ang.sin(), ang.cos()), dim=-1).flatten(-2)


class _Modality(nn.Module):
    """Per-modality parameters of SCAM: token norm, query and key/value projections (this modality's
    tokens as queries / as keys for the other modality), output projection, residual gate, FFN."""

    def __init__(self, channels: int, dim: int, ffn_ratio: float, gate_init: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, dim)
        self.kv = nn.Linear(channels, 2 * dim)
        self.o = nn.Linear(dim, channels)
        #: per-channel gate of the attention residual (a learnable LayerScale-like gate)
        self.gate = nn.Parameter(torch.full((channels,), float(gate_init)))
        hidden = max(1, int(round(channels * ffn_ratio)))
        self.ffn_norm = nn.LayerNorm(channels)
        self.ffn_in = nn.Linear(channels, hidden)
        self.ffn_out = nn.Linear(hidden, channels)


def _fold_norm(w: torch.Tensor, norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """W (gamma * n + beta) = (W diag gamma) n + W beta."""
    return w * norm.weight, w @ norm.bias


def _anti_diag(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[[0, a], [b, 0]] for a (D, C) and b (D, C): maps [x_ir ; x_vis] to [a x_vis ; b x_ir]."""
    z = a.new_zeros(a.shape)
    return torch.cat((torch.cat((z, a), 1), torch.cat((b, z), 1)), 0)


class SparseCrossModalAttention(nn.Module):
    """SCAM for one scale, both modalities at once. See the module docstring for layout and streaming."""

    def __init__(
        self,
        channels: int,
        heads: int = 1,
        block_size: int = 8,
        rho: float = 0.25,
        window: int = 5,
        expansion: float = 1.0,
        ffn_ratio: float = 2.0,
        local_kernel: int = 3,
        pe_frequencies: int = 4,
        gate_init: float = 0.1,
        kv_pool: int = 1,
    ) -> None:
        super().__init__()
        dim = int(round(channels * expansion))
        if kv_pool < 1 or block_size % kv_pool:
            raise ValueError(f"kv_pool must be >= 1 and divide the block size {block_size}, got {kv_pool}")
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        if not 0.0 < rho <= 1.0:
            raise ValueError(f"sparse ratio rho must be in (0, 1], got {rho}")
        if local_kernel % 2 == 0:
            raise ValueError(f"local temporal kernel must be odd, got {local_kernel}")
        self.channels, self.dim, self.heads = channels, dim, heads
        self.p, self.rho, self.window = block_size, float(rho), window
        self.pe_frequencies = pe_frequencies
        #: keys/values are averaged over kv_pool x kv_pool token cells inside a block (1: every token)
        self.kv_pool = kv_pool
        self.ir = _Modality(channels, dim, ffn_ratio, gate_init)
        self.vis = _Modality(channels, dim, ffn_ratio, gate_init)
        # spatio-temporal position encoding (added to the normalised tokens before the q/k projections):
        # position inside the block + block centre (Fourier features) + frame offset from the newest frame
        self.pe_intra = nn.Parameter(torch.randn(block_size * block_size, channels) * 0.02)
        self.pe_centre = nn.Linear(4 * pe_frequencies, channels)
        self.pe_time = nn.Parameter(torch.randn(window, channels) * 0.02)
        # local spatio-temporal (3-D, factorised) branch on both modalities' HF:
        # per frame dw 3x3 -> 1x1 (2C -> C), cached; per window depthwise temporal mixing -> GELU
        c2 = 2 * channels
        self.local_spatial = nn.Conv2d(c2, c2, 3, padding=1, groups=c2)
        self.local_point = nn.Conv2d(c2, channels, 1)
        kt = torch.zeros(channels, local_kernel)
        kt[:, local_kernel // 2] = 1.0
        self.local_temporal = nn.Parameter(kt + 0.05 * torch.randn(channels, local_kernel))
        # HF fusion of (attended IR HF, attended visible HF, local branch) -> C channels
        self.fuse = nn.Conv2d(3 * channels, channels, 1)
        self._derived_key: tuple | None = None
        self._derived_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------------------------ weights
    def _norm(self, tokens: torch.Tensor) -> torch.Tensor:
        """LayerNorm of each modality's half of (..., 2C) tokens, without affine (folded into weights)."""
        c = self.channels
        shape = tokens.shape
        return F.layer_norm(tokens.reshape(*shape[:-1], 2, c), (c,)).reshape(shape)

    def _derived(self) -> dict[str, torch.Tensor]:
        """The block-diagonal / direction-ordered weights of both modalities, LayerNorm affines folded in.

        Rebuilt on every call while autograd records (training); in inference they are cached and
        rebuilt only when a parameter changes (checked through the tensors' version counters), which
        saves ~40 small ops per scale and frame on CPU.
        """
        compiling = getattr(torch.compiler, "is_compiling", lambda: False)()
        if torch.is_grad_enabled() or compiling or torch.jit.is_tracing():
            return self._build_derived()
        try:
            params = list(self.parameters())
            key = (params[0].dtype, params[0].device, tuple((t._version, t.data_ptr()) for t in params))
        except RuntimeError:  # tensors without storage (e.g. traced for export): no caching
            return self._build_derived()
        if self._derived_key != key:
            self._derived_cache = self._build_derived()
            self._derived_key = key
        return self._derived_cache

    def _build_derived(self) -> dict[str, torch.Tensor]:
        d = self.dim
        ir, vis = self.ir, self.vis
        out: dict[str, torch.Tensor] = {}
        # keys/values ordered by query direction: the first half serves IR queries (visible keys), the
        # second visible queries (IR keys)
        for name, sl in (("k", slice(0, d)), ("v", slice(d, 2 * d))):
            w_ir, b_ir = _fold_norm(ir.kv.weight[sl], ir.norm)
            w_vis, b_vis = _fold_norm(vis.kv.weight[sl], vis.norm)
            out[f"w{name}"] = _anti_diag(w_vis, w_ir)
            out[f"b{name}"] = torch.cat((b_vis + vis.kv.bias[sl], b_ir + ir.kv.bias[sl]))
        out["wk_raw"] = _anti_diag(vis.kv.weight[:d], ir.kv.weight[:d])
        wq_raw = torch.block_diag(ir.q.weight, vis.q.weight)
        out["wq_raw"] = wq_raw
        out["wq"] = wq_raw * torch.cat((ir.norm.weight, vis.norm.weight))
        out["bq"] = wq_raw @ torch.cat((ir.norm.bias, vis.norm.bias)) + torch.cat((ir.q.bias, vis.q.bias))
        out["wo"] = torch.block_diag(ir.o.weight, vis.o.weight)
        out["bo"] = torch.cat((ir.o.bias, vis.o.bias))
        out["gate"] = torch.cat((ir.gate, vis.gate))
        w1_raw = torch.block_diag(ir.ffn_in.weight, vis.ffn_in.weight)
        out["w1"] = w1_raw * torch.cat((ir.ffn_norm.weight, vis.ffn_norm.weight))
        out["b1"] = w1_raw @ torch.cat((ir.ffn_norm.bias, vis.ffn_norm.bias)) + torch.cat(
            (ir.ffn_in.bias, vis.ffn_in.bias)
        )
        out["w2"] = torch.block_diag(ir.ffn_out.weight, vis.ffn_out.weight)
        out["b2"] = torch.cat((ir.ffn_out.bias, vis.ffn_out.bias))
        c2 = 2 * self.channels
        out["fuse_hf"] = self.fuse.weight[:, :c2].contiguous()  # contiguous: strided conv weights are slow
        out["fuse_loc"] = self.fuse.weight[:, c2:].contiguous()
        return out

    # ----------------------------------------------------------------------------------- per frame
    def prepare(self, hf: torch.Tensor) -> dict[str, Any]:
        """Per-frame cache from HF maps (B, 2C, H, W) = [IR ; visible]: the map, key/value projections of
        its blocks, token HF magnitude per modality, the local branch's spatial part. (Blocked query tokens
        are cut at window time, for the target frames only, to keep the cache small.)"""
        h, w = hf.shape[-2:]
        p, r = self.p, self.kv_pool
        hp, wp = h + (-h) % p, w + (-w) % p
        entry: dict[str, Any] = {"hf": hf, "hw": (h, w), "grid": (hp // p, wp // p)}
        padded = pad_to_multiple(hf, p)
        blk = blockify(padded, p)  # (B, N, p*p, 2C)
        # pooled key/value tokens: pooling the map then cutting p/r blocks == pooling inside p blocks
        nrm = self._norm(blockify(F.avg_pool2d(padded, r), p // r) if r > 1 else blk)
        dw = self._derived()
        entry["k"] = F.linear(nrm, dw["wk"], dw["bk"])  # (B, N, (p/r)^2, 2D), direction-ordered
        entry["v"] = F.linear(nrm, dw["wv"], dw["bv"])
        # HF magnitude mean_c |HF| per modality, averaged over r x r cells (the change term of the block
        # score is taken at this resolution): (B, N, (p/r)^2 * 2)
        mag = blk.abs().reshape(*blk.shape[:-1], 2, self.channels).mean(-1)
        entry["mag"] = self._pool(mag).flatten(2)
        entry["loc"] = self.local_point(self.local_spatial(hf))
        return entry

    def _blocks(self, entry: dict[str, Any]) -> torch.Tensor:
        """Blocked tokens (B, N, p*p, 2C) of a cached frame's HF map."""
        return blockify(pad_to_multiple(entry["hf"], self.p), self.p)

    def _gather_blocks(self, entry: dict[str, Any], idx: torch.Tensor) -> torch.Tensor:
        """Tokens (B, k, p*p, 2C) of the blocks idx (B, k) of a cached frame's HF map, copied straight out
        of the (channels-last) map without blocking all of it."""
        hf = pad_to_multiple(entry["hf"], self.p)
        b, c, h, w = hf.shape
        p = self.p
        hb, wb = h // p, w // p
        grid = hf.permute(0, 2, 3, 1).reshape(b, hb, p, wb, p, c)  # a view for channels-last maps
        row = torch.div(idx, wb, rounding_mode="floor")
        col = idx - row * wb
        bidx = torch.arange(b, device=idx.device).unsqueeze(1)
        return grid[bidx, row, :, col].reshape(b, idx.shape[1], p * p, c)  # (B, k, p, p, C) -> tokens

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Average (..., p*p, C) block tokens (row-major) over kv_pool x kv_pool cells (small tensors only;
        maps are pooled with avg_pool2d before blockify, which is much faster)."""
        r = self.kv_pool
        if r == 1:
            return tokens
        q = self.p // r
        lead = tokens.shape[:-2]
        t = tokens.reshape(*lead, q, r, q, r, tokens.shape[-1]).mean((-4, -2))
        return t.reshape(*lead, q * q, tokens.shape[-1])

    # ---------------------------------------------------------------------------------- per window
    def block_scores(self, frames: Sequence[dict[str, Any]]) -> torch.Tensor:
        """(B, N) window importance: HF magnitude of both modalities + its change from the previous frame."""
        mag = torch.stack([fr["mag"] for fr in frames], 0)  # (T, B, N, cells * 2)
        score = mag.sum(0)
        if len(frames) > 1:
            score = score + (mag[1:] - mag[:-1]).abs().sum(0)
        return score.mean(-1) * (2.0 / len(frames))  # sum over the 2 modalities, mean over cells and frames

    def select(self, frames: Sequence[dict[str, Any]]) -> torch.Tensor:
        """Indices (B, k) of the top k = ceil(rho * N) blocks of the window, sorted ascending."""
        scores = self.block_scores(frames)
        k = num_selected(self.rho, scores.shape[1])
        return torch.topk(scores, k, dim=1).indices.sort(dim=1).values

    def _positions(self, idx: torch.Tensor, grid: tuple[int, int], hw: tuple[int, int], n_frames: int):
        """Position-encoding parts: intra-block (p*p, C), block centre (B, k, C), frame (T, C)."""
        wb = grid[1]
        h, w = hw
        row = torch.div(idx, wb, rounding_mode="floor")
        col = idx - row * wb
        dtype = self.pe_intra.dtype
        centre = torch.stack(((row.to(dtype) + 0.5) * self.p / h, (col.to(dtype) + 0.5) * self.p / w), -1)
        pe_c = self.pe_centre(fourier_features(centre, self.pe_frequencies))
        # frame index counted back from the newest frame of the window (clamped to the ring length)
        back = torch.arange(n_frames - 1, -1, -1, device=idx.device).clamp(max=self.window - 1)
        pe_t = self.pe_time[back]
        return self.pe_intra, pe_c, pe_t

    def _attend_tokens(
        self, frames: Sequence[dict[str, Any]], targets: Sequence[int], dw: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Select blocks and run both attention directions (and the FFN) on their tokens.

        Returns the indices (B, k) and the [IR ; visible] tokens of the selected blocks of the target
        frames before and after, each (B, k, n_targets, p*p, 2C).
        """
        first = frames[0]
        grid, hw = first["grid"], first["hw"]
        n_t, n_q = len(frames), len(targets)
        idx = self.select(frames)
        b, k = idx.shape
        pe_i, pe_c, pe_t = self._positions(idx, grid, hw, n_t)
        pp, d2 = self.p * self.p, 2 * self.dim
        ppk = pp // (self.kv_pool * self.kv_pool)  # key tokens per block and frame

        def both(x: torch.Tensor) -> torch.Tensor:  # a shared position encoding for both modalities
            return torch.cat((x, x), -1)

        # keys/values: the cached projections of the selected blocks over the whole window. k = W_k (n + pe)
        # + b = cached + W_k pe; the block-centre part of pe adds the same vector to every key of a block,
        # which cancels in the softmax, so only the intra-block and frame parts are added (pooled like the
        # keys; a small (T, ppk, 2D) tensor).
        pe_k = F.linear(both(self._pool(pe_i).unsqueeze(0) + pe_t.unsqueeze(1)), dw["wk_raw"])
        kk = torch.stack([_gather(fr["k"], idx) for fr in frames], 2) + pe_k  # (B, k, T, ppk, 2D)
        vv = torch.stack([_gather(fr["v"], idx) for fr in frames], 2)
        # queries: the target frames' tokens of the selected blocks (block-diagonal projections)
        x = torch.stack([self._gather_blocks(frames[t], idx) for t in targets], 2)  # (B, k, nq, pp, 2C)
        wq_raw = dw["wq_raw"]
        # W_q pe, by linearity from its parts: (pp, 2D) + (nq, 2D) [small, summed first] + (B, k, 2D)
        pe_q = F.linear(both(pe_i), wq_raw).view(1, 1, 1, pp, d2) + F.linear(
            both(pe_t[list(targets)]), wq_raw
        ).view(1, 1, n_q, 1, d2)
        q = F.linear(self._norm(x), dw["wq"], dw["bq"]) + pe_q + F.linear(both(pe_c), wq_raw).view(b, k, 1, 1, d2)
        # one attention call, 2 x heads heads: IR queries x visible keys, visible queries x IR keys
        nh = 2 * self.heads
        hd = d2 // nh

        def heads(t: torch.Tensor, length: int) -> torch.Tensor:
            return t.reshape(b * k, length, nh, hd).transpose(1, 2)

        a = F.scaled_dot_product_attention(heads(q, n_q * pp), heads(kk, n_t * ppk), heads(vv, n_t * ppk))
        a = a.transpose(1, 2).reshape(b, k, n_q, pp, d2)
        y = x + dw["gate"] * F.linear(a, dw["wo"], dw["bo"])  # gated residual
        # feed-forward refinement (pre-norm, block-diagonal per modality)
        y = y + F.linear(F.gelu(F.linear(self._norm(y), dw["w1"], dw["b1"])), dw["w2"], dw["b2"])
        return idx, x, y

    def _scatter(
        self, frames: Sequence[dict[str, Any]], idx: torch.Tensor, tokens: torch.Tensor, base: torch.Tensor | None
    ) -> torch.Tensor:
        """Write tokens (B, k, p*p, C') of the selected blocks into `base` blocked (B, N, p*p, C') (zeros when
        None) and return the (B, C', H, W) map, cropped to the unpadded size."""
        hb, wb = frames[0]["grid"]
        h, w = frames[0]["hw"]
        if base is None:
            base = tokens.new_zeros(tokens.shape[0], hb * wb, *tokens.shape[2:])
        b = idx.shape[0]
        if b == 1:
            blk = base.index_copy(1, idx[0], tokens.to(base.dtype))
        else:
            bidx = torch.arange(b, device=idx.device).unsqueeze(1)
            blk = base.index_put((bidx, idx), tokens.to(base.dtype))
        return unblockify(blk, hb, wb, self.p)[:, :, :h, :w]

    def attend(
        self, frames: Sequence[dict[str, Any]], targets: Sequence[int]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Sparse cross-modal attention only (no local branch), written back into the maps.

        Returns, per target, the updated IR and visible HF maps (B, C, H, W) and the selected block
        indices (B, k). Positions outside the selected blocks are returned bit-identical.
        """
        idx, _, y = self._attend_tokens(frames, targets, self._derived())
        c = self.channels
        out_ir, out_vis = [], []
        for j, t in enumerate(targets):
            full = self._scatter(frames, idx, y[:, :, j], self._blocks(frames[t]))
            out_ir.append(full[:, :c])
            out_vis.append(full[:, c:])
        return out_ir, out_vis, idx

    def local(self, frames: Sequence[dict[str, Any]], t: int) -> torch.Tensor:
        """Local branch at frame t: depthwise temporal mixing (zero padded) of the cached spatial part."""
        r = self.local_temporal.shape[1] // 2
        taps = self.local_temporal.t()[:, None, :, None, None].unbind(0)  # (1, C, 1, 1) per tap
        acc = None
        for j in range(-r, r + 1):
            s = t + j
            if 0 <= s < len(frames):
                loc = frames[s]["loc"]
                acc = loc * taps[j + r] if acc is None else torch.addcmul(acc, loc, taps[j + r])
        return F.gelu(acc)

    def forward(self, frames: Sequence[dict[str, Any]], targets: Sequence[int]) -> list[torch.Tensor]:
        """Fused HF features (B, C, H, W) for each target frame:
        fuse([attended IR HF ; attended visible HF ; local branch]).

        Computed without writing the attended tokens back into full maps: the 1x1 fusion is linear, so
        it equals fuse([HF_ir ; HF_vis ; local]) plus the fusion of the attention's token *changes*,
        scattered into the selected blocks (the result is the same as :meth:`attend` then fusing).
        """
        dw = self._derived()
        idx, x, y = self._attend_tokens(frames, targets, dw)
        w_hf, w_loc = dw["fuse_hf"], dw["fuse_loc"]
        delta = F.linear(y - x, w_hf.flatten(1))  # (B, k, nq, pp, C)
        out = []
        for j, t in enumerate(targets):
            fused = F.conv2d(frames[t]["hf"], w_hf, self.fuse.bias)
            fused = fused + F.conv2d(self.local(frames, t), w_loc)
            out.append(fused + self._scatter(frames, idx, delta[:, :, j], None))
        return out


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows idx (B, k) of t (B, N, ...) along dim 1 -> (B, k, ...)."""
    if t.shape[0] == 1:
        return t.index_select(1, idx[0])
    return t[torch.arange(t.shape[0], device=idx.device).unsqueeze(1), idx]
