"""Streaming ONNX export (`ftpfusion export --streaming`) and the engine's onnxruntime backend: the ONNX
Runtime CPU stream equals the PyTorch stream, ring warm-up and cache trimming included."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.models import build_model
from ftpfusion_ros.runtime import EngineConfig, FusionEngine, InputError, TemporalRing
from ftpfusion_ros.runtime.export import export_streaming

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

W, H = 64, 48
# a small real FTPFusion whose 3-frame ring exercises every cache level: the network reads 2 frames, the
# stabiliser's radius is 1, so the oldest frame keeps only its statistics
SMALL = {"channels": [4, 8, 8], "window": 3, "net_window": 2, "stab_radius": 1}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("ftpfusion", SMALL).eval()
    folder = tmp_path_factory.mktemp("stream")
    export_streaming(model, folder, W, H)
    return model, folder


def clip(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    base_ir = torch.rand(1, 1, H, W + n, generator=g)
    base_vis = torch.rand(1, 3, H, W + n, generator=g)
    # moving content (one pixel per frame) with a flickering visible gain, so every stage has work to do
    return [(base_ir[..., t:t + W].contiguous(), (base_vis[..., t:t + W] * (0.8 + 0.1 * (t % 3))).clamp(0, 1))
            for t in range(n)]


def test_manifest_describes_the_graphs(exported):
    model, folder = exported
    man = json.loads((folder / "manifest.json").read_text())
    assert man["format"] == "ftpfusion-streaming-onnx"
    assert (man["size"], man["window"], man["net_window"], man["stabiliser_radius"]) == ([W, H], 3, 2, 1)
    assert man["opset"] >= 17
    assert man["encoder"]["inputs"] == {"ir": [1, 1, H, W], "visible": [1, 3, H, W]}
    assert man["encoder"]["outputs"]["cache.stab.spec"][-1] == 2  # the complex spectrum as (re, im) pairs
    assert [f["frames"] for f in man["fusion"]] == [1, 2, 3]
    for f in man["fusion"]:
        assert (folder / f["file"]).is_file()
    # the full-window graph reads only the statistics of the oldest frame, and no visible frame but the newest
    full = man["fusion"][-1]["inputs"]
    assert [i for i in full if i.startswith("f0.")] == ["f0.stab.stats"]
    assert not any(i.endswith(".vis") for i in full if not i.startswith("f2."))


def test_onnxruntime_stream_equals_pytorch_stream(exported):
    from ftpfusion_ros.runtime.onnx_backend import OnnxStreamRing

    model, folder = exported
    ring_pt = TemporalRing(model, model.window)
    ring_ort = OnnxStreamRing(folder, "cpu")
    assert ring_ort.active_providers[-1] == "CPUExecutionProvider"
    worst = 0.0
    with torch.inference_mode():
        for t, (ir, vis) in enumerate(clip(7)):
            ref, _ = ring_pt.push(ir, vis, meta=t)
            out, meta = ring_ort.push(ir, vis, meta=t)
            assert meta == t and out.shape == ref.shape == (1, 3, H, W)
            worst = max(worst, (out - ref).abs().max().item())
            assert ring_ort.fill == ring_pt.fill == min(t + 1, 3)
    assert worst <= 1e-3, worst
    # the ONNX ring trims its caches as the PyTorch ring does
    assert [sorted(e.cache) for e in ring_ort._entries] == [sorted(e.cache) for e in ring_pt._entries]


def test_engine_backend_onnxruntime_matches_pytorch_engine(exported):
    model, folder = exported
    rng = np.random.default_rng(3)
    ir8 = rng.integers(0, 256, (H, W + 6), dtype=np.uint8)
    vis8 = rng.integers(0, 256, (H, W + 6, 3), dtype=np.uint8)
    eng_pt = FusionEngine(EngineConfig(device="cpu"), model=model)
    eng_ort = FusionEngine(EngineConfig(device="cpu", backend="onnxruntime", onnx_dir=str(folder)))
    assert eng_ort.model is None and eng_ort.model_name == "ftpfusion" and eng_ort.window == 3
    for t in range(6):
        a = eng_pt.push(ir8[:, t:t + W], vis8[:, t:t + W])
        b = eng_ort.push(ir8[:, t:t + W], vis8[:, t:t + W])
        assert np.abs(a.fused_bgr.astype(int) - b.fused_bgr.astype(int)).max() <= 1
        assert (a.ring_fill, a.window) == (b.ring_fill, b.window)
    with pytest.raises(InputError, match="export again with --size 72x48"):
        eng_ort.reset()
        eng_ort.push(np.zeros((48, 72), np.uint8), np.zeros((48, 72, 3), np.uint8))


def test_backend_errors_are_clear(exported, tmp_path, capsys):
    from ftpfusion_ros.runtime.onnx_backend import BackendError

    _, folder = exported
    with pytest.raises(BackendError, match="export --streaming"):
        FusionEngine(EngineConfig(device="cpu", backend="onnxruntime"))
    with pytest.raises(BackendError, match="no manifest.json"):
        FusionEngine(EngineConfig(device="cpu", backend="onnxruntime", onnx_dir=str(tmp_path)))
    with pytest.raises(BackendError, match="causal"):
        FusionEngine(EngineConfig(device="cpu", backend="onnxruntime", onnx_dir=str(folder), lookahead=1))
    with pytest.raises(BackendError, match="rings of 1..3"):
        FusionEngine(EngineConfig(device="cpu", backend="onnxruntime", onnx_dir=str(folder), window=5))
    with pytest.raises(ValueError, match="are ftpfusion's"):
        FusionEngine(EngineConfig(model="rpfnet", device="cpu", backend="onnxruntime", onnx_dir=str(folder)))
    with pytest.raises(ValueError, match="inside the exported graphs"):
        FusionEngine(EngineConfig(device="cpu", backend="onnxruntime", onnx_dir=str(folder), checkpoint="x.pt"))
    with pytest.raises(ValueError, match="backend must be"):
        FusionEngine(EngineConfig(device="cpu", backend="tensorflow"))
    code = main(["fuse", "--ir", str(tmp_path), "--vis", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--backend", "onnxruntime"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err


def test_export_streaming_cli_and_fuse_backend_onnxruntime(tmp_path):
    """The shipped checkpoint exported through the CLI (2-frame ring to keep the test short) and run by
    `ftpfusion fuse --backend onnxruntime`: the same PNGs as the PyTorch engine within one grey level."""
    import cv2

    out = tmp_path / "graphs"
    assert main(["export", "--streaming", "--out", str(out), "--size", "64x48", "--frames", "2"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    from ftpfusion_ros.runtime.checkpoint import packaged_checkpoint, sha256_of

    assert man["checkpoint_sha256"] == sha256_of(packaged_checkpoint("ftpfusion"))
    assert man["window"] == 2 and len(man["fusion"]) == 2
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vis"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for t, (ir, vis) in enumerate(clip(4, seed=5)):
        cv2.imwrite(str(ir_dir / f"{t:06d}.png"), (ir[0, 0].numpy() * 255).astype(np.uint8))
        cv2.imwrite(str(vis_dir / f"{t:06d}.png"), (vis[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).astype(np.uint8))
    common = ["fuse", "--ir", str(ir_dir), "--vis", str(vis_dir), "--model", "ftpfusion", "--device", "cpu",
              "--window", "2"]
    assert main(common + ["--out", str(tmp_path / "pt")]) == 0
    assert main(common + ["--out", str(tmp_path / "ort"), "--backend", "onnxruntime", "--onnx-dir", str(out)]) == 0
    for t in range(4):
        a = cv2.imread(str(tmp_path / "pt" / f"{t:06d}.png")).astype(int)
        b = cv2.imread(str(tmp_path / "ort" / f"{t:06d}.png")).astype(int)
        assert np.abs(a - b).max() <= 1
    assert main(["export", "--streaming", "--model", "average", "--out", str(tmp_path / "x"), "--size", "64x48"]) == 2


def test_bench_with_backend_onnxruntime(exported):
    from ftpfusion_ros.runtime.benchmark import benchmark

    _, folder = exported
    res = benchmark(EngineConfig(device="cpu", backend="onnxruntime", onnx_dir=str(folder)), W, H, steps=2,
                    stage_steps=2)
    assert res["backend"] == "onnxruntime" and res["providers"][-1] == "CPUExecutionProvider"
    assert {"pre", "encode", "fuse", "post", "total"} <= set(res["stages_ms_p50"])
    assert res["params"] is None and res["frames"] == 3


def test_streaming_export_refuses_a_model_without_the_frame_ring(tmp_path):
    """The streaming split is FTPFusion's; a frame-wise or classical model is told to export its clip
    forward instead (now that every model has a trim_caches, the check names the model class)."""
    with pytest.raises(ValueError, match="streaming export is for FTPFusion"):
        export_streaming(build_model("laplacian"), tmp_path, W, H)
