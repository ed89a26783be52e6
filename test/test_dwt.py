"""The Haar DWT/IDWT pair: perfect reconstruction, orthonormality, what each sub-band sees."""
import pytest
import torch

from ftpfusion_ros.nn.dwt import dwt2, idwt2


@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 3, 8, 6), (4, 10, 14), (2, 2, 3, 16, 4)])
def test_perfect_reconstruction_and_energy_preservation(shape):
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    bands = dwt2(x)
    assert all(b.shape == (*shape[:-2], shape[-2] // 2, shape[-1] // 2) for b in bands)
    torch.testing.assert_close(idwt2(*bands), x, atol=1e-12, rtol=0)
    # orthonormal: energy is preserved (Parseval)
    torch.testing.assert_close(sum(b.square().sum() for b in bands), x.square().sum())


def test_dwt_of_an_idwt_is_the_identity_too():
    g = torch.Generator().manual_seed(1)
    bands = [torch.randn(2, 3, 5, 7, generator=g) for _ in range(4)]
    for got, want in zip(dwt2(idwt2(*bands)), bands):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_subbands_see_the_right_structure():
    flat = torch.full((1, 1, 4, 4), 0.7)
    ll, lh, hl, hh = dwt2(flat)
    torch.testing.assert_close(ll, torch.full_like(ll, 1.4))  # 2 x the mean for an orthonormal Haar
    assert lh.abs().max() == hl.abs().max() == hh.abs().max() == 0
    rows = torch.tensor([0.0, 1.0]).repeat(2).view(4, 1).expand(4, 4)[None, None]  # varies along H only
    _, lh, hl, hh = dwt2(rows)
    assert lh.abs().min() > 0 and hl.abs().max() == 0 and hh.abs().max() == 0
    _, lh, hl, hh = dwt2(rows.transpose(-1, -2))  # varies along W only
    assert hl.abs().min() > 0 and lh.abs().max() == 0 and hh.abs().max() == 0
    checker = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)) % 2
    _, lh, hl, hh = dwt2(checker.float()[None, None])
    assert hh.abs().min() > 0 and lh.abs().max() == 0 and hl.abs().max() == 0


def test_gradients_flow_through_the_round_trip():
    x = torch.randn(1, 2, 6, 4, requires_grad=True)
    w = torch.randn(1, 2, 6, 4)
    (idwt2(*dwt2(x)) * w).sum().backward()
    torch.testing.assert_close(x.grad, w)


def test_odd_sizes_and_mismatched_bands_are_rejected():
    with pytest.raises(ValueError, match="even"):
        dwt2(torch.zeros(1, 1, 5, 4))
    with pytest.raises(ValueError, match="even"):
        dwt2(torch.zeros(1, 1, 4, 3))
    z = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError):
        idwt2(z, z, z, torch.zeros(1, 1, 2, 3))
