"""ftpfusion_composed: the sync and fusion nodes in one process (the launch file's default).

The sync node hands each pair to the fusion node directly, so the two images are not serialised into a
FramePair and deserialised again (twice the image traffic saved). Node names, parameters and topics are
those of the separate nodes, so the same parameter file and remappings apply in both modes.

Both are managed nodes with their own lifecycle services (``/ftpfusion_sync_node/change_state``,
``/ftpfusion_fusion_node/change_state``); ``-p autostart:=true`` (the launch files' default) configures
and activates both at start. The sync node hands pairs over only while the fusion node is active.
"""
from __future__ import annotations

import sys

from .fusion_node import FusionNode
from .sync_node import SyncNode


def build_composed(autostart: bool = True, **node_kwargs) -> tuple[SyncNode, FusionNode]:
    """The two nodes wired together (fusion first: its model is loaded before images are accepted).
    ``autostart``: the default of the nodes' autostart parameter (the executable's is false)."""
    fusion = FusionNode(subscribe_pairs=False, autostart=autostart, **node_kwargs)
    sync = SyncNode(on_pair=fusion.submit, autostart=autostart, **node_kwargs)
    return sync, fusion


def main(args: list[str] | None = None) -> int:
    from .runner import run_nodes

    return run_nodes(lambda: build_composed(autostart=False), args)


if __name__ == "__main__":
    sys.exit(main())
