"""Process entry points: init rclpy, build the nodes, spin until Ctrl-C / SIGTERM, clean up."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def run_nodes(factory: Callable[[], Sequence[Node]], args: list[str] | None = None, threads: int = 1) -> int:
    """Run the nodes ``factory()`` builds in one executor; returns the process exit status.

    Configuration errors while building the nodes (bad parameters, missing checkpoint, interfaces not
    built) end the process with one clear line and status 2 instead of a traceback.
    """
    rclpy.init(args=sys.argv if args is None else args)
    nodes: list[Node] = []
    status = 0
    try:
        nodes = list(factory())
        executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(num_threads=threads)
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"ftpfusion_ros: error: {exc}", file=sys.stderr)
        status = 2
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status
