"""Training clip datasets (data/clips.py): decoding + cache, sampling, crops, flips, perturbations."""
import cv2
import numpy as np
import pytest
import torch

from ftpfusion_ros.data.clips import (ClipDataset, DecodedSequence, PerturbAugment, centre_crop_box, decode_sequence,
                                      fixed_clips, to_tensors)
from ftpfusion_ros.data.sequences import find_sequences, write_pair_folders
from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    SyntheticScene(SceneConfig(width=64, height=48, seed=0)).write_folders(root, 8, sequence="a")
    SyntheticScene(SceneConfig(width=64, height=48, seed=1)).write_folders(root, 6, sequence="b")
    return root


def _numbered(n: int, h: int = 24, w: int = 32) -> DecodedSequence:
    """A sequence whose frame t has value t everywhere except a gradient (to see crops and flips)."""
    x = np.arange(w, dtype=np.uint8)[None, None, :] + np.zeros((n, h, 1), np.uint8)
    ir = x + 10 * np.arange(n, dtype=np.uint8)[:, None, None]
    vis = np.stack([ir, ir + 1, ir + 2], axis=-1)  # BGR with B = ir, G = ir + 1, R = ir + 2
    return DecodedSequence("numbered", ir, vis, [f"{i:06d}.png" for i in range(n)])


def test_decode_folders_with_scale_and_cache(folders, tmp_path):
    pair = find_sequences(folders)[0]
    seq = decode_sequence(pair, scale=0.5, cache_dir=None)
    assert seq.ir.shape == (8, 24, 32) and seq.ir.dtype == np.uint8
    assert seq.vis.shape == (8, 24, 32, 3) and seq.vis.dtype == np.uint8
    _, ir0, vis0 = pair.read(0)
    np.testing.assert_array_equal(seq.vis[0], cv2.resize(vis0, (32, 24), interpolation=cv2.INTER_AREA))

    cache = tmp_path / "cache"
    first = decode_sequence(pair, scale=0.5, cache_dir=cache)
    entries = list(cache.iterdir())
    assert len(entries) == 1 and (entries[0] / "ir.npy").exists()
    again = decode_sequence(pair, scale=0.5, cache_dir=cache)
    assert isinstance(again.ir, np.memmap)  # read back from the cache, not decoded again
    np.testing.assert_array_equal(np.asarray(again.vis), seq.vis)
    np.testing.assert_array_equal(np.asarray(first.ir), seq.ir)
    decode_sequence(pair, scale=1.0, cache_dir=cache)  # another scale: another cache entry
    assert len(list(cache.iterdir())) == 2


def test_cache_is_invalidated_when_the_source_changes(tmp_path):
    root = tmp_path / "data"
    frames = [(np.full((16, 16), 10 * i, np.uint8), np.full((16, 16, 3), 5 * i, np.uint8)) for i in range(3)]
    write_pair_folders(root, "s", frames)
    cache = tmp_path / "cache"
    before = decode_sequence(find_sequences(root)[0], cache_dir=cache)
    assert int(before.ir[2, 0, 0]) == 20
    write_pair_folders(root, "s", [(np.full((16, 16), 99, np.uint8), f[1]) for f in frames])
    after = decode_sequence(find_sequences(root)[0], cache_dir=cache)
    assert int(after.ir[2, 0, 0]) == 99


def test_decode_mp4_pair(tmp_path):
    def write(path, frames):
        path.parent.mkdir(parents=True, exist_ok=True)
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (48, 32))
        for f in frames:
            w.write(f)
        w.release()

    write(tmp_path / "infrared" / "seq.mp4", [np.full((32, 48, 3), 20 * i, np.uint8) for i in range(6)])
    write(tmp_path / "visible" / "seq.mp4", [np.full((32, 48, 3), 30 + 20 * i, np.uint8) for i in range(6)])
    (pair,) = find_sequences(tmp_path)
    seq = decode_sequence(pair, scale=0.5)
    assert seq.ir.shape == (6, 16, 24) and seq.vis.shape == (6, 16, 24, 3)
    assert abs(int(seq.ir[3].mean()) - 60) <= 3  # lossy codec: near the written level
    ds = ClipDataset([seq], clip_len=3, patch=16, hflip=0)
    ir, vis = ds[0]
    assert ir.shape == (1, 3, 16, 16) and vis.shape == (3, 3, 16, 16)


def test_16bit_ir_is_mapped_with_one_window_per_sequence(tmp_path):
    base = np.tile(np.linspace(6000, 9000, 32, dtype=np.float64), (16, 1))
    frames = []
    for i in range(4):
        ir = (base + (300 if i == 2 else 0)).astype(np.uint16)  # frame 2 is warmer overall
        frames.append((ir, np.zeros((16, 32, 3), np.uint8)))
    write_pair_folders(tmp_path, "hot", frames)
    seq = decode_sequence(find_sequences(tmp_path)[0])
    assert seq.ir.dtype == np.uint8
    # a per-frame min-max would make every frame identical; one window keeps frame 2 brighter
    assert seq.ir[2].astype(int).mean() > seq.ir[1].astype(int).mean() + 10
    np.testing.assert_array_equal(seq.ir[0], seq.ir[1])


def test_clip_dataset_samples_consecutive_frames_and_is_seeded():
    seq = _numbered(10)
    ds = ClipDataset([seq], clip_len=4, patch=8, hflip=0.0, seed=3)
    assert len(ds) == 7
    ir, vis = ds[5]
    assert ir.shape == (1, 4, 8, 8) and vis.shape == (3, 4, 8, 8)
    ir8 = (ir[0] * 255).round().to(torch.int64)
    # consecutive frames: the per-frame offset goes up by 10 each frame
    steps = (ir8[1:] - ir8[:-1]).unique().tolist()
    assert steps == [10]
    # visible is RGB: R = B + 2
    assert torch.allclose(vis[0] - vis[2], torch.full_like(vis[0], 2 / 255), atol=1e-6)
    ir_again, vis_again = ds[5]
    assert torch.equal(ir, ir_again) and torch.equal(vis, vis_again)
    other = [ds[i][0] for i in range(6, 12)]
    assert any(not torch.equal(ir, o) for o in other)
    reseeded = ClipDataset([seq], clip_len=4, patch=8, hflip=0.0, seed=4)
    assert any(not torch.equal(ds[i][0], reseeded[i][0]) for i in range(8))


def test_flips_mirror_both_modalities():
    seq = _numbered(5)
    plain = ClipDataset([seq], clip_len=2, patch=8, hflip=0.0)
    flipped = ClipDataset([seq], clip_len=2, patch=8, hflip=1.0)
    for i in range(3):
        a, b = plain[i], flipped[i]  # same draws, only the flip differs
        assert torch.equal(a[0].flip(-1), b[0]) and torch.equal(a[1].flip(-1), b[1])
    vflipped = ClipDataset([seq], clip_len=2, patch=8, hflip=0.0, vflip=1.0)
    assert torch.equal(plain[0][0].flip(-2), vflipped[0][0])


def test_sequences_are_drawn_in_proportion_to_their_clips():
    long = _numbered(40)
    short = DecodedSequence("short", np.full((4, 24, 32), 255, np.uint8), np.zeros((4, 24, 32, 3), np.uint8),
                            ["0", "1", "2", "3"])
    ds = ClipDataset([long, short], clip_len=4, patch=8)  # 37 clip starts vs 1
    from_short = sum(int(ds[i][0].min() == 1.0) for i in range(300))
    assert 1 <= from_short <= 25  # expected ~8


def test_patch_and_length_errors():
    seq = _numbered(5)
    with pytest.raises(ValueError, match="larger than the frames"):
        ClipDataset([seq], clip_len=2, patch=64)
    ds = ClipDataset([seq], clip_len=2, patch=8)
    with pytest.raises(ValueError, match="larger than the frames"):
        ds.set_patch(30)
    with pytest.raises(ValueError, match="shorter than clip_len"):
        ClipDataset([seq], clip_len=6, patch=8)


def test_perturbation_augmentation_changes_clips_deterministically(folders):
    seq = decode_sequence(find_sequences(folders)[0])
    clean = ClipDataset([seq], clip_len=3, patch=32, hflip=0.5, seed=1)
    aug = PerturbAugment(prob=1.0, flicker=2.0, jitter=1.0, misalign=2.0, offset=1)
    pert = ClipDataset([seq], clip_len=3, patch=32, hflip=0.5, perturb=aug, seed=1)
    off = ClipDataset([seq], clip_len=3, patch=32, hflip=0.5, perturb=PerturbAugment(prob=0.0, flicker=2.0), seed=1)
    for i in range(4):
        c, p, o = clean[i], pert[i], off[i]
        assert p[0].shape == c[0].shape and p[1].shape == c[1].shape
        assert not torch.equal(c[1], p[1])          # perturbed
        assert torch.equal(c[0], o[0]) and torch.equal(c[1], o[1])  # prob 0: identical to clean
        assert torch.equal(p[1], pert[i][1])        # deterministic
        assert 0 <= p[0].min() and p[0].max() <= 1


def test_fixed_clips_and_centre_crop():
    seq = _numbered(9, h=24, w=36)
    assert centre_crop_box((24, 36), None, 8) == (0, 2, 24, 32)
    assert centre_crop_box((24, 36), 16, 8) == (4, 10, 16, 16)
    ir, vis = fixed_clips(seq, 3, 3, crop=None, multiple=8)
    assert ir.shape == (3, 1, 3, 24, 32) and vis.shape == (3, 3, 3, 24, 32)
    firsts = (ir[:, 0, 0, 0, 0] * 255).round() - 2  # column offset 2, frame offset 10 * start
    assert firsts.tolist() == [0.0, 30.0, 60.0]


def test_to_tensors_converts_bgr_to_rgb():
    ir = np.full((2, 4, 4), 255, np.uint8)
    vis = np.zeros((2, 4, 4, 3), np.uint8)
    vis[..., 2] = 255  # red in BGR
    ir_t, vis_t = to_tensors(ir, vis)
    assert ir_t.shape == (1, 2, 4, 4) and ir_t.max() == 1
    assert vis_t[0].min() == 1 and vis_t[1:].max() == 0
