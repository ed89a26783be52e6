"""Process entry points: init rclpy, build the nodes, spin until Ctrl-C / SIGTERM, clean up."""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

#: how often the spin loop returns to Python to notice a stop request (s)
SPIN_SLICE = 0.1


def run_nodes(factory: Callable[[], Sequence[Node]], args: list[str] | None = None, threads: int = 1) -> int:
    """Run the nodes ``factory()`` builds in one executor; returns the process exit status.

    Configuration errors while building the nodes (bad parameters, missing checkpoint, interfaces not
    built) end the process with one clear line and status 2 instead of a traceback.

    SIGINT and SIGTERM are handled here rather than by rclpy's signal handler: they end the spin loop,
    then the nodes are deactivated and cleaned up (frames held back by look-ahead are still published)
    while the context is still valid, and rclpy shuts down last. (With rclpy's own handler, a SIGTERM
    arriving while a service request - e.g. a parameter change - was being handled sometimes left the
    executor waiting forever.)
    """
    rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:  # noqa: ARG001
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    nodes: list[Node] = []
    status = 0
    try:
        nodes = list(factory())
        executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(num_threads=threads)
        for node in nodes:
            executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_SLICE)
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
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
