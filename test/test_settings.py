"""The engine settings schema (runtime/settings.py) and the radiometric gain-control units (runtime/agc.py)."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

from ftpfusion_ros.runtime import AGCConfig, EngineConfig, FusionEngine, ThermalAGC
from ftpfusion_ros.runtime.settings import (BY_NAME, ENGINE_SETTINGS, add_arguments, check_mapping, engine_config,
                                            values_from_args)


def test_every_engine_config_field_has_a_setting() -> None:
    """EngineConfig and the schema do not drift apart: each field (agc as its group) is declared once."""
    import dataclasses

    names = {s.name.split(".")[0] for s in ENGINE_SETTINGS}
    assert {f.name for f in dataclasses.fields(EngineConfig)} <= names
    agc_fields = {f.name for f in dataclasses.fields(AGCConfig)} - {"subsample"}
    assert {f"agc.{n}" for n in agc_fields} <= set(BY_NAME)
    for s in ENGINE_SETTINGS:
        assert s.description and s.kind


def test_defaults_build_the_default_engine_config() -> None:
    cfg = engine_config({})
    ref = EngineConfig()
    import dataclasses

    for f in dataclasses.fields(EngineConfig):
        assert getattr(cfg, f.name) == getattr(ref, f.name), f.name


@pytest.mark.parametrize("data, message", [
    ({"modle": "average"}, "unknown engine setting 'modle' (did you mean 'model'?)"),
    ({"agc": {"mod": "fixed"}}, "unknown engine setting 'agc.mod'"),
    ({"window": -1}, "'window' must be >= 0"),
    ({"agc.low_percentile": 120.0}, "'agc.low_percentile' must be <= 100"),
    ({"precision": "fp8"}, "'precision' must be one of"),
    ({"lookahead": 1.5}, "'lookahead' must be an integer"),
    ({"homography": [1.0, 2.0]}, "'homography' needs 0 or 9 values"),
    ({"agc.mode": "minmax"}, "'agc.mode' must be one of percentile, fixed"),
])
def test_unknown_keys_and_bad_values_are_refused_naming_the_key(data, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        engine_config(data)


def test_nested_and_dotted_keys_are_the_same_setting() -> None:
    a = check_mapping({"agc": {"mode": "fixed", "fixed_low": 1, "fixed_high": 2}})
    b = check_mapping({"agc.mode": "fixed", "agc.fixed_low": 1.0, "agc.fixed_high": 2.0})
    assert a == b and isinstance(a["agc.fixed_low"], float)


def test_cli_flags_come_from_the_schema() -> None:
    parser = argparse.ArgumentParser()
    added = add_arguments(parser, exclude={"model"})
    assert "model" not in {s.name for s in added} and "seg.width" not in {s.name for s in added}
    args = parser.parse_args(["--agc-mode", "fixed", "--agc-ir-unit", "centikelvin", "--agc-window-unit", "celsius",
                              "--agc-fixed-low", "15", "--agc-fixed-high", "40", "--window", "3",
                              "--allow-untrained"])
    values = values_from_args(args)
    assert values == {"agc.mode": "fixed", "agc.ir_unit": "centikelvin", "agc.window_unit": "celsius",
                      "agc.fixed_low": 15.0, "agc.fixed_high": 40.0, "window": 3, "allow_untrained": True}
    cfg = engine_config(values)
    assert cfg.window == 3 and cfg.agc.fixed_window_raw() == pytest.approx((28815.0, 31315.0))
    with pytest.raises(SystemExit):  # argparse's own one-line error for a choice
        parser.parse_args(["--agc-mode", "minmax"])
    # the homography, once a node-only parameter, is a flag like every other engine setting
    h = values_from_args(parser.parse_args(["--homography", "1", "0", "4", "0", "1", "0", "0", "0", "1"]))
    assert engine_config(h).homography == [1.0, 0.0, 4.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="'homography' needs 0 or 9 values"):
        values_from_args(parser.parse_args(["--homography", "1", "0"]))
    bad = parser.parse_args(["--window", "-2"])
    with pytest.raises(ValueError, match="--window: 'window' must be >= 0"):
        values_from_args(bad)


# -- radiometric units ------------------------------------------------------------------------------
@pytest.mark.parametrize("ir_unit, dtype, to_camera", [
    ("centikelvin", np.uint16, lambda c: (c + 273.15) * 100.0),   # Lepton TLinear, mono16
    ("kelvin", np.float32, lambda c: c + 273.15),                  # 32FC1 in kelvin
    ("celsius", np.float32, lambda c: c),                          # 32FC1 in degrees C
])
def test_fixed_temperature_window_maps_the_same_scene_alike(ir_unit, dtype, to_camera) -> None:
    celsius = np.linspace(10.0, 45.0, 64 * 48, dtype=np.float64).reshape(48, 64)
    raw = np.round(to_camera(celsius)).astype(dtype) if dtype == np.uint16 else to_camera(celsius).astype(dtype)
    agc = ThermalAGC(AGCConfig(mode="fixed", ir_unit=ir_unit, window_unit="celsius", fixed_low=20.0, fixed_high=30.0))
    out = agc(raw)
    want = np.clip((celsius - 20.0) / 10.0, 0.0, 1.0)
    assert np.abs(out - want).max() < 0.002  # centi-kelvin rounding: 0.005 K of 10 K


def test_kelvin_window_and_window_checks() -> None:
    cfg = AGCConfig(mode="fixed", ir_unit="centikelvin", window_unit="kelvin", fixed_low=290.0, fixed_high=310.0)
    assert cfg.fixed_window_raw() == pytest.approx((29000.0, 31000.0))
    with pytest.raises(ValueError, match="needs a radiometric ir_unit"):
        AGCConfig(mode="fixed", ir_unit="counts", window_unit="celsius")
    with pytest.raises(ValueError, match="ir_unit"):
        AGCConfig(ir_unit="fahrenheit")


def test_engine_fuses_centikelvin_and_temperature_frames_with_one_window() -> None:
    """The same scene as TLinear mono16 and as 32FC1 degrees C gives the same aligned IR with a fixed
    window in degrees C: the unit is a setting, not a different picture."""
    rng = np.random.default_rng(0)
    celsius = 15.0 + 25.0 * rng.random((48, 64))
    vis = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    outs = []
    for ir_unit, ir, enc in (("centikelvin", np.round((celsius + 273.15) * 100).astype(np.uint16), "mono16"),
                             ("celsius", celsius.astype(np.float32), "32FC1")):
        cfg = engine_config({"model": "max_luminance", "agc.mode": "fixed", "agc.ir_unit": ir_unit,
                             "agc.window_unit": "celsius", "agc.fixed_low": 15.0, "agc.fixed_high": 40.0})
        outs.append(FusionEngine(cfg).push(ir, vis, enc, "bgr8").aligned_ir.astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 1
    assert np.abs(outs[1] - np.round((celsius - 15.0) / 25.0 * 255)).max() <= 1


def test_reconfigure_keeps_or_restarts_the_smoothed_window() -> None:
    agc = ThermalAGC(AGCConfig())
    agc(np.linspace(1000, 2000, 256, dtype=np.float32).reshape(16, 16).astype(np.uint16))
    assert agc.window is not None
    agc.reconfigure(AGCConfig(smoothing=0.5))
    assert agc.window is not None  # only the smoothing changed: the window goes on
    agc.reconfigure(AGCConfig(mode="fixed", fixed_low=0, fixed_high=10))
    assert agc.window is None


def test_fuse_and_eval_take_the_schema_flags(tmp_path, capsys) -> None:
    """`fuse` refuses an inconsistent gain-control window in one line; `eval` hands the schema's settings
    to every engine it builds (the evaluation runner derives its configs from the same schema)."""
    import cv2

    from ftpfusion_ros.cli.main import main
    from ftpfusion_ros.evaluation.runner import EvalConfig, engine_configs

    for sub in ("ir", "vis"):
        (tmp_path / sub).mkdir()
        for i in range(2):
            cv2.imwrite(str(tmp_path / sub / f"{i:06d}.png"), np.full((24, 32, 3 if sub == "vis" else 1), 90, np.uint8))
    argv = ["fuse", "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"), "--out", str(tmp_path / "out"),
            "--model", "average", "--agc-mode", "fixed", "--agc-fixed-low", "5", "--agc-fixed-high", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "fixed_high > fixed_low" in err and err.count("\n") == 1
    assert main(argv[:-4]) == 0 and len(list((tmp_path / "out").glob("*.png"))) == 2

    cfgs = engine_configs(EvalConfig(models=["average", "max_luminance"],
                                     engine_settings={"agc.mode": "fixed", "agc.fixed_high": 4000.0, "window": 1}))
    assert all(c.agc.mode == "fixed" and c.agc.fixed_high == 4000.0 and c.window == 1 for c in cfgs.values())
    with pytest.raises(ValueError, match="'agc.smoothing' must be <= 1"):
        engine_configs(EvalConfig(models=["average"], engine_settings={"agc.smoothing": 2.0}))
