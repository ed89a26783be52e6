import torch

from ftpfusion_ros.nn.colour import restore_colour, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb


def test_ycbcr_round_trip_and_bt601_luma():
    rgb = torch.rand(2, 3, 8, 9)
    ycc = rgb_to_ycbcr(rgb)
    assert torch.allclose(ycbcr_to_rgb(ycc), rgb, atol=1e-6)
    assert torch.allclose(ycc[:, :1], 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:], atol=1e-7)
    assert torch.allclose(rgb_to_y(rgb), ycc[:, :1])
    grey = torch.full((1, 3, 2, 2), 0.3)
    assert torch.allclose(rgb_to_ycbcr(grey)[:, 1:], torch.full((1, 2, 2, 2), 0.5), atol=1e-7)


def test_restore_colour_keeps_visible_chroma_and_fused_luma():
    vis = torch.rand(1, 3, 6, 6) * 0.5 + 0.25
    y = torch.rand(1, 1, 6, 6) * 0.2 + 0.4
    out = restore_colour(y, vis)
    assert torch.allclose(rgb_to_y(out), y, atol=1e-5)
    assert torch.allclose(rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(vis)[:, 1:], atol=1e-5)
    # works on clips too (channel dim 1 of a 5-D tensor)
    clip = restore_colour(y[:, :, None].expand(1, 1, 3, 6, 6), vis[:, :, None].expand(1, 3, 3, 6, 6))
    assert clip.shape == (1, 3, 3, 6, 6)
