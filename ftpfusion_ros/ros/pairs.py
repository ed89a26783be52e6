"""The unit of work between the sync and fusion nodes: one IR/visible pair of Image messages.

In split mode it travels as a FramePair message; composed in one process, the sync node hands the same
object to the fusion node directly (no serialisation of the two images).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImagePair:
    ir: Any                      # sensor_msgs/Image
    visible: Any                 # sensor_msgs/Image
    skew_sec: float              # ir stamp - visible stamp
    ir_info: Any = None          # sensor_msgs/CameraInfo or None
    visible_info: Any = None
    received: float = field(default_factory=time.monotonic)  # when the pair was formed / received

    @property
    def header(self) -> Any:
        """The pair's (and the fused output's) header: the visible camera's."""
        return self.visible.header


def pair_to_msg(pair: ImagePair, msg_type: Any) -> Any:
    msg = msg_type()
    msg.header = pair.visible.header
    msg.ir = pair.ir
    msg.visible = pair.visible
    msg.skew_sec = float(pair.skew_sec)
    msg.ir_camera_info = [pair.ir_info] if pair.ir_info is not None else []
    msg.visible_camera_info = [pair.visible_info] if pair.visible_info is not None else []
    return msg


def pair_from_msg(msg: Any) -> ImagePair:
    return ImagePair(
        ir=msg.ir,
        visible=msg.visible,
        skew_sec=float(msg.skew_sec),
        ir_info=msg.ir_camera_info[0] if len(msg.ir_camera_info) else None,
        visible_info=msg.visible_camera_info[0] if len(msg.visible_camera_info) else None,
    )
