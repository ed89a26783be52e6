"""sensor_msgs/Image <-> numpy (no cv_bridge): layouts, row padding, byte order, rejection; message build."""
from __future__ import annotations


import numpy as np
import pytest

import ros_env

ros_env.require_interfaces()

from sensor_msgs.msg import Image  # noqa: E402

from ftpfusion_ros.ros.conversions import array_to_image, camera_info_for, image_to_array  # noqa: E402
from ftpfusion_ros.runtime import InputError  # noqa: E402


def _image(encoding: str, h: int, w: int, step: int, data: bytes, bigendian: bool = False) -> Image:
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=step)
    msg.data = data
    return msg


@pytest.mark.parametrize("encoding,shape,dtype", [
    ("mono8", (5, 7), np.uint8), ("8UC1", (5, 7), np.uint8), ("mono16", (5, 7), np.uint16),
    ("16UC1", (5, 7), np.uint16), ("32FC1", (5, 7), np.float32), ("bgr8", (5, 7, 3), np.uint8),
    ("rgb8", (5, 7, 3), np.uint8), ("bgra8", (5, 7, 4), np.uint8), ("rgba8", (5, 7, 4), np.uint8),
])
def test_round_trip_every_engine_encoding(encoding: str, shape: tuple, dtype: type) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.random(shape) * 1000).astype(dtype)
    msg = array_to_image(arr, encoding)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * arr.itemsize * (shape[2] if len(shape) == 3 else 1)
    back = image_to_array(msg)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, arr)


def test_dense_input_is_a_zero_copy_view() -> None:
    arr = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)
    msg = array_to_image(arr, "bgr8")
    view = image_to_array(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_row_padding_in_step_is_skipped() -> None:
    h, w, step = 3, 4, 16  # 4 bytes of pixels + 12 bytes of padding per row
    rows = np.full((h, step), 255, np.uint8)
    rows[:, :w] = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    arr = image_to_array(_image("mono8", h, w, step, rows.tobytes()))
    np.testing.assert_array_equal(arr, np.arange(h * w, dtype=np.uint8).reshape(h, w))


@pytest.mark.parametrize("bigendian", [False, True])
def test_16bit_byte_order_is_honoured(bigendian: bool) -> None:
    values = np.array([[1, 256, 4660], [65535, 0, 43981]], dtype=np.uint16)
    wire = values.astype(">u2" if bigendian else "<u2").tobytes()
    arr = image_to_array(_image("mono16", 2, 3, 6, wire, bigendian=bigendian))
    assert arr.dtype == np.uint16 and arr.dtype.isnative
    np.testing.assert_array_equal(arr, values)


def test_padded_big_endian_float_rows() -> None:
    values = np.array([[0.5, -2.0], [3.25, 1e6]], dtype=np.float32)
    rows = np.zeros((2, 12), np.uint8)
    rows[:, :8] = np.frombuffer(values.astype(">f4").tobytes(), np.uint8).reshape(2, 8)
    arr = image_to_array(_image("32FC1", 2, 2, 12, rows.tobytes(), bigendian=True))
    np.testing.assert_array_equal(arr, values)


@pytest.mark.parametrize("msg,match", [
    (_image("64FC1", 2, 2, 16, bytes(32)), "unsupported image encoding"),
    (_image("mono8", 4, 4, 3, bytes(16)), "step 3 is smaller"),
    (_image("bgr8", 4, 4, 12, bytes(40)), "40 data bytes"),
    (_image("mono8", 0, 4, 4, b""), "empty image"),
])
def test_malformed_images_raise_input_error(msg: Image, match: str) -> None:
    with pytest.raises(InputError, match=match):
        image_to_array(msg)


def test_array_to_image_checks_the_encoding() -> None:
    with pytest.raises(InputError, match="needs dtype"):
        array_to_image(np.zeros((2, 2), np.uint16), "mono8")
    with pytest.raises(InputError, match="channel"):
        array_to_image(np.zeros((2, 2, 3), np.uint8), "mono8")


def test_big_endian_flag_describes_the_bytes_sent() -> None:
    """The flag must say how the bytes on the wire are ordered, whatever the host: a receiver that
    decodes by the flag (not by its own byte order) gets the values back."""
    msg = array_to_image(np.array([[0x0102, 0x0304]], np.uint16), "mono16")
    wire = bytes(msg.data)[:2]
    assert wire == (b"\x01\x02" if msg.is_bigendian else b"\x02\x01")
    decoded = np.frombuffer(bytes(msg.data), dtype=">u2" if msg.is_bigendian else "<u2")
    assert decoded.tolist() == [0x0102, 0x0304]


def test_camera_info_keeps_a_template_calibration() -> None:
    from std_msgs.msg import Header

    template = camera_info_for(Header(frame_id="a"), 8, 6)
    template.k = [1.0, 0.0, 4.0, 0.0, 1.0, 3.0, 0.0, 0.0, 1.0]
    info = camera_info_for(Header(frame_id="visible"), 8, 6, template=template)
    assert info.header.frame_id == "visible" and (info.width, info.height) == (8, 6)
    assert list(info.k) == list(template.k)


def test_frame_pair_message_serialises_with_optional_camera_infos() -> None:
    """The generated FramePair/FusionStatus types go through the C typesupport (serialise + back)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from std_msgs.msg import Header

    from ftpfusion_ros.msg import FramePair, FusionStatus
    from ftpfusion_ros.ros.pairs import ImagePair, pair_from_msg, pair_to_msg

    header = Header(frame_id="visible_camera")
    header.stamp.sec, header.stamp.nanosec = 12, 500
    ir = array_to_image(np.full((4, 6), 7, np.uint8), "mono8", Header(frame_id="ir"))
    vis = array_to_image(np.full((4, 6, 3), 9, np.uint8), "bgr8", header)
    info = camera_info_for(header, 6, 4)
    msg = pair_to_msg(ImagePair(ir=ir, visible=vis, skew_sec=-0.004, visible_info=info), FramePair)
    back = deserialize_message(serialize_message(msg), FramePair)
    pair = pair_from_msg(back)
    assert back.header.stamp.sec == 12 and back.header.frame_id == "visible_camera"
    assert pair.skew_sec == pytest.approx(-0.004)
    assert pair.ir_info is None and pair.visible_info.width == 6
    np.testing.assert_array_equal(image_to_array(pair.visible), np.full((4, 6, 3), 9, np.uint8))
    status = FusionStatus(model="average", device="cpu", ring_fill=3, window=5, pairs_fused=10)
    assert deserialize_message(serialize_message(status), FusionStatus) == status
