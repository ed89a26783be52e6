"""Console scripts work after `source install/setup.bash` (issue 11, defect 3).

Sourcing the colcon install puts its copy of the package, with the egg-info rosidl writes, first on
PYTHONPATH. That metadata must declare the same entry points as setup.py, or the venv's console
scripts (which look their entry point up by distribution name) fail with StopIteration.
"""
from __future__ import annotations

import shlex
import subprocess

import ros_env

ros_env.require_interfaces()

SCRIPTS = ("ftpfusion", "ftpfusion_sync_node", "ftpfusion_fusion_node", "ftpfusion_camera_sim",
           "ftpfusion_composed")


def _sourced(command: str) -> subprocess.CompletedProcess:
    setup = ros_env.INSTALL_PREFIX.parent / "setup.bash"
    script = f"source {shlex.quote(str(setup))} && {command}"
    return subprocess.run(["bash", "-c", script], env=ros_env.child_env(), cwd="/", capture_output=True,
                          text=True, timeout=120)


def test_installed_metadata_declares_every_console_script():
    probe = ("import importlib.metadata as m; d = m.distribution('ftpfusion_ros'); "
             "print(d._path); print(' '.join(sorted(e.name for e in d.entry_points)))")
    proc = _sourced(f"{shlex.quote(str(ros_env.VENV_BIN / 'python'))} -c {shlex.quote(probe)}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    where, names = proc.stdout.splitlines()[-2:]
    assert str(ros_env.INSTALL_PREFIX) in where, "the colcon install's metadata is the one found"
    assert set(SCRIPTS) <= set(names.split()), names


def test_ftpfusion_cli_runs_after_sourcing_the_install():
    proc = _sourced(f"{shlex.quote(str(ros_env.VENV_BIN / 'ftpfusion'))} --help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "StopIteration" not in proc.stderr and "usage: ftpfusion" in proc.stdout
