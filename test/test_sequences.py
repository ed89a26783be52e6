"""Sequence readers on tiny frame folders and MP4 pairs written here (no external data)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ftpfusion_ros.data.sequences import SequencePair, find_sequences, open_pair, write_pair_folders

H, W = 24, 32


def make_frames(n: int, rng: np.random.Generator, ir_dtype=np.uint8):
    hi = 255 if ir_dtype == np.uint8 else 16383
    return [(rng.integers(0, hi + 1, (H, W)).astype(ir_dtype), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
            for _ in range(n)]


def write_folder(path: Path, images: dict[str, np.ndarray]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        assert cv2.imwrite(str(path / name), img)
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened()
    for f in frames:
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def flat_levels(n: int) -> list[int]:
    """Distinct flat grey levels: frames survive lossy coding and stay identifiable."""
    return [20 + 40 * i for i in range(n)]


# ------------------------------------------------------------------------------------------- folders
def test_folder_pair_round_trip_and_conversions(tmp_path, rng):
    frames = make_frames(4, rng)
    # IR written as 3 identical channels, visible as mono for the first frame: both must be normalised.
    ir_imgs = {f"{i:06d}.png": cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR) for i, (ir, _) in enumerate(frames)}
    vis_imgs = {f"{i:06d}.png": vis for i, (_, vis) in enumerate(frames)}
    vis_imgs["000000.png"] = frames[0][1][:, :, 0]
    pair = open_pair(write_folder(tmp_path / "seq" / "ir", ir_imgs), write_folder(tmp_path / "seq" / "vis", vis_imgs))
    assert isinstance(pair, SequencePair)
    assert pair.name == "seq"
    assert len(pair) == 4
    assert pair.frame_names == [f"{i:06d}.png" for i in range(4)]
    got = list(pair.frames())
    assert [g[0] for g in got] == pair.frame_names
    for i, (name, ir, vis) in enumerate(got):
        assert ir.shape == (H, W) and ir.dtype == np.uint8
        assert vis.shape == (H, W, 3) and vis.dtype == np.uint8
        np.testing.assert_array_equal(ir, frames[i][0])
        if i == 0:  # mono visible -> three equal channels
            for c in range(3):
                np.testing.assert_array_equal(vis[:, :, c], frames[0][1][:, :, 0])
        else:
            np.testing.assert_array_equal(vis, frames[i][1])
    # frames(start, stop) and random access
    assert [n for n, _, _ in pair.frames(1, 3)] == ["000001.png", "000002.png"]
    assert [n for n, _, _ in pair.frames(start=2)] == ["000002.png", "000003.png"]
    assert list(pair.frames(3, 1)) == []
    name, ir, vis = pair.read(-1)
    assert name == "000003.png"
    np.testing.assert_array_equal(ir, frames[3][0])
    with pytest.raises(IndexError):
        pair.read(4)


def test_sixteen_bit_ir_is_kept_losslessly(tmp_path, rng):
    frames = make_frames(2, rng, np.uint16)
    assert max(f[0].max() for f in frames) > 255
    seq = write_pair_folders(tmp_path, "hot", frames)
    assert seq == tmp_path / "hot"
    pair = open_pair(seq / "ir", seq / "vis")
    for (name, ir, vis), (ir0, vis0) in zip(pair.frames(), frames):
        assert ir.dtype == np.uint16
        np.testing.assert_array_equal(ir, ir0)
        np.testing.assert_array_equal(vis, vis0)


def test_other_formats_and_natural_order(tmp_path, rng):
    ir16 = rng.integers(0, 65536, (H, W)).astype(np.uint16)
    ir_dir = write_folder(tmp_path / "ir", {"2.tif": ir16, "10.tif": ir16 // 2, "1.tif": ir16 // 4})
    vis = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    vis_dir = write_folder(tmp_path / "vis", {"2.bmp": vis, "10.jpg": vis, "1.bmp": vis})
    pair = open_pair(ir_dir, vis_dir)
    assert pair.frame_names == ["1.bmp", "2.bmp", "10.jpg"]  # numbers ordered as numbers, not as text
    irs = [ir for _, ir, _ in pair.frames()]
    np.testing.assert_array_equal(irs[0], ir16 // 4)
    np.testing.assert_array_equal(irs[1], ir16)
    np.testing.assert_array_equal(irs[2], ir16 // 2)


def test_prefixed_names_pair_by_number(tmp_path, rng):
    frames = make_frames(3, rng)
    ir_dir = write_folder(tmp_path / "ir", {f"IR_{i:04d}.png": f[0] for i, f in enumerate(frames)})
    vis_dir = write_folder(tmp_path / "vis", {f"VIS_{i:04d}.png": f[1] for i, f in enumerate(frames)})
    pair = open_pair(ir_dir, vis_dir)
    assert pair.frame_names == [f"VIS_{i:04d}.png" for i in range(3)]


def test_missing_and_empty_folders(tmp_path):
    (tmp_path / "vis").mkdir()
    write_folder(tmp_path / "ir", {"000001.png": np.zeros((H, W), np.uint8)})
    with pytest.raises(FileNotFoundError, match="nope"):
        open_pair(tmp_path / "nope", tmp_path / "vis")
    with pytest.raises(ValueError, match=r"vis.*no images"):
        open_pair(tmp_path / "ir", tmp_path / "vis")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt"):
        open_pair(tmp_path / "ir", tmp_path / "notes.txt")


def test_unequal_counts_name_the_missing_frames(tmp_path, rng):
    frames = make_frames(3, rng)
    ir_dir = write_folder(tmp_path / "ir", {f"{i:06d}.png": f[0] for i, f in enumerate(frames)})
    vis_dir = write_folder(tmp_path / "vis", {f"{i:06d}.png": f[1] for i, f in enumerate(frames[:2])})
    with pytest.raises(ValueError, match=r"unequal frame counts.*3 frames.*2.*only in IR: 000002"):
        open_pair(ir_dir, vis_dir)


def test_names_that_do_not_pair_up(tmp_path, rng):
    frames = make_frames(2, rng)
    ir_dir = write_folder(tmp_path / "ir", {"a_001.png": frames[0][0], "a_002.png": frames[1][0]})
    vis_dir = write_folder(tmp_path / "vis", {"a_001.png": frames[0][1], "a_003.png": frames[1][1]})
    with pytest.raises(ValueError, match=r"do not pair up.*only in IR: a_002.*only in visible: a_003"):
        open_pair(ir_dir, vis_dir)


def test_unreadable_image_names_the_file(tmp_path, rng):
    frames = make_frames(2, rng)
    ir_dir = write_folder(tmp_path / "ir", {f"{i:06d}.png": f[0] for i, f in enumerate(frames)})
    vis_dir = write_folder(tmp_path / "vis", {f"{i:06d}.png": f[1] for i, f in enumerate(frames)})
    (vis_dir / "000001.png").write_bytes(b"not a png at all")
    pair = open_pair(ir_dir, vis_dir)
    it = pair.frames()
    next(it)
    with pytest.raises(ValueError, match=r"cannot read image .*vis.000001\.png"):
        next(it)


# -------------------------------------------------------------------------------------------- videos
def test_mp4_pair(tmp_path):
    levels = flat_levels(5)
    ir_frames = [np.full((H, W), v, np.uint8) for v in levels]
    vis_frames = [np.dstack([np.full((H, W), v, np.uint8), np.full((H, W), 255 - v, np.uint8),
                             np.full((H, W), 128, np.uint8)]) for v in levels]
    ir_path = write_video(tmp_path / "infrared" / "clip.mp4", ir_frames)
    vis_path = write_video(tmp_path / "visible" / "clip.mp4", vis_frames)
    pair = open_pair(ir_path, vis_path)
    assert pair.name == "clip" and len(pair) == 5
    assert pair.frame_names[:2] == ["000001.png", "000002.png"]
    assert pair.fps == pytest.approx(10.0)
    got = list(pair.frames())
    assert len(got) == 5
    for (name, ir, vis), v in zip(got, levels):
        assert ir.shape == (H, W) and ir.dtype == np.uint8      # 3 channels -> 1
        assert vis.shape == (H, W, 3) and vis.dtype == np.uint8
        assert abs(float(ir.mean()) - v) < 6                   # lossy codec, but the right frame
        assert abs(float(vis[:, :, 0].mean()) - v) < 8
    # a slice decodes the right frames
    sl = list(pair.frames(2, 4))
    assert [n for n, _, _ in sl] == ["000003.png", "000004.png"]
    assert abs(float(sl[0][1].mean()) - levels[2]) < 6
    assert abs(float(pair.read(4)[1].mean()) - levels[4]) < 6


def test_mp4_errors(tmp_path):
    levels = flat_levels(4)
    ir_path = write_video(tmp_path / "ir.mp4", [np.full((H, W), v, np.uint8) for v in levels])
    vis_path = write_video(tmp_path / "vis.mp4", [np.full((H, W, 3), v, np.uint8) for v in levels[:3]])
    with pytest.raises(ValueError, match=r"unequal frame counts.*4 frames.*3"):
        open_pair(ir_path, vis_path)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        open_pair(ir_path, tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="bad.mp4"):
        open_pair(ir_path, bad)


# ------------------------------------------------------------------------------------ find_sequences
def test_find_sequences_folder_layout(tmp_path, rng):
    write_pair_folders(tmp_path, "seq10", make_frames(2, rng))
    write_pair_folders(tmp_path, "seq2", make_frames(3, rng))
    (tmp_path / "results").mkdir()  # unrelated folders are ignored
    seqs = find_sequences(tmp_path)
    assert [s.name for s in seqs] == ["seq2", "seq10"]
    assert [len(s) for s in seqs] == [3, 2]
    assert seqs[0].frame_names == ["000001.png", "000002.png", "000003.png"]


def test_find_sequences_mp4_layout(tmp_path):
    levels = flat_levels(3)
    for seq in ("b", "a"):
        write_video(tmp_path / "infrared" / f"{seq}.mp4", [np.full((H, W), v, np.uint8) for v in levels])
        write_video(tmp_path / "visible" / f"{seq}.mp4", [np.full((H, W, 3), v, np.uint8) for v in levels])
    seqs = find_sequences(tmp_path)
    assert [s.name for s in seqs] == ["a", "b"]
    assert all(len(s) == 3 for s in seqs)
    write_video(tmp_path / "infrared" / "c.mp4", [np.full((H, W), 9, np.uint8)])
    with pytest.raises(ValueError, match="only IR: c"):
        find_sequences(tmp_path)


def test_find_sequences_root_is_one_sequence_and_errors(tmp_path, rng):
    write_pair_folders(tmp_path, "single", make_frames(2, rng))
    seqs = find_sequences(tmp_path / "single")
    assert len(seqs) == 1 and seqs[0].name == "single" and len(seqs[0]) == 2
    with pytest.raises(FileNotFoundError):
        find_sequences(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no sequences found"):
        find_sequences(tmp_path / "empty")
    (tmp_path / "broken" / "s1" / "ir").mkdir(parents=True)
    with pytest.raises(ValueError, match="no visible"):
        find_sequences(tmp_path / "broken")


def test_write_pair_folders_keeps_names(tmp_path, rng):
    frames = make_frames(2, rng)
    seq = write_pair_folders(tmp_path, "named", [(f"f{i}.jpg", ir, vis) for i, (ir, vis) in enumerate(frames)])
    assert sorted(p.name for p in (seq / "ir").iterdir()) == ["f0.png", "f1.png"]
    assert sorted(p.name for p in (seq / "vis").iterdir()) == ["f0.png", "f1.png"]
