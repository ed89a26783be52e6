"""ftpfusion_composed: the sync and fusion nodes in one process (the launch file's default).

The sync node hands each pair to the fusion node directly, so the two images are not serialised into a
FramePair and deserialised again (twice the image traffic saved). Node names, parameters and topics are
those of the separate nodes, so the same parameter file and remappings apply in both modes.
"""
from __future__ import annotations

import sys

from .fusion_node import FusionNode
from .sync_node import SyncNode


def build_composed(**node_kwargs) -> tuple[SyncNode, FusionNode]:
    """The two nodes wired together (fusion first: its model is loaded before images are accepted)."""
    fusion = FusionNode(subscribe_pairs=False, **node_kwargs)
    sync = SyncNode(on_pair=fusion.submit, **node_kwargs)
    return sync, fusion


def main(args: list[str] | None = None) -> int:
    from .runner import run_nodes

    return run_nodes(build_composed, args)


if __name__ == "__main__":
    sys.exit(main())
