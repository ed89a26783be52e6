"""FTPFusion: each module's contract, the streaming contract, shapes, range, gradients and config."""
from __future__ import annotations

import inspect
import math

import pytest
import torch

from ftpfusion_ros.models import build_model, default_config, model_class
from ftpfusion_ros.models.ftpfusion import FTPFusion
from ftpfusion_ros.nn.block_attention import (
    SparseCrossModalAttention,
    blockify,
    num_selected,
    pad_to_multiple,
    unblockify,
)
from ftpfusion_ros.nn.colour import rgb_to_ycbcr, ycbcr_to_rgb
from ftpfusion_ros.nn.frequency import FrequencySplit, box_smooth
from ftpfusion_ros.nn.lowfreq import LFPM, LTCM, conv1d_tokens
from model_checks import clip

SMALL = {"channels": [8, 16, 32]}


# ------------------------------------------------------------------------------------ frequency split
def test_frequency_split_is_exact_and_matches_the_box_filter_definition():
    torch.manual_seed(0)
    split = FrequencySplit(6, (3, 5, 7))
    with torch.no_grad():
        split.logits.copy_(torch.tensor([0.3, -1.0, 0.7]))
    x = torch.randn(2, 6, 19, 26)
    lf, hf = split(x)
    torch.testing.assert_close(lf + hf, x, atol=1e-6, rtol=0)
    w = torch.softmax(split.logits.detach(), 0)
    ref = sum(wk * box_smooth(x, k) for wk, k in zip(w, (3, 5, 7)))
    torch.testing.assert_close(lf, ref, atol=1e-5, rtol=0)
    # channels-last input gives the same numbers
    lf_cl, _ = split(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(lf_cl, lf, atol=1e-6, rtol=0)
    # init: logits 0 -> equal weights; a constant map is all LF
    assert torch.allclose(FrequencySplit(3).weights(), torch.full((3,), 1 / 3))
    lf_c, hf_c = FrequencySplit(2)(torch.full((1, 2, 9, 9), 0.7))
    assert hf_c.abs().max() < 1e-6


def test_frequency_split_rejects_maps_too_small_for_reflection():
    with pytest.raises(ValueError, match="too small"):
        FrequencySplit(2)(torch.zeros(1, 2, 3, 10))


# ----------------------------------------------------------------------------------------------- LFPM
def _lf_window(t: int, c: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, 12, 14, generator=g) + 0.3 * i for i in range(t)]


def test_lfpm_perturbs_only_in_training_and_keeps_the_temporal_mean():
    torch.manual_seed(0)
    lfpm = LFPM(8, groups=4, max_shift=1, prob=0.5)
    lf = _lf_window(5)
    targets = list(range(5))
    mean_in = torch.stack(lf).mean(0)

    lfpm.eval()
    out_a, tok_a = lfpm(lf, targets)
    out_b, _ = lfpm(lf, targets)
    for a, b in zip(out_a, out_b):  # eval: deterministic
        assert torch.equal(a, b)
    torch.testing.assert_close(torch.stack(out_a).mean(0), mean_in, atol=1e-5, rtol=0)
    # the returned tokens are exactly the outputs' spatial means (LTCM relies on that)
    torch.testing.assert_close(tok_a, torch.stack([o.mean((-2, -1)) for o in out_a], 1), atol=1e-5, rtol=0)
    # the enhancement does change frames (it is not the identity)
    assert max((a - x).abs().max().item() for a, x in zip(out_a, lf)) > 1e-3

    lfpm.train()
    torch.manual_seed(1)
    out_t, tok_t = lfpm(lf, targets)
    torch.testing.assert_close(torch.stack(out_t).mean(0), mean_in, atol=1e-5, rtol=0)
    torch.testing.assert_close(tok_t, torch.stack([o.mean((-2, -1)) for o in out_t], 1), atol=1e-5, rtol=0)
    assert max((a - b).abs().max().item() for a, b in zip(out_t, out_a)) > 1e-3  # perturbed
    # probability 0 -> training output equals eval output (the perturbation is the only difference)
    lfpm.prob = 0.0
    out_p0, _ = lfpm(lf, targets)
    for a, b in zip(out_p0, out_a):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_lfpm_shift_is_grouped_non_circular_and_symmetric():
    torch.manual_seed(0)
    lfpm = LFPM(8, groups=4, max_shift=1, prob=1.0, strength_init=1.0).train()
    t = 5
    # frame i holds the value i everywhere: a shift by s reads frame clamp(i - s)
    lf = [torch.full((64, 8, 2, 2), float(i)) for i in range(t)]
    w = torch.ones(64, t, 8)
    out = torch.stack(lfpm.perturb(lf, w), 1)[..., 0, 0]  # (B, T, C)
    delta = out - torch.arange(t, dtype=torch.float32).view(1, t, 1)
    for b in range(64):
        for grp in range(4):
            d = delta[b, :, 2 * grp : 2 * grp + 2]
            assert torch.equal(d[:, 0], d[:, 1])  # one shift per channel group
            s = -d[2, 0].item()  # interior frame: value i - s
            assert s in (-1.0, 1.0)  # prob 1 -> always shifted by +-1
            edge = t - 1 if s < 0 else 0  # non-circular: the frame at the edge is replicated
            assert d[edge, 0].item() == 0.0
    signs = -delta[:, 2, ::2]
    assert 0.3 < (signs > 0).float().mean().item() < 0.7  # symmetric


@pytest.mark.parametrize("cin,cout,k,groups", [(6, 4, 3, 1), (8, 4, 3, 2), (6, 6, 3, 6), (4, 8, 1, 2), (5, 3, 5, 1)])
def test_token_conv1d_matches_conv1d(cin, cout, k, groups):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(cin, cout, k, padding=k // 2, groups=groups)
    for t in (1, 2, 5):
        x = torch.randn(3, t, cin)
        ref = conv(x.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(conv1d_tokens(conv, x), ref, atol=1e-6, rtol=0)


def test_lfpm_keeps_modalities_independent():
    torch.manual_seed(0)
    lfpm = LFPM(4, groups=2, modalities=2).eval()
    lf = _lf_window(4, c=8)
    out, _ = lfpm(lf, [1, 3])
    lf2 = [x.clone() for x in lf]
    for x in lf2:
        x[:, 4:] += torch.randn_like(x[:, 4:])  # change the second modality only
    out2, _ = lfpm(lf2, [1, 3])
    for a, b in zip(out, out2):
        torch.testing.assert_close(a[:, :4], b[:, :4])
        assert (a[:, 4:] - b[:, 4:]).abs().max() > 1e-3


def test_lfpm_and_ltcm_handle_a_single_frame():
    lfpm = LFPM(8).train()
    lf = _lf_window(1)
    out, tok = lfpm(lf, [0])
    torch.testing.assert_close(out[0], lf[0])  # T = 1: no perturbation, mean preserved -> identity
    ctx, gates = LTCM(4).context(tok)
    assert ctx.shape == (2, 1, 4) and gates.shape == (2, 1, 8)


def test_ltcm_gates_start_near_one_and_fuse_between_modalities():
    ltcm = LTCM(8)
    tok = torch.randn(2, 5, 16)
    ctx, gates = ltcm.context(tok)
    assert ctx.shape == (2, 5, 8) and gates.shape == (2, 5, 16)
    assert (gates - 1).abs().max() < 0.3
    lf = torch.cat((torch.zeros(2, 8, 6, 6), torch.ones(2, 8, 6, 6)), 1)  # [IR ; visible]
    fused = ltcm.fuse(lf, torch.ones(2, 16))
    assert fused.shape == (2, 8, 6, 6)
    assert fused.min() >= 0 and fused.max() <= 1  # a convex, spatially gated mix
    assert 0 < fused.mean() < 1


# ----------------------------------------------------------------------------------------------- SCAM
def test_blockify_roundtrip_and_selection_count():
    x = torch.randn(2, 5, 16, 24)
    blk = blockify(x, 8)
    assert blk.shape == (2, 6, 64, 5)
    assert torch.equal(blk[0, 1, :, 0], x[0, 0, :8, 8:16].reshape(-1))  # row-major blocks
    assert torch.equal(unblockify(blk, 2, 3, 8), x)
    assert num_selected(0.25, 300) == 75 and num_selected(0.1, 30) == 3 and num_selected(0.5, 7) == 4
    assert num_selected(0.01, 5) == 1 and num_selected(1.0, 9) == 9
    assert pad_to_multiple(torch.zeros(1, 1, 9, 17), 8).shape[-2:] == (16, 24)
    # SCAM's direct block gather equals blocking the whole (padded) map and picking blocks
    scam = SparseCrossModalAttention(4, block_size=8)
    for b in (1, 2):
        hf = torch.randn(b, 8, 20, 28).contiguous(memory_format=torch.channels_last)
        idx = torch.tensor([[0, 5, 11], [2, 3, 7]])[:b]
        ref = torch.stack([blockify(pad_to_multiple(hf, 8), 8)[i, idx[i]] for i in range(b)])
        assert torch.equal(scam._gather_blocks({"hf": hf}, idx), ref)


@pytest.mark.parametrize("rho", [0.25, 0.5, 0.75])
def test_scam_selects_ceil_rho_n_blocks_and_leaves_the_others_untouched(rho):
    torch.manual_seed(0)
    c, p = 8, 8
    scam = SparseCrossModalAttention(c, heads=2, block_size=p, rho=rho, window=5).eval()
    h, w = 20, 28  # not multiples of p: padded to 24 x 32 internally -> 3 x 4 = 12 blocks
    n_blocks = 12
    g = torch.Generator().manual_seed(0)
    frames = []
    hot = [(0, 1), (1, 2), (1, 0)]  # (row, col) blocks with strong HF energy (full blocks inside 20 x 28)
    for _ in range(3):
        hf = 0.01 * torch.randn(2, 2 * c, h, w, generator=g)  # [IR ; visible]
        for r, cc in hot:
            hf[:, :c, r * p : r * p + p, cc * p : cc * p + p] += torch.randn(2, c, p, p, generator=g)
        frames.append(scam.prepare(hf))
    with torch.no_grad():
        out_ir, out_vis, idx = scam.attend(frames, [2])
    k = math.ceil(rho * n_blocks)
    assert idx.shape == (2, k)
    for b in range(2):
        chosen = set(idx[b].tolist())
        assert len(chosen) == k
        assert {r * 4 + cc for r, cc in hot} <= chosen  # the most active blocks are selected
    for out, src in ((out_ir[0], frames[2]["hf"][:, :c]), (out_vis[0], frames[2]["hf"][:, c:])):
        assert out.shape == src.shape
        changed = (out != src).flatten(1)  # (B, C*H*W)
        mask = torch.zeros(2, 24, 32, dtype=torch.bool)
        for b in range(2):
            for n in idx[b].tolist():
                r, cc = divmod(n, 4)
                mask[b, r * p : r * p + p, cc * p : cc * p + p] = True
        mask = mask[:, :h, :w].unsqueeze(1).expand(-1, c, -1, -1).flatten(1)
        assert not changed[~mask].any()  # unselected blocks: bit-identical (no attention)
        assert changed[mask].float().mean() > 0.9  # selected blocks: updated by attention
    # the fast forward (token changes scattered through the linear fusion) equals fusing the written-back
    # maps with the local branch
    with torch.no_grad():
        full = scam(frames, [2])[0]
        ref = scam.fuse(torch.cat((out_ir[0], out_vis[0], scam.local(frames, 2)), 1))
    assert full.shape == (2, c, h, w)
    torch.testing.assert_close(full, ref, atol=1e-5, rtol=0)


def test_scam_attention_reads_the_other_modality_over_the_whole_window():
    torch.manual_seed(0)
    scam = SparseCrossModalAttention(8, heads=2, block_size=8, rho=1.0, window=3, kv_pool=2).eval()
    g = torch.Generator().manual_seed(1)
    frames = [scam.prepare(torch.randn(1, 16, 16, 16, generator=g)) for _ in range(3)]
    with torch.no_grad():
        ref_ir, ref_vis, _ = scam.attend(frames, [2])
        # change the *visible* HF of frame 0 only: the IR output of frame 2 must change (cross-modal,
        # cross-frame keys) while the visible output stays (it queries IR keys only); rho = 1 keeps the
        # same selection
        hf0 = frames[0]["hf"].clone()
        hf0[:, 8:] = torch.randn(1, 8, 16, 16, generator=g)
        frames2 = [scam.prepare(hf0)] + frames[1:]
        new_ir, new_vis, _ = scam.attend(frames2, [2])
    assert (new_ir[0] - ref_ir[0]).abs().max() > 1e-4
    torch.testing.assert_close(new_vis[0], ref_vis[0])


# ------------------------------------------------------------------------------------------ the model
def test_scam_inference_weight_cache_follows_parameter_changes():
    torch.manual_seed(0)
    scam = SparseCrossModalAttention(8, heads=1, block_size=8, rho=0.5, window=3).eval()
    hf = [torch.randn(1, 16, 16, 24) for _ in range(2)]
    with torch.no_grad():
        a = scam([scam.prepare(x) for x in hf], [1])[0]
        state = {k: v.clone() for k, v in scam.state_dict().items()}
        state["vis.kv.weight"] += 0.5
        scam.load_state_dict(state)
        b = scam([scam.prepare(x) for x in hf], [1])[0]
    with torch.enable_grad():  # the uncached path gives the same numbers
        c = scam([scam.prepare(x) for x in hf], [1])[0]
    assert (a - b).abs().max() > 1e-4
    torch.testing.assert_close(b, c.detach(), atol=1e-6, rtol=0)


def test_registry_config_and_constructor_agree():
    cls = model_class("ftpfusion")
    assert cls is FTPFusion and cls.learned and cls.temporal
    cfg = default_config("ftpfusion")
    params = set(inspect.signature(FTPFusion.__init__).parameters) - {"self"}
    assert set(cfg) == params  # every constant lives in the YAML file and nothing else is accepted
    model = build_model("ftpfusion")
    assert model.window == cfg["window"] == 9 and model.net_window == cfg["net_window"] == 5
    assert model.size_multiple == 8
    small = build_model("ftpfusion", SMALL)
    assert small.dfam[0].channels == 8 and small.dfam[2].channels == 32
    with pytest.raises(ValueError):
        build_model("ftpfusion", {"rho": [0.5, 0.5]})


def test_output_shape_range_and_untrained_output_is_a_colour_preserving_fusion():
    torch.manual_seed(0)
    model = build_model("ftpfusion", {**SMALL, "stabiliser": False}).eval()
    ir, vis = clip(2, 3, 48, 64)
    with torch.no_grad():
        out = model(ir, vis)
    assert out.shape == (2, 3, 3, 48, 64)
    assert out.min() >= 0 and out.max() <= 1
    ycc_out, ycc_vis = rgb_to_ycbcr(out), rgb_to_ycbcr(vis)
    base = torch.maximum(ir, ycc_vis[:, :1])
    assert (ycc_out[:, :1] - base).abs().mean() < 0.02  # close to the max-luminance fusion
    assert (ycc_out[:, 1:] - ycc_vis[:, 1:]).abs().mean() < 0.02  # chroma of the visible image


def test_output_composition_follows_the_project_colour_convention():
    model = build_model("ftpfusion", {**SMALL, "stabiliser": False})
    g = torch.Generator().manual_seed(0)
    ir, vis = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    res = 0.3 * torch.randn(2, 3, 8, 8, generator=g)
    ycc = rgb_to_ycbcr(vis)
    base = torch.maximum(ir, ycc[:, :1]).clamp(1e-3, 1 - 1e-3)
    y = torch.sigmoid(torch.logit(base) + res[:, :1])
    ref = ycbcr_to_rgb(torch.cat((y, ycc[:, 1:] + res[:, 1:]), 1)).clamp(0, 1)
    rgb, y = model._compose(torch.maximum(ir, ycc[:, :1]), vis, res)
    torch.testing.assert_close(rgb, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(y, torch.sigmoid(torch.logit(base) + res[:, :1]), atol=1e-6, rtol=0)


def test_stabiliser_is_an_exact_no_op_on_a_static_clip():
    """Identical frames: unit gains, zero shifts and equal frames, so the output is the plain model's."""
    torch.manual_seed(0)
    ir, vis = clip(1, 1, 48, 64)
    ir, vis = ir.expand(-1, -1, 6, -1, -1), vis.expand(-1, -1, 6, -1, -1)
    on = build_model("ftpfusion", SMALL).eval()
    off = build_model("ftpfusion", {**SMALL, "stabiliser": False}).eval()
    off.load_state_dict(on.state_dict())  # the stabiliser has no weights: same state_dict keys
    with torch.no_grad():
        torch.testing.assert_close(on(ir, vis), off(ir, vis), atol=2e-5, rtol=0)


def test_network_sub_windows_cover_long_clips_and_streaming_rings():
    """window (ring) 9, net_window 5: a 9-frame forward decodes each target from a 5-frame sub-window."""
    torch.manual_seed(0)
    model = build_model("ftpfusion", {**SMALL, "window": 9, "net_window": 5}).eval()
    ir, vis = clip(1, 9, 32, 48)
    with torch.no_grad():
        cache = [model.encode_frame(ir[:, :, t], vis[:, :, t]) for t in range(9)]
        full = model.fuse_window(cache, range(9))
        for t in (0, 3, 8):
            torch.testing.assert_close(model.fuse_window(cache, [t])[:, :, 0], full[:, :, t], atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_model("ftpfusion", SMALL).train()
    ir, vis = clip(2, 3, 32, 48)
    out = model(ir, vis)
    target = torch.rand_like(out)
    ((out - target) ** 2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.abs().max() > 0]
    assert not missing, missing
    assert not zero, zero
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_streaming_equals_clip_forward():
    torch.manual_seed(0)
    model = build_model("ftpfusion").eval()
    h, w = 32, 48
    ir, vis = clip(1, 5, h, w, seed=3)
    # full rings of T = 1, 3, 5 ending at the newest frame, and warm-up windows (2, 4 frames) of a T = 5 ring
    windows = [(4, 5), (2, 5), (0, 2), (0, 4), (0, 5)]  # (0, 5) last: `ref` is used below
    with torch.no_grad():
        cache = [model.encode_frame(ir[:, :, t], vis[:, :, t]) for t in range(5)]
        for start, end in windows:
            ref = model(ir[:, :, start:end], vis[:, :, start:end])
            last = model.fuse_window(cache[start:end], [end - start - 1])
            assert last.shape == (1, 3, 1, h, w)
            torch.testing.assert_close(last[:, :, 0], ref[:, :, -1], atol=1e-5, rtol=0)
        # a middle target (look-ahead mode) equals the clip forward too
        mid = model.fuse_window(cache, [2])
        torch.testing.assert_close(mid[:, :, 0], ref[:, :, 2], atol=1e-5, rtol=0)


def test_temporal_context_matters():
    """The network itself reads its window: with the stabiliser off, nothing else could carry an earlier
    frame into the output."""
    torch.manual_seed(0)
    model = build_model("ftpfusion", {**SMALL, "stabiliser": False}).eval()
    ir, vis = clip(1, 3, 32, 32, seed=1)
    ir2 = ir.clone()
    ir2[:, :, 0] = 1.0 - ir2[:, :, 0]  # change an earlier frame only
    with torch.no_grad():
        a = model(ir, vis)[:, :, -1]
        b = model(ir2, vis)[:, :, -1]
    assert (a - b).abs().max() > 1e-5


def test_odd_sizes_are_padded_internally_and_tiny_frames_rejected():
    torch.manual_seed(0)
    model = build_model("ftpfusion", SMALL).eval()
    ir, vis = clip(1, 2, 50, 70)
    with torch.no_grad():
        out = model(ir, vis)
    assert out.shape == (1, 3, 2, 50, 70)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="at least"):
        model.encode_frame(torch.rand(1, 1, 24, 64), torch.rand(1, 3, 24, 64))
    with pytest.raises(ValueError):
        model(torch.rand(1, 1, 2, 32, 32), torch.rand(1, 3, 3, 32, 32))
    with pytest.raises(ValueError):
        model.fuse_window([model.encode_frame(torch.rand(1, 1, 32, 32), torch.rand(1, 3, 32, 32))], [1])


def test_causal_training_targets_are_what_the_streaming_ring_outputs():
    """forward_train (train_targets: causal) fuses the clip's last frames each from the ring window ending at
    it: in eval mode (no LFPM perturbation) exactly the engine's causal stream, base and sources included."""
    from ftpfusion_ros.runtime.ring import TemporalRing

    torch.manual_seed(0)
    model = build_model("ftpfusion", {**SMALL, "window": 4, "net_window": 3, "train_last": 2}).eval()
    with torch.no_grad():  # a non-zero head, so the network's residual is part of the comparison
        model.decoder.head.weight.normal_(std=0.05)
        model.decoder.guide.weight.normal_(std=0.05)
        model.decoder.gate.weight.normal_(std=0.05)
    ir, vis = clip(1, 6, 32, 48, seed=4)
    ring = TemporalRing(model, 4)
    with torch.no_grad():
        stream = [ring.push(ir[:, :, t], vis[:, :, t])[0] for t in range(6)]
        fused, aux = model.forward_train(ir, vis)
    assert fused.shape == (1, 3, 2, 32, 48)
    assert set(aux) == {"ir", "vis", "base", "y", "anchor", "shift"} and aux["shift"].shape == (1, 1, 2)
    torch.testing.assert_close(fused[:, :, 0], stream[4], atol=1e-5, rtol=0)
    torch.testing.assert_close(fused[:, :, 1], stream[5], atol=1e-5, rtol=0)
    base = build_model("ftpfusion", {**SMALL, "window": 4, "net_window": 3, "refine": False}).eval()
    with torch.no_grad():
        _, base_aux = base.forward_train(ir, vis)
    torch.testing.assert_close(base_aux["base"], aux["base"], atol=1e-6, rtol=0)


def test_refine_false_is_the_weight_free_base_on_the_same_code_path():
    """refine=false: no encoder runs, the output is the stabilised base in colour (zero residual), and a
    network whose head is zero gives exactly that too."""
    torch.manual_seed(0)
    ir, vis = clip(1, 5, 32, 48, seed=2)
    off = build_model("ftpfusion", {**SMALL, "refine": False}).eval()
    on = build_model("ftpfusion", SMALL).eval()
    with torch.no_grad():
        entry = off.encode_frame(ir[:, :, 0], vis[:, :, 0])
        assert "scales" not in entry
        for p in (on.decoder.head.weight, on.decoder.head.bias, on.decoder.guide.weight, on.decoder.guide.bias,
                  on.decoder.gate.weight):
            p.zero_()
        on.decoder.gate.bias.fill_(-40.0)  # gate closed: the filtered base
        base_out, zero_head = off(ir, vis), on(ir, vis)
        torch.testing.assert_close(base_out, zero_head, atol=1e-6, rtol=0)
        # gate open: the target frame's own de-flickered base, i.e. the stabiliser without its temporal filter
        on.decoder.gate.bias.fill_(40.0)
        unfiltered = build_model("ftpfusion", {**SMALL, "refine": False, "stab_neighbour_weight": 0.0}).eval()
        torch.testing.assert_close(on(ir, vis), unfiltered(ir, vis), atol=1e-6, rtol=0)
        assert (unfiltered(ir, vis) - base_out).abs().max() > 1e-3
        on.decoder.gate.bias.fill_(-40.0)
        on.decoder.head.weight.normal_(std=0.05)
        assert (on(ir, vis) - base_out).abs().max() > 1e-3
    with pytest.raises(ValueError, match="refine"):
        build_model("ftpfusion", {**SMALL, "refine": "banana"})


def test_stab_keep_moves_the_weight_free_base_between_filtered_and_unfiltered():
    """stab_keep k: the base is the filtered base plus k of the way to the target frame's own de-flickered
    fusion (k=0 the filtered base, k=1 the stabiliser without its temporal filter), with or without the
    network on top; out-of-range or non-numeric values are refused."""
    torch.manual_seed(0)
    ir, vis = clip(1, 1, 32, 48, seed=3)  # one scene with sensor noise within the filter's range: it averages
    ir = (ir.expand(-1, -1, 5, -1, -1) + 0.02 * torch.randn(1, 1, 5, 32, 48)).clamp(0, 1)
    vis = (vis.expand(-1, -1, 5, -1, -1) + 0.02 * torch.randn(1, 3, 5, 32, 48)).clamp(0, 1)

    def fused(**opts):
        m = build_model("ftpfusion", {**SMALL, "refine": False, **opts}).eval()
        with torch.no_grad():
            return m._fuse([m.encode_frame(ir[:, :, t], vis[:, :, t]) for t in range(5)], [4])

    filtered, unfiltered = fused(), fused(stab_neighbour_weight=0.0)
    half = fused(stab_keep=0.5)
    assert (filtered["y"] - unfiltered["y"]).abs().max() > 1e-2
    torch.testing.assert_close(fused(stab_keep=1.0)["y"], unfiltered["y"], atol=1e-4, rtol=0)
    torch.testing.assert_close(half["base"], 0.5 * (filtered["base"] + unfiltered["base"]), atol=1e-4, rtol=0)
    torch.testing.assert_close(half["y"], half["base"], atol=1e-3, rtol=0)  # the output carries the kept base
    on = build_model("ftpfusion", {**SMALL, "stab_keep": 0.5}).eval()
    with torch.no_grad():
        for p in (on.decoder.head.weight, on.decoder.head.bias, on.decoder.guide.weight, on.decoder.guide.bias,
                  on.decoder.gate.weight):
            p.zero_()
        on.decoder.gate.bias.fill_(-40.0)  # gate closed: the network's output is its (kept) base
        out = on._fuse([on.encode_frame(ir[:, :, t], vis[:, :, t]) for t in range(5)], [4])
    torch.testing.assert_close(out["rgb"], half["rgb"], atol=1e-5, rtol=0)
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="stab_keep"):
            build_model("ftpfusion", {**SMALL, "stab_keep": bad})


def test_encoder_features_ignore_camera_flicker():
    """encoder_norm: a global gain/offset change of a camera's frame leaves the network's features as they
    were (the base carries the brightness), so flicker cannot reach the residual."""
    torch.manual_seed(0)
    model = build_model("ftpfusion", SMALL).eval()
    ir, vis = clip(1, 1, 32, 48, seed=5)
    ir, vis = 0.25 + 0.5 * ir[:, :, 0], 0.25 + 0.5 * vis[:, :, 0]  # room for the change without clipping
    with torch.no_grad():
        a = model.encode_frame(ir, vis)["scales"][0]["lf"]
        b = model.encode_frame(1.2 * ir - 0.1, 0.9 * vis + 0.05)["scales"][0]["lf"]
        raw = build_model("ftpfusion", {**SMALL, "encoder_norm": False}).eval()
        raw.load_state_dict(model.state_dict())
        c, d = (raw.encode_frame(x, y)["scales"][0]["lf"] for x, y in ((ir, vis), (1.2 * ir - 0.1, 0.9 * vis + 0.05)))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert (c - d).abs().max() > 1e-2


def test_laplacian_base_is_filtered_by_the_stabiliser_and_refined_like_the_others():
    """base_fusion: laplacian. Without the stabiliser the weight-free output's luminance is the pyramid
    fusion itself; with it, a steady clip keeps it (de-flicker and temporal filter change nothing when
    frames repeat), and the network refines it on the same path."""
    from ftpfusion_ros.nn.base_fusion import fuse_base
    from ftpfusion_ros.nn.colour import rgb_to_y

    ir, vis = clip(1, 1, 32, 48, seed=4)
    ir5, vis5 = ir.expand(-1, -1, 5, -1, -1), vis.expand(-1, -1, 5, -1, -1)
    want = fuse_base(ir[:, :, 0], rgb_to_y(vis[:, :, 0]), "laplacian")
    for stabiliser in (False, True):
        m = build_model("ftpfusion", {**SMALL, "refine": False, "stabiliser": stabiliser,
                                      "base_fusion": "laplacian"}).eval()
        with torch.no_grad():
            fused = m.fuse_window([m.encode_frame(ir5[:, :, t], vis5[:, :, t]) for t in range(5)], [4])[:, :, 0]
            base = m._fuse([m.encode_frame(ir5[:, :, t], vis5[:, :, t]) for t in range(5)], [4])["base"]
        torch.testing.assert_close(base, want, atol=1e-5, rtol=0)
        assert fused.shape == (1, 3, 32, 48)
    assert (want - fuse_base(ir[:, :, 0], rgb_to_y(vis[:, :, 0]), "max")).abs().max() > 0.05
    with pytest.raises(ValueError, match="base_fusion"):
        build_model("ftpfusion", {**SMALL, "base_fusion": "median"})


def test_gate_base_chooses_per_pixel_between_two_stabilised_bases():
    """gate_base: max over a laplacian base. Gate closed: the weight-free laplacian base (refine=false);
    gate open: the stabiliser's second channel, the max fusion filtered with the base's shifts; without
    the stabiliser, the per-frame max fusion. 'anchor' is the base after the gate."""
    from ftpfusion_ros.nn.colour import rgb_to_y

    torch.manual_seed(0)
    ir, vis = clip(1, 5, 32, 48, seed=6)
    opts = {**SMALL, "base_fusion": "laplacian", "gate_base": "max"}
    for stabiliser in (True, False):
        on = build_model("ftpfusion", {**opts, "stabiliser": stabiliser}).eval()
        off = build_model("ftpfusion", {**opts, "stabiliser": stabiliser, "refine": False}).eval()
        with torch.no_grad():
            for p in (on.decoder.head.weight, on.decoder.head.bias, on.decoder.guide.weight, on.decoder.guide.bias,
                      on.decoder.gate.weight):
                p.zero_()
            cache = [on.encode_frame(ir[:, :, t], vis[:, :, t]) for t in range(5)]
            on.decoder.gate.bias.fill_(-40.0)
            closed = on._fuse(cache, [4])
            torch.testing.assert_close(closed["rgb"], off(ir, vis)[:, :, 4], atol=1e-6, rtol=0)
            torch.testing.assert_close(closed["anchor"], closed["base"], atol=1e-6, rtol=0)
            on.decoder.gate.bias.fill_(40.0)
            opened = on._fuse(cache, [4])
            if stabiliser:
                second = on._base(cache, [4])[0][:, 1:2]
            else:
                second = torch.maximum(ir[:, :, 4], rgb_to_y(vis[:, :, 4]))
            torch.testing.assert_close(opened["anchor"], second, atol=1e-6, rtol=0)
            assert (opened["anchor"] - closed["anchor"]).abs().max() > 0.05
    assert on.stabiliser is None and off.gate_base == "max"
    with pytest.raises(ValueError, match="gate_base"):
        build_model("ftpfusion", {**SMALL, "gate_base": "median"})
