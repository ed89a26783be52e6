"""Thin rclpy nodes over ftpfusion_ros.runtime: sync node, fusion node, camera simulator, composed entry.

Nothing here does image maths or runs models: messages become numpy arrays (conversions.py) and go to the
streaming engine (ftpfusion_ros.runtime.FusionEngine).

Importing this package makes the generated interfaces usable from the source tree: ``ftpfusion_ros.msg``
is found through the package path (see ftpfusion_ros/__init__.py) and its typesupport libraries, which
the RMW loads by name through LD_LIBRARY_PATH at run time, are added to that variable here.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path


def _add_interface_libraries() -> None:
    import ftpfusion_ros

    parts = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    for pkg_dir in map(Path, ftpfusion_ros.__path__):
        if not (pkg_dir / "msg").is_dir():
            continue
        lib = pkg_dir.parents[2]  # <prefix>/lib/pythonX.Y/site-packages/ftpfusion_ros -> <prefix>/lib
        libs = sorted(lib.glob("libftpfusion_ros__rosidl_typesupport_*.so"))
        if not libs:
            continue
        if str(lib) not in parts:
            parts.insert(0, str(lib))  # for child processes (read by the loader at process start)
        # This process's loader read LD_LIBRARY_PATH at start-up, and the RMW dlopen()s the typesupport
        # by bare file name: load them now by full path, so that name resolves to the loaded library.
        for path in libs:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        break  # the first build found is the one `ftpfusion_ros.msg` is imported from
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(parts)


def load_interfaces():
    """(FramePair, FusionStatus) message classes, or a RuntimeError saying how to build them."""
    try:
        from ftpfusion_ros.msg import FramePair, FusionStatus
    except ImportError as exc:
        raise RuntimeError(
            "the ftpfusion_ros ROS interfaces are not built or not on AMENT_PREFIX_PATH: run `make ros` "
            "(tools/ros_build.sh) and `source install/setup.bash`, or add install/ftpfusion_ros to "
            f"AMENT_PREFIX_PATH ({exc})"
        ) from exc
    return FramePair, FusionStatus


_add_interface_libraries()
