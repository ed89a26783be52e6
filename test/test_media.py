"""The picture/video helpers shared by `ftpfusion bag --mp4` and `ftpfusion demo` (cli/media.py)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ftpfusion_ros.cli.media import Video, contact_sheet, panel_row, side_by_side
from ftpfusion_ros.runtime import EngineConfig, FusionEngine


def test_side_by_side_and_contact_sheet_show_ir_visible_fused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ir, vis = rng.integers(0, 256, (25, 31), np.uint8), rng.integers(0, 256, (25, 31, 3), np.uint8)
    res = FusionEngine(EngineConfig(model="average")).push(ir, vis, "mono8", "bgr8")
    frame = side_by_side(res)
    assert frame.shape == (26, 94, 3)  # 3 x 31 panels, padded to even size for mp4v
    row = panel_row(res.aligned_ir, res.aligned_vis_bgr, res.fused_bgr)
    np.testing.assert_array_equal(row[:, :31, 0], res.aligned_ir)  # unlabelled panels are the images
    np.testing.assert_array_equal(row[:, 62:], res.fused_bgr)
    path = tmp_path / "sheet.png"
    assert contact_sheet([(res.aligned_ir, res.aligned_vis_bgr, res.fused_bgr)] * 2, path) == 2
    assert cv2.imread(str(path)).shape == (28 + 2 * 25, 93, 3)
    assert contact_sheet([], tmp_path / "none.png") == 0 and not (tmp_path / "none.png").exists()


def test_video_letterboxes_frames_of_another_size(tmp_path: Path) -> None:
    video = Video(tmp_path / "sub" / "v.mp4", 10.0)
    video.write(np.full((48, 64, 3), 200, np.uint8))
    video.write(np.full((20, 64, 3), 200, np.uint8))  # another size: letterboxed, not dropped
    video.close()
    cap = cv2.VideoCapture(str(tmp_path / "sub" / "v.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2 == video.frames
    cap.release()
