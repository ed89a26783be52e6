"""The pure-PyTorch selective scan against the naive sequential recurrence, and the 2-D scan orders."""
import pytest
import torch

from ftpfusion_ros.nn.selective_scan import (cross_merge, cross_scan, mamba_kernels_available, scan_orders,
                                             selective_scan, selective_scan_chunked, selective_scan_reference)
from ftpfusion_ros.nn.vss import SelectiveScan2D, VSSBlock


def make_inputs(b, d, l, n, g=None, dtype=torch.float32, seed=0, dt_shift=0.0, device="cpu"):
    """Random scan inputs; g=None gives B, C as (b, n, l), else grouped (b, g, n, l)."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype).to(device)

    bc_shape = (b, n, l) if g is None else (b, g, n, l)
    return dict(u=r(b, d, l), delta=r(b, d, l) + dt_shift,
                A=-torch.rand(d, n, generator=gen, dtype=dtype).mul(4).add(0.1).to(device),
                B=r(*bc_shape), C=r(*bc_shape), D=r(d), z=r(b, d, l), delta_bias=r(d))


@pytest.mark.parametrize("b,d,l,n,g", [(2, 4, 37, 8, None), (1, 8, 64, 16, 4), (3, 6, 1, 4, 2), (1, 4, 101, 8, 1)])
@pytest.mark.parametrize("chunk_size", [None, 1, 5, 1000])
def test_chunked_equals_sequential_reference(b, d, l, n, g, chunk_size):
    inp = make_inputs(b, d, l, n, g)
    y_ref, last_ref = selective_scan_reference(**inp, delta_softplus=True, return_last_state=True)
    y, last = selective_scan_chunked(**inp, delta_softplus=True, return_last_state=True, chunk_size=chunk_size)
    assert y.shape == (b, d, l)
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(last, last_ref, atol=1e-4, rtol=1e-4)


def test_optional_terms_and_plain_delta():
    """No D, no z, no bias, no softplus: y is the bare recurrence (positive delta given directly)."""
    inp = make_inputs(2, 4, 23, 8)
    args = dict(u=inp["u"], delta=inp["delta"].abs(), A=inp["A"], B=inp["B"], C=inp["C"])
    torch.testing.assert_close(selective_scan_chunked(**args), selective_scan_reference(**args), atol=1e-4, rtol=1e-4)


def test_large_decays_stay_finite():
    """Very large dt * |A| (state forgotten at every step) must neither overflow nor produce NaN."""
    inp = make_inputs(1, 4, 50, 8, dt_shift=40.0)
    inp["A"] = inp["A"] * 10
    y = selective_scan_chunked(**inp, delta_softplus=True, chunk_size=10)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, selective_scan_reference(**inp, delta_softplus=True), atol=1e-4, rtol=1e-4)


def test_gradients_match_reference():
    inp = make_inputs(2, 4, 30, 4, g=2)
    grads = []
    for fn in (selective_scan_reference, lambda **kw: selective_scan_chunked(**kw, chunk_size=7)):
        leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
        y = fn(**leaves, delta_softplus=True)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads.append({k: v.grad for k, v in leaves.items()})
    for k in inp:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-4, rtol=1e-4, msg=f"gradient of {k}")


def test_gradcheck_double():
    """Analytical gradients of the chunked scan (float64 stays float64) against finite differences."""
    inp = make_inputs(1, 2, 6, 2, g=1, dtype=torch.float64)
    keys = list(inp)
    leaves = [inp[k].requires_grad_(True) for k in keys]

    def fn(*tensors):
        return selective_scan_chunked(**dict(zip(keys, tensors)), delta_softplus=True, chunk_size=4)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6)


def test_causal():
    """Changing the input at position t changes no output before t."""
    inp = make_inputs(1, 4, 40, 8)
    y0 = selective_scan_chunked(**inp, delta_softplus=True, chunk_size=6)
    inp["u"] = inp["u"].clone()
    inp["u"][..., 25] += 5.0
    y1 = selective_scan_chunked(**inp, delta_softplus=True, chunk_size=6)
    assert torch.equal(y0[..., :25], y1[..., :25])
    assert not torch.allclose(y0[..., 25:], y1[..., 25:])


def test_dispatch_and_errors():
    inp = make_inputs(1, 4, 9, 4)
    torch.testing.assert_close(selective_scan(**inp, backend="torch"), selective_scan_chunked(**inp))
    with pytest.raises(ValueError):
        selective_scan(**inp, backend="nope")
    if not mamba_kernels_available():
        with pytest.raises(RuntimeError):
            selective_scan(**inp, backend="mamba")
    with pytest.raises(ValueError):
        selective_scan_chunked(inp["u"], inp["delta"][..., :-1], inp["A"], inp["B"], inp["C"])
    with pytest.raises(ValueError):  # 4 channels cannot be split into 3 groups
        selective_scan_chunked(inp["u"], inp["delta"], inp["A"], inp["B"][:, None].expand(1, 3, 4, 9),
                               inp["C"][:, None].expand(1, 3, 4, 9))


def test_dtype_preserved():
    inp = {k: v.to(torch.bfloat16) for k, v in make_inputs(1, 4, 12, 4).items()}
    y = selective_scan(**inp, delta_softplus=True, backend="torch")
    assert y.dtype == torch.bfloat16
    ref = selective_scan_reference(**{k: v.float() for k, v in inp.items()}, delta_softplus=True)
    torch.testing.assert_close(y.float(), ref, atol=0.1, rtol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_torch_scan_matches_cpu():
    inp = make_inputs(2, 8, 70, 8, g=4)
    y_cpu = selective_scan_chunked(**inp, delta_softplus=True)
    y_gpu = selective_scan(**{k: v.cuda() for k, v in inp.items()}, delta_softplus=True, backend="torch")
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not (mamba_kernels_available() and torch.cuda.is_available()), reason="needs mamba_ssm + CUDA")
def test_mamba_kernel_matches_torch_scan():
    inp = {k: v.cuda() for k, v in make_inputs(2, 8, 300, 16, g=4).items()}
    y_k = selective_scan(**inp, delta_softplus=True, backend="mamba")
    y_t = selective_scan(**inp, delta_softplus=True, backend="torch")
    torch.testing.assert_close(y_k, y_t, atol=1e-3, rtol=1e-3)


# ------------------------------------------------------------------------------------- 2-D scans

@pytest.mark.parametrize("h,w", [(3, 5), (4, 4), (1, 7)])
def test_four_directions_cover_each_token_once(h, w):
    orders = scan_orders(h, w)
    assert orders.shape == (4, h * w)
    for k in range(4):
        assert torch.equal(orders[k].sort().values, torch.arange(h * w)), f"direction {k} is not a permutation"
    grid = torch.arange(h * w).view(h, w)
    assert torch.equal(orders[0], grid.flatten())            # row-major
    assert torch.equal(orders[1], grid.t().flatten())        # column-major
    assert torch.equal(orders[2], grid.flatten().flip(0))    # row-major reversed
    assert torch.equal(orders[3], grid.t().flatten().flip(0))

    x = torch.randn(2, 3, h, w)
    xs = cross_scan(x)
    assert xs.shape == (2, 4, 3, h * w)
    for k in range(4):
        assert torch.equal(xs[:, k], x.flatten(2)[..., orders[k]])
    torch.testing.assert_close(cross_merge(xs, h, w), 4 * x)
    # merging arbitrary sequences = scattering each back to the pixel it was read from, then summing
    ys = torch.randn(2, 4, 3, h * w)
    expected = torch.zeros(2, 3, h * w)
    for k in range(4):
        expected[..., orders[k]] += ys[:, k]
    torch.testing.assert_close(cross_merge(ys, h, w), expected.view(2, 3, h, w))


def test_ss2d_global_receptive_field_and_batch_independence():
    torch.manual_seed(0)
    ssm = SelectiveScan2D(d_inner=4, d_state=4, dt_rank=1)
    x = torch.randn(2, 4, 6, 5)
    with torch.no_grad():
        y0 = ssm(x)
        x1 = x.clone()
        x1[0, :, 2, 3] += 3.0  # one pixel of the first image
        y1 = ssm(x1)
    changed = (y1[0] - y0[0]).abs().amax(0) > 0
    assert changed.all(), "four directions must carry one pixel's change to every pixel"
    assert torch.equal(y0[1], y1[1]), "images of a batch must not interact"


def test_vss_block_shape_and_gradients():
    torch.manual_seed(0)
    block = VSSBlock(8, d_state=4, expand=2)
    x = torch.randn(2, 8, 6, 4, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
