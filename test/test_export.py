import pytest
import torch

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.models import build_model
from ftpfusion_ros.runtime.export import example_inputs, export_model


def test_pt2_export_matches_eager(tmp_path):
    torch.manual_seed(0)
    model = build_model("ftpfusion", {"channels": [4, 8, 8]}).eval()
    w, h = 64, 32  # the smallest sizes FTPFusion accepts are multiples of its size_multiple
    path = export_model(model, tmp_path / "ftp.pt2", "pt2", 3, w, h)
    program = torch.export.load(path)
    ir, vis = example_inputs(3, w, h)
    with torch.inference_mode():
        torch.testing.assert_close(program.module()(ir, vis), model(ir, vis), atol=1e-5, rtol=0)


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model("ftpfusion", {"channels": [4, 8, 8]}).eval()
    path = export_model(model, tmp_path / "ftp.onnx", "onnx", 3, 64, 32)
    ir, vis = example_inputs(3, 64, 32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"ir": ir.numpy(), "visible": vis.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), model(ir, vis), atol=1e-4, rtol=0)


def test_export_cli_and_errors(tmp_path):
    assert main(["export", "--model", "average", "--out", str(tmp_path / "avg.pt2"), "--size", "32x24"]) == 0
    assert (tmp_path / "avg.pt2").stat().st_size > 0
    assert main(["export", "--model", "average", "--out", str(tmp_path / "avg.xyz"), "--size", "32x24"]) == 2
