"""The fusion node's registration_file parameter: the file reaches the engine, and the old homography
parameter cannot be given with it."""
from __future__ import annotations

import numpy as np
import pytest

import ros_env
from ros_env import Probe

ros_env.require_interfaces()

from rclpy.parameter import Parameter  # noqa: E402

from ftpfusion_ros.runtime.registration import save_registration  # noqa: E402


def test_registration_file_parameter_reaches_the_engine(tmp_path) -> None:
    from ftpfusion_ros.ros.fusion_node import FusionNode

    h = np.array([[1.2, 0.0, -30.0], [0.0, 1.2, -20.0], [0.0, 0.0, 1.0]])
    path = save_registration(tmp_path / "reg.yaml", {"homography": h.tolist(), "ir_size": [160, 128],
                                                     "vis_size": [192, 144]})
    probe = Probe()
    try:
        base = [Parameter("model", value="average"), Parameter("cpu_threads", value=1)]
        node = FusionNode(context=probe.context,
                          parameter_overrides=base + [Parameter("registration_file", value=str(path))])
        np.testing.assert_allclose(node.engine.homography, h)
        # the IR frame (another resolution and aspect ratio) comes out on the visible grid
        res = node.engine.push(np.full((128, 160), 200, np.uint8), np.zeros((144, 192, 3), np.uint8))
        res = res or node.engine.flush()[0]
        assert res.aligned_ir.shape == (144, 192)
        node.destroy_node()
        with pytest.raises(ValueError, match="not both"):
            FusionNode(context=probe.context, parameter_overrides=base + [
                Parameter("registration_file", value=str(path)),
                Parameter("homography", value=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])])
        with pytest.raises(FileNotFoundError):
            FusionNode(context=probe.context,
                       parameter_overrides=base + [Parameter("registration_file", value=str(tmp_path / "no.yaml"))])
    finally:
        probe.close()
