"""The streaming engine: ring equivalence with the full-clip forward, encodings, AGC, registration,
checkpoints, look-ahead — all with the real models."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from ftpfusion_ros.models import build_model
from ftpfusion_ros.runtime import (AGCConfig, CheckpointError, EngineConfig, FusionEngine, InputError,
                                   TemporalRing, ThermalAGC, load_checkpoint, save_checkpoint)
from ftpfusion_ros.runtime.registration import register_ir

SMALL_FTP = {"channels": [8, 16, 16]}


def small_ftpfusion():
    torch.manual_seed(0)
    return build_model("ftpfusion", SMALL_FTP).eval()


def clip(n=7, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, n, h, w, generator=g), torch.rand(1, 3, n, h, w, generator=g)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_streaming_equals_full_clip_forward(window):
    model = small_ftpfusion()
    ir, vis = clip()
    ring = TemporalRing(model, window)
    with torch.inference_mode():
        for t in range(ir.shape[2]):
            out, meta = ring.push(ir[:, :, t], vis[:, :, t], meta=t)
            assert meta == t
            lo = max(0, t - window + 1)  # warm-up: shorter windows
            ref = model(ir[:, :, lo:t + 1], vis[:, :, lo:t + 1])[:, :, -1]
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
            assert ring.fill == t + 1 - lo


def test_lookahead_delays_output_and_sees_the_future():
    model = small_ftpfusion()
    ir, vis = clip(n=6)
    window, lookahead = 3, 1
    ring = TemporalRing(model, window, lookahead)
    outputs = []
    with torch.inference_mode():
        for t in range(ir.shape[2]):
            res = ring.push(ir[:, :, t], vis[:, :, t], meta=t)
            if t < lookahead:
                assert res is None
            else:
                outputs.append(res)
        outputs += ring.flush()
        assert [m for _, m in outputs] == list(range(ir.shape[2]))
        # frame 2 was fused from window [1, 2, 3] (one future frame), at position 1
        ref = model(ir[:, :, 1:4], vis[:, :, 1:4])[:, :, 1]
        torch.testing.assert_close(outputs[2][0], ref, atol=1e-5, rtol=0)
        # the last frame comes out of flush, fused from the final window at its last position
        ref_last = model(ir[:, :, 3:6], vis[:, :, 3:6])[:, :, 2]
        torch.testing.assert_close(outputs[-1][0], ref_last, atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        TemporalRing(model, 3, 3)


def test_full_ring_of_the_default_ftpfusion_streams_like_the_clip_forward():
    """FTPFusion's default ring (9 frames for the stabiliser, 5 for the network), causal and look-ahead:
    every streamed frame equals the clip forward over the ring it was fused from."""
    torch.manual_seed(0)
    model = build_model("ftpfusion", {"channels": [4, 8, 8]}).eval()
    assert (model.window, model.net_window) == (9, 5)
    ir, vis = clip(n=12)
    for lookahead in (0, 2):
        ring = TemporalRing(model, model.window, lookahead)
        with torch.inference_mode():
            outs = [ring.push(ir[:, :, t], vis[:, :, t], meta=t) for t in range(12)]
            outs = [o for o in outs if o is not None] + ring.flush()
            for out, t in ((outs[10], 10), (outs[4], 4)):
                assert out[1] == t
                hi = min(12, t + lookahead + 1)
                lo = max(0, hi - model.window)
                ref = model(ir[:, :, lo:hi], vis[:, :, lo:hi])[:, :, t - lo]
                torch.testing.assert_close(out[0], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("net_window,with_features", [(5, 4), (3, 2)])
def test_ring_keeps_network_features_only_for_the_frames_the_network_reads(net_window, with_features):
    """Causal ring of 9, stabiliser radius 4: after each step the newest net_window - 1 frames keep network
    features (with the next frame they make the network's window); the newest 4 keep the maps and
    statistics the stabiliser reads (with a 3-frame network window, 2 of them without network features);
    the older ones keep the 4 de-flicker statistics; no frame keeps its visible image (read for a target's
    own output only)."""
    torch.manual_seed(0)
    model = build_model("ftpfusion", {"channels": [4, 8, 8], "net_window": net_window}).eval()
    ir, vis = clip(n=12)
    ring = TemporalRing(model, model.window)
    with torch.inference_mode():
        for t in range(12):
            ring.push(ir[:, :, t], vis[:, :, t])
            caches = [e.cache for e in ring._entries]
            n = len(caches)
            assert [("scales" in c) for c in caches] == [i >= n - with_features for i in range(n)]
            maps = [("ir" in c and "y_vis" in c and "spec" in c["stab"]) for c in caches]
            assert maps == [i >= n - 4 for i in range(n)]
            assert all(set(c["stab"]) == {"stats"} for c, m in zip(caches, maps) if not m)
            assert not any("vis" in c for c in caches)


@pytest.mark.parametrize("options", [{"stabiliser": False}, {"refine": False}, {"stab_neighbour_weight": 0.0},
                                     {"stab_radius": 6}, {"net_window": 3}])
def test_trimmed_ring_streams_like_the_clip_forward_for_every_switch(options):
    """The ring's trimming follows the model's switches: without the stabiliser, without the network, without
    the temporal filter, or with a radius beyond the network's window, every frame equals the clip forward."""
    torch.manual_seed(0)
    model = build_model("ftpfusion", {"channels": [4, 8, 8], **options}).eval()
    ir, vis = clip(n=11)
    ring = TemporalRing(model, model.window)
    with torch.inference_mode():
        for t in range(11):
            out, _ = ring.push(ir[:, :, t], vis[:, :, t])
            lo = max(0, t + 1 - model.window)
            ref = model(ir[:, :, lo:t + 1], vis[:, :, lo:t + 1])[:, :, -1]
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def frames(h=48, w=64, seed=1):
    r = np.random.default_rng(seed)
    ir8 = r.integers(0, 256, (h, w), dtype=np.uint8)
    vis = r.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return ir8, vis


ENCODED = {
    "mono8": lambda ir, vis: (ir, "mono8"),
    "8UC1": lambda ir, vis: (ir, "8UC1"),
    "mono16": lambda ir, vis: (ir.astype(np.uint16) * 64 + 3000, "mono16"),
    "16UC1": lambda ir, vis: (ir.astype(np.uint16) * 64 + 3000, "16UC1"),
    "32FC1": lambda ir, vis: (ir.astype(np.float32) / 10.0 + 280.0, "32FC1"),
    "bgr8": lambda ir, vis: (np.repeat(ir[:, :, None], 3, axis=2), "bgr8"),
    "rgba8": lambda ir, vis: (np.dstack([ir, ir, ir, np.full_like(ir, 255)]), "rgba8"),
}


@pytest.mark.parametrize("ir_enc", sorted(ENCODED))
@pytest.mark.parametrize("vis_enc", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8"])
def test_every_encoding_is_fused(ir_enc, vis_enc):
    engine = FusionEngine(EngineConfig(model="average"))
    ir8, vis = frames()
    ir_arr, enc = ENCODED[ir_enc](ir8, vis)
    vis_arr = {"bgr8": vis, "rgb8": vis[:, :, ::-1].copy(), "bgra8": np.dstack([vis, vis[:, :, :1]]),
               "rgba8": np.dstack([vis[:, :, ::-1], vis[:, :, :1]]), "mono8": vis[:, :, 0].copy()}[vis_enc]
    res = engine.push(ir_arr, vis_arr, enc, vis_enc, stamp=42)
    assert res.fused_bgr.shape == (48, 64, 3) and res.fused_bgr.dtype == np.uint8
    assert res.aligned_ir.shape == (48, 64) and res.aligned_vis_bgr.shape == (48, 64, 3)
    assert res.stamp == 42 and res.latency_ms > 0 and res.model == "average"
    if vis_enc in ("bgr8", "rgb8", "bgra8", "rgba8"):
        np.testing.assert_allclose(res.aligned_vis_bgr, vis, atol=1)
    if ir_enc in ("mono8", "8UC1", "bgr8", "rgba8"):
        np.testing.assert_array_equal(res.aligned_ir, ir8)


def test_colour_order_rgb_vs_bgr_gives_same_fusion():
    engine = FusionEngine(EngineConfig(model="average"))
    ir8, vis = frames()
    a = engine.push(ir8, vis, "mono8", "bgr8").fused_bgr
    b = engine.push(ir8, vis[:, :, ::-1].copy(), "mono8", "rgb8").fused_bgr
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad, message", [
    (lambda ir, vis: (ir, vis, "64FC1", "bgr8"), "unsupported encoding"),
    (lambda ir, vis: (ir, vis, "yuv422", "bgr8"), "2 channel"),
    (lambda ir, vis: (ir.astype(np.uint16), vis, "mono8", "bgr8"), "dtype"),
    (lambda ir, vis: (ir, vis[:, :, 0].copy(), "mono8", "bgr8"), "channel"),
    (lambda ir, vis: (ir[:, :20].copy(), vis, "mono8", "bgr8"), "aspect ratio"),
    (lambda ir, vis: (ir, vis[:1, :1].copy(), "mono8", "bgr8"), "too small"),
])
def test_bad_input_is_a_clear_error_and_the_ring_is_untouched(bad, message):
    engine = FusionEngine(EngineConfig(model="average"))
    ir8, vis = frames()
    engine.push(ir8, vis)
    fill = engine.ring.fill
    with pytest.raises(InputError, match=message):
        engine.push(*bad(ir8, vis))
    assert engine.ring.fill == fill
    assert engine.push(ir8, vis) is not None  # keeps working


def test_size_change_mid_stream_is_reported_and_reset_accepts_it():
    engine = FusionEngine(EngineConfig(model="average"))
    ir8, vis = frames()
    engine.push(ir8, vis)
    ir2, vis2 = frames(h=24, w=32)
    with pytest.raises(InputError, match="size changed"):
        engine.push(ir2, vis2)
    engine.reset()
    assert engine.push(ir2, vis2).fused_bgr.shape == (24, 32, 3)


def test_ir_of_other_resolution_same_aspect_is_resized():
    engine = FusionEngine(EngineConfig(model="average"))
    ir8, vis = frames(h=48, w=64)
    small_ir = ir8[::2, ::2].copy()
    assert engine.push(small_ir, vis).aligned_ir.shape == (48, 64)


def test_homography_translates_ir_onto_visible():
    ir = np.zeros((40, 50), np.float32)
    ir[10:14, 10:14] = 1.0
    h = [1, 0, 5, 0, 1, 3, 0, 0, 1]  # IR pixel (x, y) lands at (x + 5, y + 3)
    engine = FusionEngine(EngineConfig(model="average", homography=h))
    out = register_ir(ir, (50, 40), engine.homography)
    ys, xs = np.nonzero(out > 0.5)
    assert (ys.min(), xs.min()) == (13, 15)
    with pytest.raises(ValueError):
        FusionEngine(EngineConfig(model="average", homography=[1, 2, 3]))


def test_agc_is_temporally_stable_where_min_max_flickers():
    """A hot object entering the scene must not make the background jump (per-frame min-max does)."""
    rng = np.random.default_rng(0)
    agc = ThermalAGC(AGCConfig(smoothing=0.1))
    bg_agc, bg_minmax = [], []
    for t in range(30):
        frame = (7000 + rng.normal(0, 20, (60, 80))).astype(np.uint16)
        frame[:, :8] = 6500  # a cold wall keeps the low end stable
        if t >= 15:
            frame[20:40, 30:50] = 12000  # hot object appears
        mapped = agc(frame)
        bg_agc.append(float(mapped[50:, 60:].mean()))
        f = frame.astype(np.float32)
        bg_minmax.append(float(((f - f.min()) / (f.max() - f.min()))[50:, 60:].mean()))
    jump_agc = max(abs(a - b) for a, b in zip(bg_agc[1:], bg_agc[:-1]))
    jump_minmax = max(abs(a - b) for a, b in zip(bg_minmax[1:], bg_minmax[:-1]))
    assert jump_minmax > 0.2
    assert jump_agc < 0.05
    fixed = ThermalAGC(AGCConfig(mode="fixed", fixed_low=6000, fixed_high=8000))
    assert fixed(np.full((4, 4), 7000, np.uint16)).mean() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        AGCConfig(mode="minmax")


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    model = small_ftpfusion()
    path = save_checkpoint(model, tmp_path / "ftp.pt", SMALL_FTP, steps=3)
    meta = yaml.safe_load((tmp_path / "ftp.yaml").read_text())
    assert meta["model"] == "ftpfusion" and len(meta["sha256"]) == 64 and meta["steps"] == 3
    loaded = load_checkpoint("ftpfusion", path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    engine = FusionEngine(EngineConfig(model="ftpfusion", checkpoint=str(path)))
    ir8, vis = frames(h=64, w=64)
    assert engine.push(ir8, vis).fused_bgr.shape == (64, 64, 3)

    with pytest.raises(FileNotFoundError):
        load_checkpoint("ftpfusion", tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint("ftpfusion", corrupt)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one flipped byte
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint("ftpfusion", path)
    with pytest.raises(CheckpointError, match="no weights"):
        load_checkpoint("average", path)
    other = save_checkpoint(build_model("ftpfusion", {"channels": [4, 8, 8]}), tmp_path / "o.pt", {})
    (tmp_path / "o.yaml").write_text(yaml.safe_dump({"model": "ftpfusion"}))  # config lost -> shapes differ
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint("ftpfusion", other)


def test_learned_model_without_checkpoint_needs_explicit_consent(monkeypatch):
    import ftpfusion_ros.runtime.engine as engine_mod
    monkeypatch.setattr(engine_mod, "packaged_checkpoint", lambda name: None)  # as on a bare install
    with pytest.raises(FileNotFoundError, match="needs a checkpoint"):
        FusionEngine(EngineConfig(model="ftpfusion"))
    engine = FusionEngine(EngineConfig(model="ftpfusion", allow_untrained=True))
    assert engine.window == 9  # the ring the stabiliser uses; the network attends over 5
    with pytest.raises(ValueError, match="takes no checkpoint"):
        FusionEngine(EngineConfig(model="average", checkpoint="x.pt"))


def test_engine_config_from_dict_rejects_typos():
    cfg = EngineConfig.from_dict({"model": "average", "agc": {"smoothing": 0.2}})
    assert cfg.agc.smoothing == 0.2
    with pytest.raises(ValueError, match="unknown engine setting 'modle'"):
        EngineConfig.from_dict({"modle": "average"})


def test_checkpoint_saved_before_new_switches_loads_as_it_was_trained(tmp_path):
    """An FTPFusion sidecar written before encoder_norm / guided_head / sharpen_gate existed lacks those
    keys: it loads with the values it was trained with (all off), not today's defaults, and fuses as
    before; a current sidecar (every key present) is unaffected."""
    import yaml

    from ftpfusion_ros.models import build_model
    from ftpfusion_ros.runtime.checkpoint import load_checkpoint, save_checkpoint

    legacy = {"channels": [4, 8, 8], "encoder_norm": False, "guided_head": False, "sharpen_gate": False,
              "train_targets": "clip"}
    torch.manual_seed(0)
    model = build_model("ftpfusion", legacy).eval()
    path = save_checkpoint(model, tmp_path / "old.pt", {"channels": [4, 8, 8]})  # keys absent, as in 0.1
    side = yaml.safe_load(path.with_suffix(".yaml").read_text())
    assert "sharpen_gate" not in side["config"]
    loaded = load_checkpoint("ftpfusion", path)
    assert not loaded.sharpen_gate and not loaded.encoder_norm and loaded.decoder.guide is None
    ir, vis = torch.rand(1, 1, 3, 32, 48), torch.rand(1, 3, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ir, vis), model(ir, vis), atol=1e-4, rtol=0)  # conv layouts differ
    current = build_model("ftpfusion", {"channels": [4, 8, 8]}).eval()
    full = {**build_model.__globals__["default_config"]("ftpfusion"), "channels": [4, 8, 8]}
    again = load_checkpoint("ftpfusion", save_checkpoint(current, tmp_path / "new.pt", full))
    assert again.sharpen_gate and again.encoder_norm and again.decoder.guide is not None
