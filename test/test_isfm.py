"""ISFM: module contracts (MSE, LFFB, HFFB, MFF, FGG, ISF), the model's shapes/range/gradients/config,
its loss terms, and that the name works through the streaming engine and checkpoints."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ftpfusion_ros.losses import build_loss
from ftpfusion_ros.losses.isfm_loss import ISFMLoss
from ftpfusion_ros.models import build_model, default_config, model_class, model_names
from ftpfusion_ros.models.isfm import FGG, HFFB, ISF, ISFM, LFFB, MFF, MSE
from ftpfusion_ros.nn.colour import rgb_to_ycbcr
from ftpfusion_ros.nn.dwt import dwt2, idwt2
from ftpfusion_ros.runtime import EngineConfig, FusionEngine, load_checkpoint, save_checkpoint
from model_checks import (assert_colour_preserving_max_fusion, assert_gradients_reach_every_parameter,
                           assert_optimisation_lowers_the_loss, clip)

SMALL = {"channels": 8, "shallow_channels": 4, "scan_stride": 4, "d_state": 4}


# ------------------------------------------------------------------------------------------ modules
def test_mse_gives_full_resolution_shallow_and_strided_deep_features():
    torch.manual_seed(0)
    mse = MSE(4, 8, stride=4, num_vss=2, d_state=4, expand=2, dt_rank=1, backend="torch").eval()
    assert len(mse.vss) == 2
    with torch.no_grad():
        shallow, deep = mse(torch.rand(2, 1, 24, 32))
    assert shallow.shape == (2, 4, 24, 32) and deep.shape == (2, 8, 6, 8)


def test_lffb_follows_eq_3_to_6():
    torch.manual_seed(0)
    lffb = LFFB(6).eval()
    a, b = torch.randn(2, 6, 7, 9), torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        out = lffb(a, b)
        x = F.silu(lffb.proj(a + b))                                                         # eq. 3
        pooled = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), 1)
        sigma = torch.sigmoid(lffb.attn.conv(pooled))                                        # eq. 4
        u = F.silu(lffb.pw3(lffb.dw3(x))) + F.silu(lffb.pw5(lffb.dw5(x)))                    # eq. 5
        torch.testing.assert_close(out, F.silu(lffb.out(u * sigma + x)))                     # eq. 6
    assert lffb.dw3.groups == 6 and lffb.dw5.kernel_size == (5, 5)


def test_hffb_follows_eq_7_to_10_and_enhances_only_edges():
    torch.manual_seed(0)
    hffb = HFFB(6).eval()
    a, b = torch.randn(2, 6, 7, 9), torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        out = hffb(a, b)
        x = F.silu(hffb.proj(a + b))
        s1 = F.silu(hffb.s1(x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)))
        s2 = F.silu(hffb.s2(x - F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)))
        torch.testing.assert_close(out, F.silu(hffb.out(s1 + s2 + x)))
        # a spatially constant input has no edges: x - pool(x) is 0 everywhere, borders included,
        # so the output is constant too
        flat = hffb(torch.ones(1, 6, 7, 9) * 0.3, torch.zeros(1, 6, 7, 9))
    assert (flat - flat[..., :1, :1]).abs().max() < 1e-6


def test_mff_splits_with_the_dwt_and_returns_to_the_spatial_domain():
    torch.manual_seed(0)
    mff = MFF(4).eval()
    f_ir, f_vis = torch.randn(2, 4, 8, 10), torch.randn(2, 4, 8, 10)
    with torch.no_grad():
        f_fre, bands = mff(f_ir, f_vis)
        ll_i, lh_i, hl_i, hh_i = dwt2(f_ir)
        ll_v, lh_v, hl_v, hh_v = dwt2(f_vis)
        torch.testing.assert_close(bands[0], mff.lffb(ll_i, ll_v))
        hf = mff.hffb(torch.cat((lh_i, hl_i, hh_i), 1), torch.cat((lh_v, hl_v, hh_v), 1))
        torch.testing.assert_close(torch.cat(bands[1:], 1), hf)
        torch.testing.assert_close(f_fre, mff.to_spatial(idwt2(*bands)))
    assert f_fre.shape == f_ir.shape and all(b.shape == (2, 4, 4, 5) for b in bands)


def test_fgg_gates_depend_on_both_spatial_features_and_global_frequency_statistics():
    torch.manual_seed(0)
    fgg = FGG(channels=4, d_inner=8).eval()
    z_ir, z_vis = torch.randn(2, 6, 8, 8), torch.randn(2, 6, 8, 8)
    bands = tuple(torch.randn(2, 4, 3, 4) for _ in range(4))
    with torch.no_grad():
        g_ir, g_vis = fgg(z_ir, z_vis, bands)
        assert g_ir.shape == g_vis.shape == (2, 6, 8, 8)
        # eq. 16: frequency guidance is a global statistic; shuffling positions inside a band does not
        # change it, but changing the band's content does
        perm = torch.randperm(12)  # the same for every band: positions move, the bands stay paired
        shuffled = tuple(b.flatten(2)[..., perm].view_as(b) for b in bands)
        torch.testing.assert_close(fgg(z_ir, z_vis, shuffled)[0], g_ir, atol=1e-5, rtol=1e-5)
        changed = (bands[0] + 1.0,) + bands[1:]
        assert (fgg(z_ir, z_vis, changed)[0] - g_ir).abs().max() > 1e-4
        assert (fgg(z_ir, z_vis + 1.0, bands)[0] - g_ir).abs().max() > 1e-4
        # eq. 17-18 by hand
        z_global = fgg.z_norm(fgg.z_proj(torch.cat((z_ir, z_vis), -1)))
        f_f = torch.cat((bands[0], bands[1] + bands[2] + bands[3]), 1).permute(0, 2, 3, 1)
        z_g = fgg.freq_fc(f_f).mean((1, 2), keepdim=True) * z_global + z_global
        torch.testing.assert_close(g_vis, fgg.gate_vis(z_g[..., 8:]))


def test_isf_residual_scales_and_gated_fusion_eq_14():
    torch.manual_seed(0)
    isf = ISF(4, d_state=4, expand=2, dt_rank=1, backend="torch").eval()
    f_ir, f_vis = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    bands = tuple(torch.randn(1, 4, 3, 3) for _ in range(4))
    with torch.no_grad():
        isf.s1.fill_(0.5)
        isf.s2.fill_(2.0)
        isf.out.weight.zero_()  # no Mamba path: only the scaled residuals remain
        torch.testing.assert_close(isf(f_ir, f_vis, bands), 0.5 * f_ir + 2.0 * f_vis)


# ------------------------------------------------------------------------------------------ the model
def test_registry_config_and_constructor_agree():
    cls = model_class("isfm")
    assert "isfm" in model_names()
    assert cls is ISFM and cls.learned and not cls.temporal
    cfg = default_config("isfm")
    assert set(cfg) == set(inspect.signature(ISFM.__init__).parameters) - {"self"}
    assert cfg["expand"] == 2  # the paper's eta
    model = build_model("isfm")
    assert model.window == 1 and model.size_multiple == 2 * cfg["scan_stride"]
    assert 8 <= cfg["d_state"] <= 16
    small = build_model("isfm", SMALL)
    assert small.size_multiple == 8
    with pytest.raises(ValueError):
        build_model("isfm", {"depth": 3})
    with pytest.raises(ValueError):
        build_model("isfm", {"input_skip": "median"})
    with pytest.raises(ValueError):
        build_model("isfm", {"scan_backend": "cuda"})


def test_output_shape_range_and_untrained_output_is_a_colour_preserving_max_fusion():
    torch.manual_seed(0)
    model = build_model("isfm", SMALL).eval()
    ir, vis = clip(2, 2, 32, 48)
    with torch.no_grad():
        out = model(ir, vis)
    assert out.shape == (2, 3, 2, 32, 48)
    assert_colour_preserving_max_fusion(out, ir, vis, luma_tol=0.03, chroma_tol=0.02)
    with pytest.raises(ValueError, match="divisible"):
        model.fuse_frame(ir[:, :, 0, :30], vis[:, :, 0, :30])


def test_frames_of_a_batch_are_fused_independently():
    torch.manual_seed(0)
    model = build_model("isfm", SMALL).eval()
    ir, vis = clip(2, 1, 16, 24)
    with torch.no_grad():
        both = model.fuse_frame(ir[:, :, 0], vis[:, :, 0])
        one = model.fuse_frame(ir[1:, :, 0], vis[1:, :, 0])
    torch.testing.assert_close(both[1:], one, atol=1e-5, rtol=0)


def test_forward_train_equals_forward_and_returns_the_fused_luminance():
    torch.manual_seed(0)
    model = build_model("isfm", SMALL).eval()
    ir, vis = clip(2, 3, 16, 24)
    with torch.no_grad():
        fused, aux = model.forward_train(ir, vis)
        torch.testing.assert_close(fused, model(ir, vis), atol=1e-5, rtol=0)
    assert set(aux) == {"fused_y"} and aux["fused_y"].shape == (2, 1, 3, 16, 24)
    inside = ((fused > 1e-4) & (fused < 1 - 1e-4)).all(1, keepdim=True)
    assert inside.float().mean() > 0.5
    assert (rgb_to_ycbcr(fused)[:, :1] - aux["fused_y"]).abs()[inside].max() < 1e-4


def test_gradients_reach_every_parameter_through_the_paper_loss():
    terms = assert_gradients_reach_every_parameter("isfm", SMALL, *clip(2, 1, 32, 32))
    assert set(terms) == {"content", "intensity", "gradient", "ssim"}


def test_two_optimisation_steps_lower_the_loss_on_a_fixed_batch():
    assert_optimisation_lowers_the_loss("isfm", SMALL, *clip(2, 1, 32, 32, seed=4))


# ------------------------------------------------------------------------------------------- loss
def test_loss_is_zero_when_everything_is_the_same_image():
    img = clip(1, 2, 24, 24)[0]
    vis = img.expand(-1, 3, -1, -1, -1)
    total, terms = ISFMLoss()(img, vis, vis, {"fused_y": img})
    assert total.abs() < 1e-4 and all(v.abs() < 1e-4 for v in terms.values())


def test_loss_terms_prefer_max_intensity_and_sharp_gradients():
    ir, vis = clip(1, 1, 32, 32, seed=1)
    vis_y = rgb_to_ycbcr(vis)[:, :1]
    loss = ISFMLoss()
    sharp = torch.maximum(ir, vis_y)
    _, t_max = loss(ir, vis, vis, {"fused_y": sharp})
    _, t_mean = loss(ir, vis, vis, {"fused_y": 0.5 * (ir + vis_y)})
    assert t_max["intensity"] < 1e-6 < t_mean["intensity"]
    blurred = F.avg_pool3d(sharp, (1, 5, 5), stride=1, padding=(0, 2, 2), count_include_pad=False)
    _, t_blur = loss(ir, vis, vis, {"fused_y": blurred})
    assert t_blur["gradient"] > t_max["gradient"]
    # eq. 20: the content term is minimised anywhere between the sources, e.g. both extremes
    _, t_ir = loss(ir, vis, vis, {"fused_y": ir})
    _, t_vis = loss(ir, vis, vis, {"fused_y": vis_y})
    torch.testing.assert_close(t_ir["content"], t_vis["content"])
    # total is the paper's weighting (1, 5, 5, 0.5); without aux it uses the fused RGB's luminance
    total, t = loss(ir, vis, vis, {})
    expected = t["content"] + 5 * t["intensity"] + 5 * t["gradient"] + 0.5 * t["ssim"]
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(t["content"], t_vis["content"])


# ---------------------------------------------------------------------------------- engine/checkpoint
def test_engine_streams_isfm_at_an_odd_size_and_a_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_model("isfm", SMALL)
    path = save_checkpoint(model, tmp_path / "isfm.pt", SMALL)
    loaded = load_checkpoint("isfm", path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    engine = FusionEngine(EngineConfig(model="isfm", checkpoint=str(path), device="cpu"))
    r = np.random.default_rng(0)
    res = engine.push(r.integers(0, 256, (37, 50), dtype=np.uint8), r.integers(0, 256, (37, 50, 3), dtype=np.uint8))
    assert res is not None and res.fused_bgr.shape == (37, 50, 3) and res.fused_bgr.dtype == np.uint8
    assert res.model == "isfm"


def test_training_config_loads_and_fits_the_model():
    from pathlib import Path

    from ftpfusion_ros.training.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "train" / "isfm.yaml")
    assert cfg.model == "isfm" and cfg.data.val_sequences == ["0111_1716"] and cfg.data.clip_len == 1
    model = build_model("isfm", cfg.model_config)
    for patch in (cfg.curriculum.patch_small, cfg.curriculum.patch_large):
        assert patch % model.size_multiple == 0
    build_loss("isfm", cfg.loss)
