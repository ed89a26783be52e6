"""RPFNet: module contracts (CPM, RPM, FDFM), the model's shapes/range/gradients/config, its loss terms,
and that the name works through the streaming engine and checkpoints."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from ftpfusion_ros.losses import build_loss
from ftpfusion_ros.losses.rpfnet_loss import (RPFNetLoss, adaptive_weight, frequency_contrastive,
                                              saliency_structure)
from ftpfusion_ros.models import build_model, default_config, model_class
from ftpfusion_ros.models.rpfnet import CPM, FDFM, RPM, ConvBN, RPFNet
from ftpfusion_ros.nn.colour import rgb_to_ycbcr
from ftpfusion_ros.runtime import EngineConfig, FusionEngine, load_checkpoint, save_checkpoint
from model_checks import (assert_colour_preserving_max_fusion, assert_gradients_reach_every_parameter,
                           assert_optimisation_lowers_the_loss, clip)

SMALL = {"channels": 8, "stages": 2}


def hot_target_scene(h: int = 48, w: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """(1,1,H,W) IR with a hot square on a cool background; visible luminance textured, dark on the square."""
    g = torch.Generator().manual_seed(0)
    ir = 0.2 + 0.05 * torch.rand(1, 1, h, w, generator=g)
    vis = 0.5 + 0.2 * torch.rand(1, 1, h, w, generator=g)
    ir[..., 16:26, 16:26] = 0.9
    vis[..., 16:26, 16:26] = 0.1
    return ir, vis


# ------------------------------------------------------------------------------------------ modules
@pytest.mark.parametrize("act", ["relu", "sigmoid", "none"])
def test_conv_block_folds_batchnorm_in_eval_exactly(act):
    torch.manual_seed(0)
    block = ConvBN(3, 5, 3, act)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        block.bn.running_mean.uniform_(-1, 1)
        block.bn.running_var.uniform_(0.5, 2)
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 9, 11)
    block.eval()
    ref = block.bn(block.conv(x))
    ref = {"relu": torch.relu, "sigmoid": torch.sigmoid, "none": lambda v: v}[act](ref)
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)


def test_cpm_follows_eq_1_and_2():
    torch.manual_seed(0)
    cpm = CPM(6).eval()
    f_f, f_r = torch.randn(2, 6, 11, 13), torch.randn(2, 6, 11, 13)
    with torch.no_grad():
        f_hat, r_hat = cpm(f_f, f_r)
        att = cpm.attention(f_r)
        assert f_hat.shape == r_hat.shape == f_f.shape
        assert att.shape == f_f.shape and att.min() > 0 and att.max() < 1
        torch.testing.assert_close(r_hat, cpm.to_residual(f_f) + f_r)       # eq. 1: skip from F_R
        torch.testing.assert_close(f_hat, att * f_f + f_f)                   # eq. 2: residual attention
        assert (r_hat - f_r).min() >= 0  # the added context passed a ReLU


def test_rpm_is_a_sum_of_dilated_convs_of_the_attended_residual():
    torch.manual_seed(0)
    rpm = RPM(6, [1, 3, 5], reduction=2, sa_kernel=7).eval()
    assert [c.dilation for c in rpm.dconvs] == [(1, 1), (3, 3), (5, 5)]
    x = torch.randn(2, 6, 15, 17)
    with torch.no_grad():
        out = rpm(x)
        att = rpm.sa(rpm.ca(x))
        ref = sum(conv(att) for conv in rpm.dconvs)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (9, 30)])
def test_fdfm_fft_path_is_real_same_shape_and_global(size):
    torch.manual_seed(0)
    fdfm = FDFM(4).eval()
    x = torch.rand(2, 4, *size)
    with torch.no_grad():
        spec = fdfm.spectral(x)
        out = fdfm(x)
        assert spec.shape == x.shape and spec.dtype == x.dtype and not spec.is_complex()
        assert out.shape == x.shape
        torch.testing.assert_close(out, fdfm.spatial(x) + fdfm.spectral(fdfm.spatial(x)))  # eq. 4
        # one changed pixel changes the frequency path's output at the far corner: a global mixer
        x2 = x.clone()
        x2[:, :, 0, 0] += 1.0
        far = (fdfm.spectral(x2) - spec)[:, :, -1, -1]
    assert far.abs().max() > 1e-6


def test_fdfm_runs_in_float32_under_autocast():
    fdfm = FDFM(4).eval()
    x = torch.rand(1, 4, 13, 21)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        spec = fdfm.spectral(x.bfloat16())
    assert spec.dtype == torch.bfloat16 and spec.shape == x.shape and torch.isfinite(spec.float()).all()


# ------------------------------------------------------------------------------------------ the model
def test_registry_config_and_constructor_agree():
    cls = model_class("rpfnet")
    assert cls is RPFNet and cls.learned and not cls.temporal
    cfg = default_config("rpfnet")
    assert set(cfg) == set(inspect.signature(RPFNet.__init__).parameters) - {"self"}
    assert cfg["stages"] == 3 and cfg["dilations"] == [1, 3, 5]  # the paper's N and rates
    model = build_model("rpfnet")
    assert model.window == 1 and model.size_multiple == 1
    assert len(build_model("rpfnet", SMALL).stages) == 2
    with pytest.raises(ValueError):
        build_model("rpfnet", {"depth": 3})
    with pytest.raises(ValueError):
        build_model("rpfnet", {"input_skip": "median"})


def test_output_shape_range_odd_size_and_untrained_output_is_a_colour_preserving_max_fusion():
    torch.manual_seed(0)
    model = build_model("rpfnet", SMALL).eval()
    ir, vis = clip(2, 2, 33, 47)
    with torch.no_grad():
        out = model(ir, vis)
    assert out.shape == (2, 3, 2, 33, 47)
    assert_colour_preserving_max_fusion(out, ir, vis, luma_tol=0.02, chroma_tol=0.02)


def test_forward_train_equals_forward_and_returns_the_aux_decoder_output():
    torch.manual_seed(0)
    model = build_model("rpfnet", SMALL).eval()
    ir, vis = clip(2, 3, 24, 32)
    with torch.no_grad():
        fused, aux = model.forward_train(ir, vis)
        torch.testing.assert_close(fused, model(ir, vis), atol=1e-5, rtol=0)
    assert set(aux) == {"fused_y", "residual"}
    assert aux["residual"].shape == aux["fused_y"].shape == (2, 1, 3, 24, 32)
    assert aux["residual"].abs().max() <= 1  # tanh, like M = IR - VIS_Y
    # fused_y is the luminance before colour restoration: equal wherever the RGB was not clamped to [0, 1]
    inside = ((fused > 1e-4) & (fused < 1 - 1e-4)).all(1, keepdim=True)
    assert inside.float().mean() > 0.5
    diff = (rgb_to_ycbcr(fused)[:, :1] - aux["fused_y"]).abs()
    assert diff[inside].max() < 1e-4


def test_gradients_reach_every_parameter_through_the_paper_loss():
    terms = assert_gradients_reach_every_parameter("rpfnet", SMALL, *clip(2, 2, 32, 40))
    assert set(terms) == {"ss", "ss_grad", "ss_reg", "contrast", "ssim"}


def test_two_optimisation_steps_lower_the_loss_on_a_fixed_batch():
    assert_optimisation_lowers_the_loss("rpfnet", SMALL, *clip(1, 2, 24, 24, seed=4))


# ------------------------------------------------------------------------------------------- losses
def test_adaptive_weight_marks_the_hot_target_and_is_binary():
    ir, vis = hot_target_scene()
    w = adaptive_weight(ir, vis - ir)
    assert set(w.unique().tolist()) <= {0.0, 1.0} and not w.requires_grad
    assert w[..., 16:26, 16:26].min() == 1 and w[..., 32:, 32:].max() == 0
    # the literal sign (M = IR - VIS_Y) masks the target out: the reason for the default choice
    assert adaptive_weight(ir, ir - vis)[..., 16:26, 16:26].max() == 0
    # a constant IR and residual have no salient region
    assert adaptive_weight(torch.full((1, 1, 8, 8), 0.3), torch.zeros(1, 1, 8, 8)).max() == 0


def test_frequency_contrastive_loss_is_zero_at_the_weighted_composite_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    ir, vis = torch.rand(2, 1, 20, 25, generator=g), torch.rand(2, 1, 20, 25, generator=g)
    w = (torch.rand(2, 1, 20, 25, generator=g) > 0.7).float()
    composite = ir * w + vis * (1 - w)
    assert frequency_contrastive(composite, ir, vis, w) < 1e-6
    for other in (ir, vis, 0.5 * (ir + vis)):
        assert frequency_contrastive(other, ir, vis, w) > 0.05
    assert frequency_contrastive(ir, ir, vis, w) != frequency_contrastive(ir, ir, vis, w, literal_negatives=True)


def test_saliency_structure_terms():
    ir, vis = hot_target_scene()
    lambda1 = 0.3
    # M' with IR's gradients: the alignment term vanishes, leaving the (negative) texture reward
    l_grad, l_reg = saliency_structure(ir.clone().requires_grad_(), ir, vis, lambda1)
    assert l_grad < 0 and l_reg < 0
    # a response on the hot region lowers L_reg; no response leaves it ~0
    hot = torch.zeros_like(ir)
    hot[..., 16:26, 16:26] = 1.0
    _, reg_hot = saliency_structure(hot, ir, vis, lambda1)
    _, reg_none = saliency_structure(torch.zeros_like(ir), ir, vis, lambda1)
    assert reg_hot < reg_none and reg_none.abs() < 1e-5
    # gradients that differ from IR's cost more than matching ones
    flat_grad, _ = saliency_structure(torch.zeros_like(ir), ir, vis, lambda1)
    assert flat_grad > l_grad


def test_ssim_term_is_zero_for_identical_images_and_ss_term_needs_the_aux_decoder():
    img = clip(1, 2, 24, 24)[0]
    vis = img.expand(-1, 3, -1, -1, -1)
    aux = {"residual": torch.zeros_like(img), "fused_y": img}
    _, terms = RPFNetLoss()(img, vis, vis, aux)
    assert terms["ssim"].abs() < 1e-5
    _, terms2 = RPFNetLoss()(img, vis, vis * 0.5, {"residual": torch.zeros_like(img)})
    assert terms2["ssim"] > 0.01
    # without the auxiliary decoder's output (plain forward): the fusion loss L_F alone
    full, with_ss = RPFNetLoss()(img, vis, vis * 0.5, {"residual": torch.zeros_like(img)})
    fusion_only, without = RPFNetLoss()(img, vis, vis * 0.5, {})
    assert set(without) == {"contrast", "ssim"} and "ss" in with_ss
    assert fusion_only.item() == pytest.approx((full - with_ss["ss"]).item(), abs=1e-5)
    with pytest.raises(ValueError):
        build_loss("rpfnet", {"weight_residual": "abs"})


# ---------------------------------------------------------------------------------- engine/checkpoint
def test_engine_streams_rpfnet_and_a_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_model("rpfnet", SMALL)
    path = save_checkpoint(model, tmp_path / "rpfnet.pt", SMALL)
    loaded = load_checkpoint("rpfnet", path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    engine = FusionEngine(EngineConfig(model="rpfnet", checkpoint=str(path), device="cpu"))
    r = np.random.default_rng(0)
    res = engine.push(r.integers(0, 256, (37, 50), dtype=np.uint8), r.integers(0, 256, (37, 50, 3), dtype=np.uint8))
    assert res is not None and res.fused_bgr.shape == (37, 50, 3) and res.fused_bgr.dtype == np.uint8
    assert res.model == "rpfnet"
