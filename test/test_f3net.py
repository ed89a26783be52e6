"""F3Net: module contracts (FSFEM with ResBlock/FFEU/SFEU, FFM, IRM), the model's shapes/range/gradients/
config, its loss terms, and that the name works through the streaming engine and checkpoints."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

from ftpfusion_ros.losses import build_loss
from ftpfusion_ros.losses.f3net_loss import F3NetLoss, gradient_loss
from ftpfusion_ros.models import build_model, default_config, model_class
from ftpfusion_ros.models.f3net import FFEU, FFM, FSFEM, IRM, SFEU, F3Net, ResBlock, dct_filters, low_frequencies
from ftpfusion_ros.runtime import EngineConfig, FusionEngine, load_checkpoint, save_checkpoint
from model_checks import (assert_colour_preserving_max_fusion, assert_gradients_reach_every_parameter,
                           assert_optimisation_lowers_the_loss, clip)

SMALL = {"channels": 8, "reduction": 2, "irm_channels": [8, 8, 4]}


# ------------------------------------------------------------------------------------------ modules
def test_dct_basis_low_frequencies_are_orthogonal_and_dc_is_the_mean():
    assert low_frequencies(4, 7) == [(0, 0), (0, 1), (1, 0), (0, 2)]
    with pytest.raises(ValueError):
        low_frequencies(50, 7)
    freqs = low_frequencies(4, 7)
    basis = dct_filters(4, freqs, 7)  # one channel per frequency
    gram = torch.einsum("chw,dhw->cd", basis, basis)
    assert (gram - torch.diag(torch.diagonal(gram))).abs().max() < 1e-7  # distinct DCT bases are orthogonal
    # channel groups: 8 channels over 4 frequencies -> pairs share a basis
    b8 = dct_filters(8, freqs, 7)
    torch.testing.assert_close(b8[0], b8[1])
    torch.testing.assert_close(b8[6], basis[3])


def test_ffeu_frequency_attention_is_a_per_channel_weight_in_0_1():
    torch.manual_seed(0)
    ffeu = FFEU(8, reduction=2, num_freq=4, dct_size=7)
    x = torch.randn(3, 8, 21, 28)  # multiples of the 7x7 DCT grid: the pooling bins do not overlap
    w = ffeu.weights(x)
    assert w.shape == (3, 8, 1, 1) and w.min() > 0 and w.max() < 1
    torch.testing.assert_close(ffeu(x), x * w)
    # the DC channels' spectrum is the channel mean of the pooled map (FcaNet: GAP is the DCT's DC term)
    spec = ffeu.spectrum(x)
    torch.testing.assert_close(spec[:, :2], x.mean((2, 3))[:, :2], atol=1e-5, rtol=0)
    # a different texture at the same mean changes the higher-frequency channels only
    ramp = torch.linspace(-1, 1, 28).expand(1, 8, 21, 28)
    spec_ramp = ffeu.spectrum(ramp)
    assert spec_ramp[:, :2].abs().max() < 1e-6 and spec_ramp[:, 2:4].abs().max() > 0.1  # (0, 1) sees the W ramp
    assert "basis" not in ffeu.state_dict()  # rebuilt from the config, not stored


def test_sfeu_spatial_map_shape_and_cbam_order():
    torch.manual_seed(0)
    sfeu = SFEU(8, reduction=2, kernel_size=7)
    x = torch.randn(2, 8, 15, 21)
    smap = sfeu.spatial_map(x)
    assert smap.shape == (2, 1, 15, 21) and smap.min() > 0 and smap.max() < 1
    ca = sfeu.ca.weights(x)
    assert ca.shape == (2, 8, 1, 1)
    torch.testing.assert_close(sfeu(x), x * ca * smap)


def test_resblock_skip_and_fsfem_outputs():
    torch.manual_seed(0)
    block = ResBlock(4)
    nn.init.zeros_(block.conv2.weight)
    nn.init.zeros_(block.conv2.bias)
    x = torch.randn(1, 4, 9, 9)
    torch.testing.assert_close(block(x), x)  # identity skip
    fsfem = FSFEM(1, 8, reduction=2, num_freq=4, dct_size=7, sa_kernel=7)
    freq, spat = fsfem(torch.rand(2, 1, 13, 17))
    assert freq.shape == spat.shape == (2, 8, 13, 17)


def test_ffm_gates_frequency_features_and_adds_spatial_ones():
    torch.manual_seed(0)
    ffm = FFM(8, reduction=2, spatial_kernel=7)
    assert ffm.spatial_conv.kernel_size == (7, 7) and ffm.freq_conv.kernel_size == (1, 1)
    freq, spat = torch.randn(2, 8, 12, 14), torch.randn(2, 8, 12, 14)
    gate = ffm.gate(freq, spat)
    assert gate.shape == (2, 1, 12, 14) and gate.min() > 0 and gate.max() < 1
    fused = gate * freq + spat
    torch.testing.assert_close(ffm(freq, spat), fused * ffm.se(fused))
    zero = torch.zeros_like(freq)
    torch.testing.assert_close(ffm(zero, spat), spat * ffm.se(spat))  # no frequency features: spatial only


def test_irm_has_four_3x3_convs():
    irm = IRM(16, [8, 8, 4], init_scale=0.1)
    convs = [m for m in irm.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (3, 3) for c in convs)
    assert irm(torch.rand(1, 16, 10, 11)).shape == (1, 1, 10, 11)
    with pytest.raises(ValueError):
        IRM(16, [8, 8], init_scale=0.1)


# ------------------------------------------------------------------------------------------ the model
def test_registry_config_and_constructor_agree():
    cls = model_class("f3net")
    assert cls is F3Net and cls.learned and not cls.temporal
    cfg = default_config("f3net")
    assert set(cfg) == set(inspect.signature(F3Net.__init__).parameters) - {"self"}
    model = build_model("f3net")
    assert model.window == 1 and model.size_multiple == 1
    assert model.fsfem_ir is not model.fsfem_vis
    shared = build_model("f3net", {**SMALL, "share_fsfem": True})
    assert shared.fsfem_ir is shared.fsfem_vis
    with pytest.raises(ValueError):
        build_model("f3net", {"width": 3})


def test_output_shape_range_odd_size_and_untrained_output_is_a_colour_preserving_max_fusion():
    torch.manual_seed(0)
    model = build_model("f3net", SMALL).eval()
    ir, vis = clip(2, 2, 33, 47)
    with torch.no_grad():
        out = model(ir, vis)
    assert out.shape == (2, 3, 2, 33, 47)
    assert_colour_preserving_max_fusion(out, ir, vis, luma_tol=0.02, chroma_tol=0.02)
    with torch.no_grad():
        fused, aux = model.forward_train(ir, vis)
    torch.testing.assert_close(fused, out, atol=1e-5, rtol=0)
    assert aux["fused_y"].shape == (2, 1, 2, 33, 47)


def test_gradients_reach_every_parameter_through_the_paper_loss():
    terms = assert_gradients_reach_every_parameter("f3net", SMALL, *clip(2, 2, 32, 40))
    assert set(terms) == {"pixel", "gradient", "ssim"}


def test_two_optimisation_steps_lower_the_loss_on_a_fixed_batch():
    assert_optimisation_lowers_the_loss("f3net", SMALL, *clip(1, 2, 24, 24, seed=4))


# ------------------------------------------------------------------------------------------- losses
def _frames(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 1, 24, 28, generator=g), torch.rand(2, 1, 24, 28, generator=g)


def test_loss_terms_vanish_where_they_should():
    ir, vis = _frames()
    loss = F3NetLoss()
    # identical sources and output: every term is 0
    img = ir[:, :, None]
    _, terms = loss(img, img.expand(-1, 3, -1, -1, -1), img.expand(-1, 3, -1, -1, -1), {})
    assert all(v.abs() < 1e-5 for v in terms.values()), terms
    # SSIM term: 0 when F is the max of the sources, positive otherwise
    clip_ir, clip_vis = ir[:, :, None], vis[:, :, None].expand(-1, 3, -1, -1, -1)
    mx = torch.maximum(ir, vis)[:, :, None]
    _, at_max = loss(clip_ir, clip_vis, mx.expand(-1, 3, -1, -1, -1), {"fused_y": mx})
    _, at_vis = loss(clip_ir, clip_vis, clip_vis, {})
    assert at_max["ssim"].abs() < 1e-5 and at_vis["ssim"] > 0.05
    # gradient term: 0 when F carries the only texture (a flat visible image), positive otherwise
    flat = torch.full_like(vis, 0.4)
    assert gradient_loss(ir, ir, flat) < 1e-8
    assert gradient_loss(flat, ir, flat) > 1e-3
    assert gradient_loss(vis, ir, vis) > 1e-3


def test_pixel_loss_is_eq_2_minimised_by_the_sources_mean():
    ir, vis = _frames(1)
    loss = F3NetLoss()
    clip_ir, clip_vis = ir[:, :, None], vis[:, :, None].expand(-1, 3, -1, -1, -1)

    def pixel(f: torch.Tensor) -> float:
        fused = f[:, :, None]
        return loss(clip_ir, clip_vis, fused.expand(-1, 3, -1, -1, -1), {"fused_y": fused})[1]["pixel"].item()

    mean = 0.5 * (ir + vis)
    expected = ((mean - ir) ** 2).mean() + ((mean - vis) ** 2).mean()
    assert pixel(mean) == pytest.approx(expected.item(), rel=1e-5)
    assert pixel(mean) < pixel(mean + 0.05) and pixel(mean) < pixel(mean - 0.05)
    assert pixel(torch.maximum(ir, vis)) > pixel(mean)


def test_total_uses_the_paper_weights():
    ir, vis = clip(1, 2, 24, 24, seed=2)
    fused = vis.flip(-1)
    total, terms = build_loss("f3net")(ir, vis, fused, {})
    expected = terms["pixel"] + 100 * terms["gradient"] + 10 * terms["ssim"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(v > 0 for v in terms.values())
    with pytest.raises(ValueError):
        F3NetLoss(gradient_reduction="max")


# ---------------------------------------------------------------------------------- engine/checkpoint
def test_engine_streams_f3net_and_a_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_model("f3net", SMALL)
    path = save_checkpoint(model, tmp_path / "f3net.pt", SMALL)
    loaded = load_checkpoint("f3net", path)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    engine = FusionEngine(EngineConfig(model="f3net", checkpoint=str(path), device="cpu"))
    r = np.random.default_rng(0)
    res = engine.push(r.integers(0, 256, (37, 50), dtype=np.uint8), r.integers(0, 256, (37, 50, 3), dtype=np.uint8))
    assert res is not None and res.fused_bgr.shape == (37, 50, 3) and res.model == "f3net"
