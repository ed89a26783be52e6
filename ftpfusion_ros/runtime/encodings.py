"""Image encodings (ROS sensor_msgs names) -> float arrays the engine fuses.

Only validation and channel/bit-depth bookkeeping lives here; mapping 16-bit or float thermal data to
[0, 1] is the AGC's job (agc.py), because it must be temporally stable.
"""
from __future__ import annotations

import numpy as np

# encoding -> (channels, dtype)
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgb8": (3, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
}
HIGH_DEPTH = {"mono16", "16UC1", "32FC1"}

#: packed YUV 4:2:2 and Bayer colour-filter encodings (channels, dtype): converted once, with
#: rosbags-image's OpenCV conversions (as `extract` and `fuse --bag` do), to an encoding of ENCODINGS
#: before fusion: IR to mono8/mono16, visible to bgr8
_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
CONVERTED: dict[str, tuple[int, np.dtype]] = {
    **{name: (2, _U8) for name in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2")},
    **{f"bayer_{cfa}{bits}": (1, _U8 if bits == 8 else _U16)
       for cfa in ("rggb", "bggr", "gbrg", "grbg") for bits in (8, 16)},
}


class InputError(ValueError):
    """An input frame that cannot be fused as given (wrong encoding, size, dtype, ...)."""


class SizeChangedError(InputError):
    """A valid frame whose size differs from the stream's so far: a new stream starts (reset to take it)."""


def supported_encodings() -> str:
    return ", ".join([*ENCODINGS, *CONVERTED])


def check_array(arr: np.ndarray, encoding: str, what: str, table: dict[str, tuple[int, np.dtype]] = ENCODINGS) -> None:
    """Raise InputError unless `arr` is a valid image of `encoding` (one of `table`)."""
    if encoding not in table:
        raise InputError(f"{what}: unsupported encoding {encoding!r}; supported: {supported_encodings()}")
    channels, dtype = table[encoding]
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{what}: expected a numpy array, got {type(arr).__name__}")
    if arr.dtype != dtype:
        raise InputError(f"{what}: encoding {encoding} needs dtype {dtype}, got {arr.dtype}")
    shape_ok = arr.ndim == 2 and channels == 1 or arr.ndim == 3 and arr.shape[2] == channels
    if not shape_ok:
        raise InputError(f"{what}: encoding {encoding} needs {channels} channel(s), got array of shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{what}: image of size {arr.shape[1]}x{arr.shape[0]} is too small")


def convert_input(arr: np.ndarray, encoding: str, what: str, ir: bool) -> tuple[np.ndarray, str]:
    """(array, encoding) with packed-YUV and Bayer frames converted (see CONVERTED); others unchanged."""
    if encoding not in CONVERTED:
        return arr, encoding
    check_array(arr, encoding, what, CONVERTED)
    if CONVERTED[encoding][0] == 2 and arr.shape[1] % 2:
        raise InputError(f"{what}: {encoding} needs an even width, got {arr.shape[1]}")
    import cv2
    from rosbags.image.image import ImageError, convert_color

    target = ("mono16" if arr.dtype == np.uint16 else "mono8") if ir else "bgr8"
    try:
        out = convert_color(np.ascontiguousarray(arr), encoding, target)
    except (ImageError, cv2.error) as exc:
        raise InputError(f"{what}: cannot convert {encoding} to {target}: {exc}") from None
    return np.ascontiguousarray(out), target


def to_luminance_raw(arr: np.ndarray, encoding: str) -> np.ndarray:
    """One channel of a (thermal) image in its native range: colour inputs are averaged to grey.

    Thermal cameras that publish colour encodings (or MP4s storing IR as 3 identical channels) carry the
    same value in every channel; a colour-mapped IR image has no radiometric meaning anyway.
    """
    if arr.ndim == 2:
        return arr
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return arr.mean(axis=2, dtype=np.float32)


def to_rgb_float(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Visible image -> (H, W, 3) float32 RGB in [0, 1]."""
    if encoding in HIGH_DEPTH:
        if arr.dtype.kind == "f":
            bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
            if bad:
                # a NaN in the visible frame would reach the temporal ring and blacken the next frames
                raise InputError(f"visible image: {bad} non-finite pixel(s) (NaN/inf) in a {encoding} frame")
        scale = 65535.0 if arr.dtype == np.uint16 else 1.0
        grey = np.clip(arr.astype(np.float32) / scale, 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if arr.ndim == 2:
        grey = arr.astype(np.float32) / 255.0
        return np.repeat(grey[:, :, None], 3, axis=2)
    rgb = arr[:, :, :3]
    if encoding in ("bgr8", "bgra8", "8UC3"):
        rgb = rgb[:, :, ::-1]
    return rgb.astype(np.float32) / 255.0
