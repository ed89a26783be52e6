"""Selective scan (Mamba's S6 recurrence) in pure PyTorch, plus its 2-D four-direction wrapper.

The recurrence, per channel d, state n and position t (zero initial state)::

    dt[d,t]   = softplus(delta[d,t] + delta_bias[d])          (when delta_softplus)
    h[d,n,t]  = exp(dt[d,t] * A[d,n]) * h[d,n,t-1] + dt[d,t] * B[n,t] * u[d,t]
    y[d,t]    = sum_n C[n,t] * h[d,n,t] + D[d] * u[d,t]
    y         = y * silu(z)                                    (when z is given)

:func:`selective_scan` has the signature and semantics of ``mamba_ssm``'s ``selective_scan_fn``
(u, delta (b, d, l); A (d, n); B, C (b, n, l) or grouped (b, g, n, l) where channel d uses group
``d // (d_total / g)``; D, delta_bias (d,)), so the fast CUDA kernel is used as a drop-in when it is
installed and the inputs are on CUDA; everywhere else :func:`selective_scan_chunked` runs.

The chunked formulation (exact, no approximation): the sequence is cut into ``nc`` chunks of length
``Lc`` (about sqrt(l) each). Every recurrence step is a tensor operation over all chunks at once, so
the Python loop runs ``2 Lc + nc`` (about 3 sqrt(l)) steps instead of ``l``:

1. scan each chunk from a zero state (all chunks in parallel) -> the chunk's final local state;
2. carry states across chunks: ``carry[c+1] = exp(A * sum(dt in chunk c)) * carry[c] + local[c]``;
3. scan each chunk again from its carry-in state (all chunks in parallel), reading out ``y``.

Only products of factors ``exp(dt * A) <= 1`` appear (A < 0, dt >= 0), so nothing can overflow, unlike
cumulative-sum tricks that divide by vanishing decays. :func:`selective_scan_reference` is the naive
one-step-at-a-time loop, kept as the tests' ground truth.

:func:`cross_scan` / :func:`cross_merge` turn a (b, d, h, w) map into the four scan orders used by
VMamba's SS2D (row-major, column-major and both reversed) and merge the four outputs back onto the
grid (sum), so every pixel sees context from all four directions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

try:  # optional fast CUDA kernels (pip install mamba-ssm); never required
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_selective_scan_fn
except Exception:  # ImportError, or a broken CUDA extension build
    _mamba_selective_scan_fn = None

__all__ = [
    "cross_merge",
    "cross_scan",
    "mamba_kernels_available",
    "scan_orders",
    "selective_scan",
    "selective_scan_chunked",
    "selective_scan_reference",
]

SCAN_DIRECTIONS = 4


def mamba_kernels_available() -> bool:
    """True when mamba_ssm's compiled selective-scan kernel could be imported."""
    return _mamba_selective_scan_fn is not None


def _prepare(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             delta_bias: torch.Tensor | None, delta_softplus: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Validate shapes, compute in at least float32 (as the CUDA kernel does; float64 stays float64)
    and apply bias/softplus to delta.

    Returns u, dt, A, B, C with B and C grouped as (b, g, n, l), plus g.
    """
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, dim, length), got {tuple(u.shape)} and "
                         f"{tuple(delta.shape)}")
    b, d, l = u.shape
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must be (dim={d}, dstate), got {tuple(A.shape)}")
    n = A.shape[1]
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    if B.dim() != 4 or B.shape[0] != b or B.shape[2:] != (n, l) or C.shape != B.shape:
        raise ValueError(f"B and C must be (batch, [groups,] dstate={n}, length={l}), got {tuple(B.shape)}, "
                         f"{tuple(C.shape)}")
    g = B.shape[1]
    if d % g:
        raise ValueError(f"dim {d} is not divisible by the number of B/C groups {g}")
    ct = torch.promote_types(u.dtype, torch.float32)
    dt = delta.to(ct)
    if delta_bias is not None:
        dt = dt + delta_bias.to(ct)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    return u.to(ct), dt, A.to(ct), B.to(ct), C.to(ct), g


def _finish(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None,
            dtype: torch.dtype) -> torch.Tensor:
    if D is not None:
        y = y + D.to(u.dtype)[:, None] * u
    if z is not None:
        y = y * F.silu(z.to(u.dtype))
    return y.to(dtype)


def selective_scan_reference(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                             C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                             delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                             return_last_state: bool = False):
    """Naive sequential scan, one position per step: the ground truth for tests (slow)."""
    dtype = u.dtype
    u, dt, A, B, C, g = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    b, d, l = u.shape
    n = A.shape[1]
    # expand groups to channels: channel j uses group j // (d // g)
    Bd = B.repeat_interleave(d // g, dim=1)  # (b, d, n, l)
    Cd = C.repeat_interleave(d // g, dim=1)
    h = u.new_zeros(b, d, n)
    ys = []
    for t in range(l):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bd[..., t]
        ys.append((h * Cd[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(b, d, 0)
    out = _finish(y, u, D, z, dtype)
    return (out, h) if return_last_state else out


def selective_scan_chunked(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                           C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                           delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                           return_last_state: bool = False, chunk_size: int | None = None):
    """Exact chunked scan (see module docstring); pure PyTorch, any device, differentiable."""
    dtype = u.dtype
    u, dt, A, B, C, g = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    b, d, l = u.shape
    n = A.shape[1]
    dg = d // g
    if l == 0:
        y = u.new_zeros(b, d, 0)
        out = _finish(y, u, D, z, dtype)
        return (out, u.new_zeros(b, d, n)) if return_last_state else out
    # Lc ~ sqrt(l) balances the in-chunk steps (2 Lc) against the carry steps (nc)
    lc = max(1, min(l, chunk_size or math.ceil(math.sqrt(l))))
    nc = math.ceil(l / lc)
    pad = nc * lc - l
    if pad:  # padded steps have dt = 0 (decay 1, input 0): they change neither y[:l] nor the last state
        u = F.pad(u, (0, pad))
        dt = F.pad(dt, (0, pad))
        B = F.pad(B, (0, pad))
        C = F.pad(C, (0, pad))
    # step-major layouts, chunk index innermost: x[t] is one contiguous (..., nc) slab per in-chunk
    # step, so every step is a handful of element-wise ops along contiguous memory (2-3x faster on
    # CPU than putting the state dimension innermost)
    dt_c = dt.view(b, g, dg, nc, lc)
    dts = dt_c.permute(4, 0, 1, 2, 3).unsqueeze(-2).contiguous()                 # (lc, b, g, dg, 1, nc)
    dtu = dts * u.view(b, g, dg, nc, lc).permute(4, 0, 1, 2, 3).unsqueeze(-2)
    Bs = B.view(b, g, n, nc, lc).permute(4, 0, 1, 2, 3).unsqueeze(3).contiguous()  # (lc, b, g, 1, n, nc)
    Cs = C.view(b, g, n, nc, lc).permute(4, 0, 1, 2, 3).unsqueeze(3).contiguous()
    A4 = A.view(g, dg, n, 1)

    # 1. local scans from a zero state, all chunks at once; keep the per-step factors for step 3
    decays, inputs = [], []
    h = None
    for t in range(lc):
        da = torch.exp(dts[t] * A4)  # (b, g, dg, n, nc)
        x = dtu[t] * Bs[t]
        decays.append(da)
        inputs.append(x)
        h = x if h is None else torch.addcmul(x, da, h)
    # 2. carry-in state of every chunk (chunk decay = exp(A * sum of dt over the chunk))
    chunk_decay = torch.exp(A4 * dt_c.sum(-1).unsqueeze(-2))  # (b, g, dg, n, nc)
    carry = h.new_zeros(b, g, dg, n)
    carries = []
    for c in range(nc):
        carries.append(carry)
        carry = torch.addcmul(h[..., c], chunk_decay[..., c], carry)
    # 3. rescan each chunk from its carry-in state, reading y out at every step
    h = torch.stack(carries, dim=-1)  # (b, g, dg, n, nc)
    ys = []
    for t in range(lc):
        h = torch.addcmul(inputs[t], decays[t], h)
        ys.append((h * Cs[t]).sum(-2))  # (b, g, dg, nc)
    y = torch.stack(ys, dim=-1).reshape(b, d, nc * lc)[..., :l]
    out = _finish(y, u[..., :l], D, z, dtype)
    return (out, carry.reshape(b, d, n)) if return_last_state else out


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                   delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                   return_last_state: bool = False, backend: str = "auto"):
    """Selective scan with mamba_ssm's ``selective_scan_fn`` semantics.

    backend: "auto" (mamba_ssm's CUDA kernel when importable and the inputs are on CUDA, else the
    chunked PyTorch scan), "torch" (always the chunked scan) or "mamba" (the kernel; raises if absent).
    """
    if backend not in ("auto", "torch", "mamba"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'mamba', got {backend!r}")
    use_kernel = backend == "mamba" or (backend == "auto" and u.is_cuda and _mamba_selective_scan_fn is not None)
    if use_kernel:
        if _mamba_selective_scan_fn is None:
            raise RuntimeError("backend='mamba' needs the mamba_ssm package (pip install mamba-ssm) with CUDA")
        if not u.is_cuda:
            raise RuntimeError("backend='mamba' runs on CUDA tensors only")
        # the kernel wants contiguous inputs, delta/B/C/z in u's dtype and float32 A/D/delta_bias
        dt = u.dtype
        return _mamba_selective_scan_fn(
            u.contiguous(), delta.to(dt).contiguous(), A.float().contiguous(), B.to(dt).contiguous(),
            C.to(dt).contiguous(), None if D is None else D.float().contiguous(),
            None if z is None else z.to(dt).contiguous(),
            None if delta_bias is None else delta_bias.float().contiguous(), delta_softplus, return_last_state)
    return selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


# ----------------------------------------------------------------------------- 2-D, four directions

def scan_orders(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(4, h*w) flat pixel indices visited by each scan direction, in order.

    0: row-major, 1: column-major, 2: row-major reversed, 3: column-major reversed. Used by tests and
    as the documentation of what :func:`cross_scan` does (which uses cheaper flips/transposes).
    """
    idx = torch.arange(h * w, device=device).view(h, w)
    row, col = idx.flatten(), idx.t().flatten()
    return torch.stack([row, col, row.flip(0), col.flip(0)])


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(b, d, h, w) -> (b, 4, d, h*w): the map unrolled in the four orders of :func:`scan_orders`."""
    row = x.flatten(2)
    col = x.transpose(2, 3).flatten(2)
    fwd = torch.stack([row, col], dim=1)
    return torch.cat([fwd, fwd.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(b, 4, d, h*w) sequences in the four scan orders -> (b, d, h, w), the sum of the four put back
    on the grid (the inverse of :func:`cross_scan` up to the sum: cross_merge(cross_scan(x)) == 4 x)."""
    b, k, d, l = ys.shape
    if k != SCAN_DIRECTIONS or l != h * w:
        raise ValueError(f"expected (b, 4, d, {h * w}) scan outputs, got {tuple(ys.shape)}")
    fwd = ys[:, :2] + ys[:, 2:].flip(-1)  # undo the reversals
    row = fwd[:, 0].view(b, d, h, w)
    col = fwd[:, 1].view(b, d, w, h).transpose(2, 3)
    return row + col
