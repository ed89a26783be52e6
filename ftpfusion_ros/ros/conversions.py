"""sensor_msgs/Image <-> numpy without cv_bridge (not available from pip, and broken with NumPy 2).

Incoming images become zero-copy ``np.frombuffer`` views of the message buffer whenever the layout
allows it: rows padded beyond ``width * pixel size`` (``step``) are sliced off by a strided view, and only
big-endian multi-byte data on a little-endian host (or the reverse) is copied, to native byte order.
Outgoing arrays are copied once into the message's ``array('B')`` buffer.

sensor_msgs/CompressedImage (image_transport's ``compressed`` transport: JPEG, or PNG, also 16-bit for
thermal cameras) is decoded with OpenCV into the same arrays. Undecodable or truncated data is an
InputError like any other bad input, never a crash or a silently half-grey frame.

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


#: bytes every complete file of the format ends with: a truncated JPEG still decodes (the missing rows grey)
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND"
#: encodings a 16-bit single-channel PNG may stand for (kept from the format string; else mono16)
_MONO16 = ("mono16", "16UC1")


def _declared_encoding(fmt: str) -> str:
    """The source encoding image_transport writes before ';' in ``format`` ("mono16; png compressed
    mono16"); '' for the bare "jpeg"/"png" of older publishers."""
    head = fmt.split(";", 1)[0].strip() if ";" in fmt else ""
    return head


def compressed_to_array(msg: Any, what: str = "image") -> tuple[np.ndarray, str]:
    """A sensor_msgs/CompressedImage (JPEG or PNG) decoded to (array, ROS encoding).

    Colour comes out as bgr8 (bgra8 with alpha), whatever the camera's own order was: OpenCV decodes to
    BGR. Single-channel 8-bit is mono8; 16-bit is the declared mono16/16UC1 (mono16 if none). Raises
    InputError for data that is not a complete JPEG or PNG, compressedDepth, or a layout the engine cannot
    take (16-bit colour).
    """
    import cv2

    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise InputError(f"{what}: compressedDepth ({fmt!r}) is not supported; publish 'compressed' (PNG) instead")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    head, tail = bytes(data[:8]), bytes(data[-16:])  # the markers only: no copy of the whole frame
    if head.startswith(_JPEG_SOI):
        if not tail.rstrip(b"\0").endswith(_JPEG_EOI):
            raise InputError(f"{what}: truncated JPEG ({data.size} bytes, no end-of-image marker)")
    elif head.startswith(_PNG_SIGNATURE):
        if _PNG_IEND not in tail:
            raise InputError(f"{what}: truncated PNG ({data.size} bytes, no IEND chunk)")
    else:
        raise InputError(f"{what}: compressed data ({data.size} bytes, format {fmt!r}) is neither JPEG nor PNG")
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise InputError(f"{what}: cannot decode {data.size} bytes of {fmt!r}")
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype == np.uint8 and channels in (1, 3, 4):
        if channels == 1:
            return arr, "mono8"
        return arr, ("bgr8", "bgra8")[channels == 4]
    if arr.dtype == np.uint16 and channels == 1:
        declared = _declared_encoding(fmt)
        return arr, declared if declared in _MONO16 else "mono16"
    raise InputError(f"{what}: decoded {fmt!r} to {channels} channel(s) of {arr.dtype}: not an encoding the "
                     "engine takes (8-bit mono/colour, 16-bit mono)")


def compressed_to_image(msg: Any, what: str = "image", msg_type: Any = None) -> Any:
    """A sensor_msgs/CompressedImage as a sensor_msgs/Image with the same header (InputError if bad)."""
    arr, encoding = compressed_to_array(msg, what)
    return array_to_image(arr, encoding, msg.header, msg_type)


def array_to_compressed(arr: np.ndarray, encoding: str, fmt: str = "jpeg", header: Any = None,
                        msg_type: Any = None, jpeg_quality: int = 95) -> Any:
    """An array as a sensor_msgs/CompressedImage, with image_transport's format string
    ("<encoding>; jpeg compressed bgr8" / "<encoding>; png compressed <encoding>"). 16-bit needs PNG."""
    import cv2

    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format must be jpeg or png, got {fmt!r}")
    img = np.ascontiguousarray(arr)
    if encoding in ("rgb8", "rgba8"):
        img = img[..., ::-1] if encoding == "rgb8" else img[..., [2, 1, 0, 3]]  # OpenCV writes BGR(A)
        img = np.ascontiguousarray(img)
    if img.dtype == np.uint16 and fmt != "png":
        raise ValueError("16-bit images need png")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", img, params)
    if not ok:
        raise ValueError(f"cannot encode a {arr.shape} {arr.dtype} array as {fmt}")
    if msg_type is None:
        from sensor_msgs.msg import CompressedImage as msg_type  # noqa: N813
    msg = msg_type()
    if header is not None:
        msg.header = header
    target = ("bgr8" if img.ndim == 3 else "mono8") if fmt == "jpeg" else encoding
    msg.format = f"{encoding}; {fmt} compressed {target}"
    data = array.array("B")
    data.frombytes(buf.tobytes())
    msg.data = data
    return msg
