"""sensor_msgs/CompressedImage decoding (image_transport's compressed transport): JPEG and PNG round trips,
16-bit PNG for thermal cameras, and bad data refused as InputError."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from sensor_msgs.msg import CompressedImage  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ftpfusion_ros.ros.conversions import (  # noqa: E402
    array_to_compressed,
    compressed_to_array,
    compressed_to_image,
    image_to_array,
)
from ftpfusion_ros.runtime.encodings import InputError  # noqa: E402

H, W = 48, 64


def _smooth(channels: int, dtype=np.uint8) -> np.ndarray:
    """A gradient scene (JPEG's errors on it are small, unlike on noise)."""
    y, x = np.mgrid[0:H, 0:W]
    top = np.iinfo(dtype).max
    planes = [(x * 2 + y + 30 * c) / 255 * top for c in range(channels)]  # at most 236: no wrap-around edge
    arr = np.stack(planes, -1).astype(dtype)
    return arr[..., 0] if channels == 1 else arr


def test_png_round_trips_are_exact_for_every_layout() -> None:
    rng = np.random.default_rng(1)
    cases = [(rng.integers(0, 256, (H, W), dtype=np.uint8), "mono8", "mono8"),
             (rng.integers(0, 65536, (H, W), dtype=np.uint16), "mono16", "mono16"),
             (rng.integers(0, 65536, (H, W), dtype=np.uint16), "16UC1", "16UC1"),
             (rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "bgr8", "bgr8"),
             (rng.integers(0, 256, (H, W, 4), dtype=np.uint8), "bgra8", "bgra8")]
    for arr, encoding, decoded_as in cases:
        msg = array_to_compressed(arr, encoding, "png")
        out, enc = compressed_to_array(msg)
        assert enc == decoded_as, encoding
        assert out.dtype == arr.dtype and np.array_equal(out, arr), encoding


def test_rgb_comes_back_as_bgr_with_the_same_pixels() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out, enc = compressed_to_array(array_to_compressed(rgb, "rgb8", "png"))
    assert enc == "bgr8" and np.array_equal(out, rgb[..., ::-1])


def test_sixteen_bit_thermal_png_keeps_its_full_range() -> None:
    counts = (_smooth(1, np.uint16) // 4 + 7000).astype(np.uint16)  # 14-bit camera counts
    msg = array_to_compressed(counts, "mono16", "png")
    assert msg.format == "mono16; png compressed mono16"
    out, enc = compressed_to_array(msg)
    assert enc == "mono16" and out.dtype == np.uint16 and np.array_equal(out, counts)
    # a bare "png" format (older publishers) decodes to mono16 as well
    msg.format = "png"
    assert compressed_to_array(msg)[1] == "mono16"


def test_jpeg_round_trip_is_close() -> None:
    for channels, encoding in ((1, "mono8"), (3, "bgr8")):
        arr = _smooth(channels)
        msg = array_to_compressed(arr, encoding, "jpeg")
        assert msg.format.endswith("jpeg compressed " + ("bgr8" if channels == 3 else "mono8"))
        out, enc = compressed_to_array(msg)
        assert enc == encoding and out.shape == arr.shape
        assert np.abs(out.astype(int) - arr).mean() < 3.0


def test_compressed_to_image_keeps_the_header() -> None:
    header = Header(frame_id="visible_camera")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    img = compressed_to_image(array_to_compressed(_smooth(3), "bgr8", "png", header))
    assert img.header.frame_id == "visible_camera" and (img.header.stamp.sec, img.header.stamp.nanosec) == (12, 345)
    assert (img.width, img.height, img.encoding) == (W, H, "bgr8")
    assert np.array_equal(image_to_array(img), _smooth(3))


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_corrupt_and_truncated_data_are_refused(fmt: str) -> None:
    good = array_to_compressed(_smooth(3), "bgr8", fmt)
    data = bytes(good.data)

    def with_data(raw: bytes, format_: str = good.format) -> CompressedImage:
        return CompressedImage(format=format_, data=raw)

    bad = [b"", b"\x00" * 100, b"not an image at all",
           data[: len(data) // 2],                                  # truncated
           data[:40] + bytes(len(data) - 40)]                       # header, then zeros
    if fmt == "png":
        bad.append(data[:30] + bytes(b ^ 0x5A for b in data[30:-12]) + data[-12:])  # scrambled, ends intact
    for raw in bad:
        with pytest.raises(InputError):
            compressed_to_array(with_data(raw))
    with pytest.raises(InputError, match="compressedDepth"):
        compressed_to_array(with_data(data, "16UC1; compressedDepth png"))


def test_sixteen_bit_colour_is_refused() -> None:
    import cv2

    ok, buf = cv2.imencode(".png", np.zeros((H, W, 3), np.uint16))
    assert ok
    with pytest.raises(InputError, match="16"):
        compressed_to_array(CompressedImage(format="png", data=buf.tobytes()))
