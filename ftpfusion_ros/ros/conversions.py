"""sensor_msgs/Image <-> numpy without cv_bridge (not available from pip, and broken with NumPy 2).

Incoming images become zero-copy ``np.frombuffer`` views of the message buffer whenever the layout
allows it: rows padded beyond ``width * pixel size`` (``step``) are sliced off by a strided view, and only
big-endian multi-byte data on a little-endian host (or the reverse) is copied, to native byte order.
Outgoing arrays are copied once into the message's ``array('B')`` buffer.

This module only moves bytes; all image processing happens in ftpfusion_ros.runtime.
"""
from __future__ import annotations

import array
import sys
from typing import Any

import numpy as np

from ..runtime.encodings import CONVERTED, ENCODINGS, InputError, supported_encodings

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"
#: encodings this package publishes besides the engine's input encodings (fused/image_seg as float)
OUTPUT_ENCODINGS: dict[str, tuple[int, np.dtype]] = {"32FC3": (3, np.dtype(np.float32))}


def encoding_layout(encoding: str, output: bool = False) -> tuple[int, np.dtype]:
    """(channels, dtype) of a ROS image encoding the engine accepts (or, with ``output``, one this
    package publishes); InputError for any other."""
    if encoding in ENCODINGS:
        return ENCODINGS[encoding]
    if encoding in CONVERTED:  # packed YUV / Bayer: the engine converts them
        return CONVERTED[encoding]
    if output and encoding in OUTPUT_ENCODINGS:
        return OUTPUT_ENCODINGS[encoding]
    raise InputError(f"unsupported image encoding {encoding!r}; supported: {supported_encodings()}")


def image_to_array(msg: Any, what: str = "image") -> np.ndarray:
    """A sensor_msgs/Image as an (H, W) or (H, W, C) array of its encoding's dtype (native byte order).

    Raises InputError (a ValueError) for an unsupported encoding or inconsistent width/height/step/data.
    The result may be a read-only view of ``msg.data``: copy it before writing to it.
    """
    channels, dtype = encoding_layout(msg.encoding, output=True)  # the engine vets inputs again
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    if h <= 0 or w <= 0:
        raise InputError(f"{what}: empty image ({w}x{h})")
    if step < row_bytes:
        raise InputError(f"{what}: step {step} is smaller than width {w} x {channels * dtype.itemsize} bytes")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < h * step:
        raise InputError(f"{what}: {buf.size} data bytes, expected height {h} x step {step} = {h * step}")
    rows = buf[: h * step].reshape(h, step)[:, :row_bytes]
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    arr = rows.view(wire)  # last axis is contiguous, so this stays a view even with row padding
    if wire.itemsize > 1 and bool(msg.is_bigendian) != _NATIVE_BIG_ENDIAN:
        arr = arr.astype(dtype)  # byte swap to native order (the only copy on this path)
    return arr.reshape(h, w) if channels == 1 else arr.reshape(h, w, channels)


def array_to_image(arr: np.ndarray, encoding: str, header: Any = None, msg_type: Any = None) -> Any:
    """An array as a sensor_msgs/Image of ``encoding`` (dense rows, native byte order).

    ``msg_type`` defaults to sensor_msgs.msg.Image (imported lazily so that this module loads without ROS
    for the data-layout checks).
    """
    channels, dtype = encoding_layout(encoding, output=True)
    if arr.dtype != dtype:
        raise InputError(f"encoding {encoding} needs dtype {dtype}, got {arr.dtype}")
    if not (arr.ndim == 2 and channels == 1 or arr.ndim == 3 and arr.shape[2] == channels):
        raise InputError(f"encoding {encoding} needs {channels} channel(s), got array of shape {arr.shape}")
    if msg_type is None:
        from sensor_msgs.msg import Image as msg_type  # noqa: N813
    msg = msg_type()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_BIG_ENDIAN)
    msg.step = int(arr.shape[1] * channels * dtype.itemsize)
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(arr)).cast("B"))  # one memcpy; the setter keeps array("B")
    msg.data = data
    return msg


def camera_info_for(header: Any, width: int, height: int, template: Any = None, msg_type: Any = None) -> Any:
    """A sensor_msgs/CameraInfo for an image of ``width`` x ``height`` in ``header``'s frame.

    With a ``template`` (the visible camera's CameraInfo), its calibration is kept and only the header
    replaced; without one, the size is set and the calibration left empty (uncalibrated), as ROS does for
    cameras without calibration.
    """
    if msg_type is None:
        from sensor_msgs.msg import CameraInfo as msg_type  # noqa: N813
    info = msg_type()
    if template is not None:
        for name in ("height", "width", "distortion_model", "d", "k", "r", "p",
                     "binning_x", "binning_y", "roi"):
            setattr(info, name, getattr(template, name))
    else:
        info.width, info.height = int(width), int(height)
    info.header = header
    return info
