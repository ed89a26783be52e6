"""Launch files, parameter files and the installed executables.

Everywhere: the launch files' structure (arguments, referenced executables and files, all installed by
the colcon build), the YAML parameters against what the nodes declare, and a `ros2 run`-style start of an
installed executable. Where launch_ros is importable (a ROS install): the launch files are executed and
fused images must come out.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import ros_env
from ros_env import INSTALL_PREFIX, REPO, Probe, stop

ros_env.require_interfaces()

LAUNCH_DIR = REPO / "launch"
CONFIG_DIR = REPO / "config"
SHARE = INSTALL_PREFIX / "share" / "ftpfusion_ros"
LIB = INSTALL_PREFIX / "lib" / "ftpfusion_ros"
EXECUTABLES = {"ftpfusion_sync_node", "ftpfusion_fusion_node", "ftpfusion_camera_sim", "ftpfusion_composed"}
REQUIRED_ARGS = {
    "fusion.launch.py": {"model", "checkpoint", "device", "params_file", "ir_topic", "vis_topic", "composed",
                         "autostart", "use_sim_time", "rviz"},
    "demo.launch.py": {"model", "checkpoint", "device", "params_file", "composed", "autostart", "rviz", "width", "height", "rate"},
    "replay.launch.py": {"bag", "rate", "model", "checkpoint", "device", "params_file", "ir_topic", "vis_topic",
                         "composed", "autostart", "rviz"},
}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _constants(tree: ast.Module) -> dict[str, object]:
    """Module-level NAME = "literal" assignments (e.g. PACKAGE = "ftpfusion_ros")."""
    return {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets if isinstance(t, ast.Name)}


def _kw(call: ast.Call, key: str, constants: dict[str, object]):
    for kw in call.keywords:
        if kw.arg == key:
            if isinstance(kw.value, ast.Constant):
                return kw.value.value
            if isinstance(kw.value, ast.Name):
                return constants.get(kw.value.id)
    return None


@pytest.mark.parametrize("name", sorted(REQUIRED_ARGS))
def test_launch_file_structure(name: str) -> None:
    path = LAUNCH_DIR / name
    tree = ast.parse(path.read_text(), filename=str(path))
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    assert REQUIRED_ARGS[name] <= declared, f"{name} lacks {REQUIRED_ARGS[name] - declared}"
    # every LaunchConfiguration used is declared (here or, for included files, passed through)
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration")}
    assert used <= declared, f"{name} uses undeclared {used - declared}"
    constants = _constants(tree)
    for node in _calls(tree, "Node"):
        package, executable = _kw(node, "package", constants), _kw(node, "executable", constants)
        if package == "ftpfusion_ros":
            exe = LIB / executable
            assert executable in EXECUTABLES and exe.is_file() and os.stat(exe).st_mode & stat.S_IXUSR, exe
        else:
            assert (package, executable) == ("rviz2", "rviz2")
    # files referenced as os.path.join(<share>/<dir>, "<file>") exist in the source and in the install
    for call in _calls(tree, "join"):
        literals = [a.value for a in call.args if isinstance(a, ast.Constant)]
        if literals and literals[-1].endswith((".yaml", ".xml", ".rviz", ".py")):
            sub = "launch" if literals[-1].endswith(".py") else "config"
            assert (REPO / sub / literals[-1]).is_file(), literals
            assert (SHARE / sub / literals[-1]).is_file(), f"{literals[-1]} not installed"
    compile(path.read_text(), str(path), "exec")


def test_installed_share_matches_the_sources() -> None:
    for sub, pattern in (("launch", "*.launch.py"), ("config", "*.yaml"), ("config", "*.xml"), ("config", "*.rviz"),
                         ("msg", "*.msg")):
        for src in (REPO / sub).glob(pattern):
            assert (SHARE / sub / src.name).read_bytes() == src.read_bytes(), f"stale install of {src}: make ros"
    assert (INSTALL_PREFIX / "share" / "ament_index" / "resource_index" / "packages" / "ftpfusion_ros").is_file()


def test_rviz_config_shows_ir_visible_and_fused() -> None:
    cfg = yaml.safe_load((CONFIG_DIR / "fusion.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    topics = {d["Name"]: d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert topics == {"IR": "/ir/image_raw", "Visible": "/visible/image_raw", "Fused": "/fused/image"}
    # the saved Qt dock layout names the three image panels (their object names, UTF-16 in the hex dump)
    state = str(cfg["Window Geometry"]["QMainWindow State"])
    for name in topics:
        assert name.encode("utf-16-be").hex() in state


def test_fastdds_profile_has_a_large_shared_memory_segment() -> None:
    import xml.etree.ElementTree as ET

    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(CONFIG_DIR / "fastdds_large_images.xml").getroot()
    segments = [int(e.text) for e in root.iterfind(".//d:transport_descriptor/d:segment_size", ns)]
    assert segments and min(segments) >= 4 * 1024 * 1024
    assert root.find(".//d:participant/d:rtps/d:useBuiltinTransports", ns).text == "false"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def test_yaml_parameters_are_the_ones_the_nodes_declare() -> None:
    """config/*.yaml keyed by node name: every key is declared by that node, and loads through rclpy."""
    from rclpy.parameter import Parameter

    from ftpfusion_ros.ros.camera_sim import CameraSimNode
    from ftpfusion_ros.ros.fusion_node import FusionNode
    from ftpfusion_ros.ros.sync_node import SyncNode

    classes = {"ftpfusion_sync_node": SyncNode, "ftpfusion_fusion_node": FusionNode,
               "ftpfusion_camera_sim": CameraSimNode}
    files = [CONFIG_DIR / "fusion.yaml", CONFIG_DIR / "camera_sim.yaml"]
    probe = Probe()
    try:
        for path in files:
            for node_name, section in yaml.safe_load(path.read_text()).items():
                params = _flatten(section["ros__parameters"])
                overrides = [Parameter(k, value=v) for k, v in params.items()]
                if node_name == "ftpfusion_fusion_node":
                    import torch

                    overrides.append(Parameter("model", value="average"))  # fast to build
                    overrides.append(Parameter("cpu_threads", value=torch.get_num_threads()))  # leave as is
                node = classes[node_name](context=probe.context, parameter_overrides=overrides)
                try:
                    undeclared = [k for k in params if not node.has_parameter(k)]
                    assert not undeclared, f"{path.name}: {node_name} does not declare {undeclared}"
                finally:
                    node.destroy_node()
    finally:
        probe.close()


def test_installed_executable_runs_like_ros2_run(tmp_path: Path) -> None:
    """install/.../lib/ftpfusion_ros/ftpfusion_camera_sim, as `ros2 run ftpfusion_ros ftpfusion_camera_sim`."""
    exe = LIB / "ftpfusion_camera_sim"
    out = subprocess.run([str(exe), "--ros-args", "-p", "max_frames:=3", "-p", "exit_when_done:=true",
                          "-p", "rate:=30.0", "-p", "width:=64", "-p", "height:=48"],
                         capture_output=True, text=True, timeout=60, env=ros_env.child_env(), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["pairs_published"] == 3


def test_bad_parameters_end_with_one_clear_line(tmp_path: Path) -> None:
    out = subprocess.run([str(LIB / "ftpfusion_fusion_node"), "--ros-args", "-p", "model:=no_such_model",
                          "-p", "autostart:=true"],
                         capture_output=True, text=True, timeout=60, env=ros_env.child_env(), cwd=tmp_path)
    assert out.returncode == 2
    assert "no_such_model" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("name", sorted(REQUIRED_ARGS))
def test_launch_descriptions_build_with_launch(name: str) -> None:
    """generate_launch_description() with the real launch API: arguments and their defaults."""
    pytest.importorskip("launch_ros")
    import importlib.util

    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), SHARE / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    args = {a.name: a for a in description.get_launch_arguments()}
    assert REQUIRED_ARGS[name] <= args.keys()
    if name == "fusion.launch.py":
        assert Path(args["params_file"].default_value[0].text) == SHARE / "config" / "fusion.yaml"
        assert args["composed"].default_value[0].text == "true"


# -- executed with launch_ros (a ROS install; skipped where launch_ros is not importable) -------------

_LAUNCH_RUNNER = textwrap.dedent("""
    import sys
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from ament_index_python.packages import get_package_share_directory
    path = get_package_share_directory("ftpfusion_ros") + "/launch/" + sys.argv[1]
    args = [tuple(a.split(":=", 1)) for a in sys.argv[2:]]
    ls = LaunchService(argv=[])
    ls.include_launch_description(LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=args)]))
    sys.exit(ls.run())
""")


def _children(pid: int) -> list[int]:
    """Direct children of a process (from /proc), to make sure none outlives the test."""
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat_file.parent.name))
    return out


def _end_launch(proc: subprocess.Popen, children: list[int]) -> list[int]:
    """Ctrl-C, as for `ros2 launch` (launch handles SIGINT, then stops its processes in order); returns the
    node processes that were still running afterwards, killed so that none is left for the next test."""
    children = children or _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    stop(proc)
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.parametrize("launch_file,args", [
    ("demo.launch.py", ["rviz:=false", "width:=160", "height:=120", "rate:=20.0", "model:=average"]),
    ("demo.launch.py", ["rviz:=false", "width:=160", "height:=120", "rate:=20.0", "model:=average",
                        "composed:=false"]),
])
def test_launch_files_run_with_launch_ros(launch_file: str, args: list[str], tmp_path: Path) -> None:
    pytest.importorskip("launch_ros")
    from sensor_msgs.msg import Image

    probe = Probe()
    log = tmp_path / "launch.log"
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH_RUNNER, launch_file, *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=ros_env.child_env(), cwd=tmp_path)
    children: list[int] = []
    try:
        fused = probe.collect(Image, "fused/image")
        ok = probe.spin_until(lambda: len(fused) >= 10 or proc.poll() is not None, 90)
        assert ok and proc.poll() is None, log.read_text()[-3000:]
        children = _children(proc.pid)
        assert len(children) == (3 if "composed:=false" in args else 2), children  # nodes + camera sim
        assert probe.node.count_publishers("/frame_pair") == (1 if "composed:=false" in args else 0)
    finally:
        left = _end_launch(proc, children)
        probe.close()
    assert proc.returncode == 0 and not left, (proc.returncode, left, log.read_text()[-2000:])
    assert all((m.width, m.height, m.header.frame_id) == (160, 120, "visible_camera") for m in fused)


def test_rviz_without_rviz2_is_skipped_not_fatal() -> None:
    """rviz:=true (demo.launch.py's default) on a machine without rviz2: a log line and no RViz action,
    instead of a launch failure that leaves the already started fusion process without a parent."""
    pytest.importorskip("launch_ros")
    import importlib.util

    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    from launch import LaunchContext
    from launch.actions import LogInfo

    try:
        get_package_prefix("rviz2")
        pytest.skip("rviz2 is installed here")
    except PackageNotFoundError:
        pass
    spec = importlib.util.spec_from_file_location("fusion_launch", SHARE / "launch" / "fusion.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    context.launch_configurations["rviz"] = "true"
    actions = module._rviz(context, str(SHARE / "config"))
    assert len(actions) == 1 and isinstance(actions[0], LogInfo)
    context.launch_configurations["rviz"] = "false"
    assert module._rviz(context, str(SHARE / "config")) == []


def test_package_xml_declares_every_run_dependency() -> None:
    """What the nodes, launch files and replay need at run time is declared (rosdep installs it), and
    CMakeLists.txt registers the pytest suite for `colcon test`."""
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "package.xml").getroot()
    run = {e.text for e in root if e.tag in ("exec_depend", "depend")}
    assert {"rclpy", "rcl_interfaces", "lifecycle_msgs", "diagnostic_msgs", "sensor_msgs", "std_msgs",
            "launch", "launch_ros", "ament_index_python", "rosbag2", "ros2bag", "rviz2"} <= run
    tests = {e.text for e in root if e.tag == "test_depend"}
    assert "ament_cmake_pytest" in tests
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert "ament_add_pytest_test(ftpfusion_ros_pytest" in cmake and "if(BUILD_TESTING)" in cmake


def test_launch_with_autostart_false_leaves_the_managed_nodes_unconfigured(tmp_path: Path) -> None:
    """autostart:=false: the nodes wait, unconfigured, for a lifecycle manager; the standard services
    then configure and activate them."""
    pytest.importorskip("launch_ros")
    from lifecycle_msgs.msg import State, Transition

    probe = Probe()
    log = tmp_path / "launch.log"
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH_RUNNER, "fusion.launch.py", "autostart:=false",
                             "model:=average", "rviz:=false"], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=ros_env.child_env(), cwd=tmp_path)
    children: list[int] = []
    try:
        for node in ("/ftpfusion_fusion_node", "/ftpfusion_sync_node"):
            assert probe.lifecycle_state(node) == State.PRIMARY_STATE_UNCONFIGURED, log.read_text()[-2000:]
        children = _children(proc.pid)
        for node in ("/ftpfusion_fusion_node", "/ftpfusion_sync_node"):
            assert probe.lifecycle_transition(node, Transition.TRANSITION_CONFIGURE)
            assert probe.lifecycle_transition(node, Transition.TRANSITION_ACTIVATE)
            assert probe.lifecycle_state(node) == State.PRIMARY_STATE_ACTIVE
    finally:
        left = _end_launch(proc, children)
        probe.close()
    assert proc.returncode == 0 and not left, (proc.returncode, left, log.read_text()[-2000:])
