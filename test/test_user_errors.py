"""A user's mistakes give one clear line, never a traceback (issue 11, defects 4 and 9).

Node parameters of the wrong type or out of range, model options of the wrong type, CLI output paths
that cannot be created and frame sizes no machine can hold. Integer YAML values for float parameters
(``slop: 1``) are what the user meant and are accepted.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import ros_env
from ros_env import Probe

ros_env.require_interfaces()

from rclpy.parameter import Parameter  # noqa: E402

from ftpfusion_ros.cli.main import main as cli  # noqa: E402
from ftpfusion_ros.ros.fusion_node import FusionNode  # noqa: E402
from ftpfusion_ros.ros.sync_node import SyncNode  # noqa: E402
from ftpfusion_ros.runtime import EngineConfig, FusionEngine  # noqa: E402


@pytest.fixture(scope="module")
def probe():
    p = Probe("ftpfusion_test_user_errors")
    yield p
    p.close()


def _fusion(probe: Probe, **params) -> FusionNode:
    base = {"model": "average", "cpu_threads": torch.get_num_threads(), "diagnostics_period": 0.0}
    return FusionNode(context=probe.context,
                      parameter_overrides=[Parameter(k, value=v) for k, v in {**base, **params}.items()])


def test_integer_values_for_float_parameters_are_accepted(probe):
    sync = SyncNode(context=probe.context, parameter_overrides=[Parameter("slop", value=1),
                                                                Parameter("silence_timeout", value=2)])
    try:
        assert sync.slop == 1.0 and isinstance(sync.slop, float) and sync.silence_timeout == 2.0
    finally:
        sync.destroy_node()
    node = _fusion(probe, homography=[1, 0, 5, 0, 1, 0, 0, 0, 1], flicker_warn=3)
    try:
        assert node.engine_config.homography == [1.0, 0.0, 5.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        assert node.engine.homography is not None and node.flicker_warn == 3.0
    finally:
        node.destroy_node()


@pytest.mark.parametrize("name, value, message", [
    ("queue_size", "ten", "'queue_size' must be an integer"),
    ("queue_size", 0, "queue_size"),
    ("cpu_threads", -1, "cpu_threads"),
    ("reset_after_errors", -2, "reset_after_errors"),
    ("silence_timeout", -1.0, "silence_timeout"),
    ("window", -3, "window"),
    ("lookahead", 1.5, "'lookahead' must be an integer"),
    ("publish_aligned", "yes", "'publish_aligned' must be true or false"),
    ("homography", [1.0, 0.0, 0.0], "'homography' needs 0 or 9 values"),
    ("seg.format", "jpeg", "'seg.format' must be one of"),
    ("precision", "fp8", "'precision' must be one of"),
    ("qos_overrides./frame_pair.subscription.depth", 0, r"qos_overrides\./frame_pair\.subscription"),
    ("qos_overrides./fused/image.publisher.reliability", "sometimes", r"qos_overrides\./fused/image\.publisher"),
])
def test_bad_fusion_node_parameters_are_one_clear_error(probe, name, value, message):
    with pytest.raises(ValueError, match=message):
        _fusion(probe, **{name: value})


@pytest.mark.parametrize("name, value, message", [
    ("slop", "fast", "'slop' must be a finite number"),
    ("slop", -0.1, "slop"),
    ("queue_size", "ten", "'queue_size' must be an integer"),
    ("sync_backend", "magic", "'sync_backend' must be one of"),
    ("time_jump_reset", -1.0, "time_jump_reset"),
])
def test_bad_sync_node_parameters_are_one_clear_error(probe, name, value, message):
    with pytest.raises(ValueError, match=message):
        SyncNode(context=probe.context, parameter_overrides=[Parameter(name, value=value)])


def test_model_option_of_the_wrong_type_is_refused_naming_it():
    with pytest.raises(ValueError, match="stabiliser='banana'.*true or false"):
        FusionEngine(EngineConfig(model="ftpfusion", model_options={"stabiliser": "banana"}))
    assert cli(["bench", "--model", "ftpfusion", "--model-option", "stabiliser=banana", "--size", "32x32"]) == 2


def test_node_process_with_a_bad_parameter_exits_with_one_line(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("ftpfusion_fusion_node:\n  ros__parameters:\n    model: average\n    queue_size: ten\n")
    proc = subprocess.run([sys.executable, "-m", "ftpfusion_ros.ros.fusion_node", "--ros-args",
                           "--params-file", str(params)], env=ros_env.child_env(), cwd=ros_env.REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert "parameter 'queue_size' must be an integer, got 'ten'" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["bench", "--model", "average", "--size", "100000x100000"], "at most"),
    (["export", "--model", "average", "--out", "x.onnx", "--size", "100000x100000"], "at most"),
])
def test_cli_sizes_no_machine_holds_are_one_line(argv, message, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_output_path_that_cannot_be_created_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "hostname"
    a_file.write_text("not a folder")
    assert cli(["demo", "--out", str(a_file), "--size", "64x48"]) == 2
    err = capsys.readouterr().err
    assert str(a_file) in err and err.count("\n") == 1 and "Traceback" not in err
