"""`ftpfusion bench`: the JSON carries the backend and a per-stage breakdown (figures are not asserted:
speed is measured by the benchmark, not by tests)."""
from __future__ import annotations

import json

from ftpfusion_ros.cli.main import main
from ftpfusion_ros.runtime import EngineConfig
from ftpfusion_ros.runtime.benchmark import benchmark


def test_bench_json_has_backend_and_stages(capsys):
    assert main(["bench", "--model", "ftpfusion", "--size", "64x48", "--steps", "2", "--stage-steps", "2",
                 "--device", "cpu", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["backend"] == "pytorch" and res["providers"] is None
    stages = res["stages_ms_p50"]
    for key in ("pre", "encode", "encode.network", "encode.stabiliser", "fuse", "fuse.stabiliser", "fuse.dfam1",
                "fuse.dfam1.scam", "fuse.dfam3.lfpm", "fuse.refine", "fuse.decoder", "fuse.compose", "post", "total"):
        assert key in stages and stages[key] >= 0.0, key
    # nested stages are parts of their parent
    assert stages["encode.network"] <= stages["encode"] <= stages["total"]
    assert res["params"] > 0 and res["flops"] > 0 and res["steps"] == 2


def test_bench_stage_timers_leave_the_engine_as_it_was():
    res = benchmark(EngineConfig(model="average", device="cpu"), 32, 24, steps=2, stage_steps=1)
    assert set(res["stages_ms_p50"]) == {"pre", "encode", "fuse", "post", "total"}
    res0 = benchmark(EngineConfig(model="average", device="cpu"), 32, 24, steps=2, stage_steps=0)
    assert res0["stages_ms_p50"] == {}
