"""Stopping the composed node mid-stream (Ctrl-C, SIGTERM from launch or systemd) with the default
model (FTPFusion) is an orderly exit: status 0, no traceback, no ERROR, no complaint from rcl about
logging after the context is gone (issue 11, defect 10)."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

import ros_env
from ros_env import Probe, node_process, stop

ros_env.require_interfaces()

from sensor_msgs.msg import Image  # noqa: E402

SIGNALS = [signal.SIGTERM]
if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a test run started in the background
    SIGNALS.append(signal.SIGINT)                            # passes SIGINT on as ignored


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_stopping_mid_stream_is_clean(sig: signal.Signals, tmp_path: Path) -> None:
    probe = Probe("ftpfusion_test_shutdown_proc")
    log = tmp_path / "composed.log"
    composed = node_process("composed", {"autostart": True}, log=log)  # model auto: FTPFusion with its checkpoint
    sim = None
    try:
        fused = probe.collect(Image, "fused/image")
        assert probe.spin_until(lambda: probe.node.count_publishers("/fused/image") > 0
                                and probe.node.count_subscribers("/visible/image_raw") > 0, 90), log.read_text()[-2000:]
        sim = node_process("camera_sim", {"width": 160, "height": 120, "rate": 10.0})
        assert probe.spin_until(lambda: len(fused) >= 5, 60), "nothing fused"
        composed.send_signal(sig)  # while frames keep arriving and one is likely being fused
        composed.wait(30)
    finally:
        if sim is not None:
            stop(sim)
        stop(composed)
        probe.close()
    text = log.read_text()
    assert composed.returncode == 0, text[-3000:]
    assert "fusing with ftpfusion" in text
    for bad in ("Traceback", "[ERROR]", "Failed to publish"):
        assert bad not in text, text[-3000:]
