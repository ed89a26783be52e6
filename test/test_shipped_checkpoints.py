"""The checkpoints that ship with the package, as a user gets them (issue 11): each learned model loads
its packaged weights through the engine and fuses both sources; the default ``model: auto`` resolves
to FTPFusion with its checkpoint; and FTPFusion runs through the fusion node over real DDS, publishing
what the offline engine makes of the same frames (what is evaluated offline is what runs on the robot).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ftpfusion_ros.data.synthetic import SceneConfig, SyntheticScene
from ftpfusion_ros.models import model_class, model_names
from ftpfusion_ros.runtime import EngineConfig, FusionEngine, packaged_checkpoint

W, H = 96, 72
SQUARE = (slice(20, 44), slice(30, 60))
LEARNED = [n for n in model_names() if model_class(n).learned]


def _frames(n: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    scene = SyntheticScene(SceneConfig(width=W, height=H, seed=3))
    return [scene.frame(t) for t in range(n)]


def _encoding(ir: np.ndarray) -> str:
    return "mono16" if ir.dtype == np.uint16 else "mono8"


def _fuse_last(name: str, frames, change: str | None = None) -> np.ndarray:
    """Stream `frames`; with `change`, invert a square of the last frame's IR or visible image only."""
    engine = FusionEngine(EngineConfig(model=name))
    for k, (ir, vis) in enumerate(frames):
        if k == len(frames) - 1 and change:
            img = (ir if change == "ir" else vis).copy()
            img[SQUARE] = np.iinfo(img.dtype).max - img[SQUARE]
            ir, vis = (img, vis) if change == "ir" else (ir, img)
        res = engine.push(ir, vis, _encoding(ir), "bgr8")
    return res.fused_bgr.astype(np.float32)


def test_every_learned_model_ships_a_checkpoint():
    assert set(LEARNED) >= {"ftpfusion", "rpfnet", "f3net", "isfm"}
    for name in LEARNED:
        assert packaged_checkpoint(name) is not None, f"{name} has no packaged checkpoint"


@pytest.mark.parametrize("name", LEARNED)
def test_shipped_checkpoint_fuses_both_sources(name):
    """Loaded without allow_untrained (so from the packaged file, sha256 checked); a change in either
    camera's image shows in the fused frame where it happened, and hardly elsewhere."""
    frames = _frames()
    base = _fuse_last(name, frames)
    assert np.isfinite(base).all() and base.std() > 10, "blank or constant fused frame"
    for source in ("ir", "vis"):
        diff = np.abs(_fuse_last(name, frames, change=source) - base)
        inside = float(diff[SQUARE].mean())
        mask = np.ones(diff.shape[:2], bool)
        mask[16:48, 26:64] = False
        outside = float(diff[mask].mean())
        assert inside > 20 and inside > 4 * outside, f"{name}: {source} change {inside:.1f} inside, {outside:.1f} outside"


@pytest.mark.parametrize("name", LEARNED)
def test_shipped_network_changes_its_weight_free_base(name):
    """Every packaged network has learned something: its output differs from its own base (the same
    model with refine=false) by more than rounding. The ISFM checkpoint of 0.1 did not (its residual head
    stayed at its start; it equalled max fusion within 1/255)."""
    frames = _frames()

    def last(options: dict) -> np.ndarray:
        engine = FusionEngine(EngineConfig(model=name, model_options=options))
        for ir, vis in frames:
            res = engine.push(ir, vis, _encoding(ir), "bgr8")
        return res.fused_bgr.astype(np.float32)

    diff = np.abs(last({}) - last({"refine": False}))
    assert diff.mean() > 0.5 and diff.max() >= 4, f"{name}: mean {diff.mean():.2f}, max {diff.max():.0f} grey levels"


def test_default_auto_model_is_ftpfusion_with_its_checkpoint():
    engine = FusionEngine(EngineConfig())  # model "auto", no checkpoint given
    assert engine.model_name == "ftpfusion"
    reference = FusionEngine(EngineConfig(model="ftpfusion", checkpoint=str(packaged_checkpoint("ftpfusion"))))
    for ir, vis in _frames(3):
        got = engine.push(ir, vis, _encoding(ir), "bgr8").fused_bgr
        want = reference.push(ir, vis, _encoding(ir), "bgr8").fused_bgr
        np.testing.assert_array_equal(got, want)


def test_ftpfusion_through_the_fusion_node_over_dds_equals_the_offline_engine():
    import ros_env

    ros_env.require_interfaces()
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from ftpfusion_ros.msg import FramePair
    from ftpfusion_ros.ros.conversions import array_to_image, image_to_array
    from ftpfusion_ros.ros.fusion_node import FusionNode
    from ftpfusion_ros.ros.pairs import ImagePair, pair_to_msg

    frames = _frames(12)
    probe = ros_env.Probe("ftpfusion_test_shipped")
    try:
        # the node's defaults (model auto), with a queue long enough that no pair is dropped here
        params = [Parameter("queue_size", value=len(frames)), Parameter("cpu_threads", value=torch.get_num_threads()),
                  *ros_env.reliable_inputs(50, ("/frame_pair",))]
        node = probe.add(FusionNode(context=probe.context, parameter_overrides=params))
        assert node.engine.model_name == "ftpfusion" and node.engine.window > 1
        pub = probe.node.create_publisher(FramePair, "frame_pair", QoSProfile(depth=50))
        fused = probe.collect(Image, "fused/image")
        assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 10)
        for k, (ir, vis) in enumerate(frames):
            header = Header(frame_id="visible_camera")
            header.stamp.sec, header.stamp.nanosec = 100 + k // 10, (k % 10) * 100_000_000
            pair = ImagePair(ir=array_to_image(ir, _encoding(ir), header), visible=array_to_image(vis, "bgr8", header),
                             skew_sec=0.0)
            pub.publish(pair_to_msg(pair, FramePair))
        assert probe.spin_until(lambda: len(fused) == len(frames), 120), f"{len(fused)} of {len(frames)} fused"
        assert node.pairs_dropped == 0
    finally:
        probe.close()
    offline = FusionEngine(EngineConfig())
    for (ir, vis), msg in zip(frames, fused):
        want = offline.push(ir, vis, _encoding(ir), "bgr8").fused_bgr.astype(np.int16)
        got = image_to_array(msg).astype(np.int16)
        assert np.abs(got - want).max() <= 1, "the node's fused frame differs from the offline engine's"
