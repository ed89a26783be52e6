"""ROS-free rosbag access for the offline tools: list image topics, pair IR/visible frames, write bags.

Reads rosbag2 (mcap or sqlite3; a bag directory or a bare ``.mcap``/``.db3`` file) and ROS 1 ``.bag``
files through ``rosbags.highlevel.AnyReader``; writes rosbag2 through ``rosbags.rosbag2.Writer``.

Pairing is the sync node's own approximate-time policy (``runtime.sync_policy``) fed in the bag's
receive order, so a dataset or an offline fusion pairs exactly the frames the robot would have paired.
Each message is stamped with its header stamp, or with its bag receive time when the header stamp is
zero (drivers that never fill it).

Images are decoded with numpy honouring ``step`` (row padding) and ``is_bigendian``; ``CompressedImage``
(png/jpeg, and ``compressedDepth`` png) is decoded with ``cv2.imdecode``. Decoded arrays keep their
native depth: 16-bit thermal stays uint16.
"""
from __future__ import annotations

import logging
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.image.image import ImageError, convert_color, to_cvtype
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from ..runtime.encodings import ENCODINGS
from ..runtime.sync_policy import NS_PER_S, ApproximateTimePolicy, LatestIrPolicy, SyncStats

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
DEFAULT_SLOP_S = 0.05       # the sync node's default (ApproximateTimePolicy)
DEFAULT_IR_TOPIC = "/ir/image_raw"          # the ROS interface's default input names (DESIGN.md)
DEFAULT_VIS_TOPIC = "/visible/image_raw"
DEFAULT_QUEUE_SIZE = 10
PAIRINGS = ("approximate", "latest_ir")  # the sync node's `pairing` parameter
DEFAULT_MAX_IR_AGE_S = 0.2  # the sync node's `max_ir_age`
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_NAMED_SKIPS = 3     # malformed messages named one by one in the log; the rest are counted


class BagError(ValueError):
    """A bag that cannot be used as asked (unreadable, topic missing, no pairs, bad encoding...)."""


# --- opening ------------------------------------------------------------------------------------------
def _typestore_for_bags_without_definitions() -> Typestore:
    # Humble-era sqlite3 bags carry no message definitions; the standard ROS 2 types decode them.
    return get_typestore(Stores.LATEST)


@contextmanager
def open_reader(path: str | Path) -> Iterator[AnyReader]:
    """An opened AnyReader for a with-block; clear errors for missing or unreadable bags."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        raise BagError(f"{path} is a directory without metadata.yaml: not a rosbag2 bag "
                       "(pass the bag directory, a .mcap/.db3 file or a ROS 1 .bag file)")
    try:
        reader = AnyReader([path], default_typestore=_typestore_for_bags_without_definitions())
        reader.open()
    except AnyReaderError as exc:
        raise BagError(f"cannot read bag {path}: {exc}") from None
    try:
        yield reader
    except AnyReaderError as exc:  # e.g. a message that does not deserialise
        raise BagError(f"cannot read bag {path}: {exc}") from None
    finally:
        reader.close()


def _norm(topic: str) -> str:
    return "/" + topic.strip("/")


def image_topics(reader: AnyReader) -> dict[str, str]:
    """{topic: message type} of the Image/CompressedImage topics of an opened reader."""
    return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}


def list_image_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """{topic: (message type, message count)} of the image topics in the bag at `path`."""
    with open_reader(path) as reader:
        out: dict[str, tuple[str, int]] = {}
        for c in reader.connections:
            if c.msgtype in IMAGE_TYPES:
                _, n = out.get(c.topic, (c.msgtype, 0))
                out[c.topic] = (c.msgtype, n + c.msgcount)
        return out


def _describe_topics(reader: AnyReader) -> str:
    topics = image_topics(reader)
    if not topics:
        return "the bag has no sensor_msgs/Image or CompressedImage topics"
    return "image topics in the bag: " + ", ".join(f"{t} ({m.rsplit('/', 1)[-1]})" for t, m in sorted(topics.items()))


def find_connections(reader: AnyReader, topic: str, what: str) -> list[Connection]:
    """The connections of `topic` (leading slash optional); BagError listing the image topics otherwise."""
    conns = [c for c in reader.connections if _norm(c.topic) == _norm(topic)]
    if not conns:
        raise BagError(f"{what} topic {topic!r} not found; {_describe_topics(reader)}")
    bad = sorted({c.msgtype for c in conns if c.msgtype not in IMAGE_TYPES})
    if bad:
        raise BagError(f"{what} topic {topic!r} has type {', '.join(bad)}, not an image; {_describe_topics(reader)}")
    return conns


# --- decoding -----------------------------------------------------------------------------------------
def stamp_ns(msg: Any, log_time_ns: int) -> int:
    """Header stamp in ns; the bag receive time when the header stamp is zero (never filled)."""
    stamp = msg.header.stamp
    ns = int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
    return ns if ns != 0 else int(log_time_ns)


def image_to_array(msg: Any) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image -> (array in native byte order, encoding); honours step and is_bigendian.

    Returns (H, W) for one channel, (H, W, C) otherwise; the array owns its memory.
    """
    encoding = msg.encoding
    try:
        _, _, typestr, channels = to_cvtype(encoding)
    except ImageError:
        raise BagError(f"unsupported image encoding {encoding!r}") from None
    dtype = np.dtype(typestr).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    data = np.frombuffer(msg.data, dtype=np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
    if h == 0 or w == 0:
        raise BagError(f"empty image ({w}x{h}, encoding {encoding})")
    if step < row_bytes or data.size < step * (h - 1) + row_bytes:
        raise BagError(f"malformed image: {w}x{h} {encoding} needs step >= {row_bytes} and "
                       f"{step * (h - 1) + row_bytes} bytes, got step {step} and {data.size} bytes")
    # Rows of `row_bytes` every `step` bytes: a strided view drops the padding without copying.
    rows = np.lib.stride_tricks.as_strided(data, shape=(h, row_bytes), strides=(step, 1), writeable=False)
    arr = rows.view(dtype).reshape((h, w) if channels == 1 else (h, w, channels))
    return np.ascontiguousarray(arr.astype(dtype.newbyteorder("="), copy=True)), encoding


def compressed_to_array(msg: Any) -> tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage (png, jpeg, compressedDepth png) -> (array, encoding)."""
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower() and data[:8].tobytes() != PNG_MAGIC:
        # compressed_depth_image_transport puts a 12-byte config header before the PNG stream.
        data = data[12:]
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is None:
        raise BagError(f"could not decode CompressedImage with format {fmt!r} (png/jpeg expected)")
    if arr.ndim == 2:
        encoding = {np.dtype(np.uint8): "mono8", np.dtype(np.uint16): "mono16"}.get(arr.dtype)
    else:
        encoding = {3: "bgr8", 4: "bgra8"}.get(arr.shape[2]) if arr.dtype == np.uint8 else None
    if encoding is None:
        raise BagError(f"CompressedImage decoded to unsupported {arr.dtype} array of shape {arr.shape}")
    return arr, encoding


def decode_image(msg: Any, msgtype: str) -> tuple[np.ndarray, str]:
    """Image or CompressedImage message -> (array, ROS encoding of the array)."""
    if msgtype == COMPRESSED_TYPE:
        return compressed_to_array(msg)
    return image_to_array(msg)


def ir_to_dataset(arr: np.ndarray, encoding: str) -> np.ndarray:
    """IR frame -> (H, W) uint8 or uint16 as stored losslessly in a PNG (16-bit data stays 16-bit)."""
    if arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.dtype.kind == "f" or arr.dtype not in (np.uint8, np.uint16):
        raise BagError(f"IR encoding {encoding!r} ({arr.dtype}) cannot be stored losslessly as PNG; "
                       "8- and 16-bit integer encodings are supported")
    target = "mono16" if arr.dtype == np.uint16 else "mono8"
    try:
        return np.ascontiguousarray(convert_color(arr, encoding, target))
    except ImageError as exc:
        raise BagError(f"IR encoding {encoding!r} cannot be converted to {target}: {exc}") from None


def vis_to_bgr(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Visible frame -> (H, W, 3) uint8 BGR (bayer, yuv, rgb, grey... via rosbags-image's conversions)."""
    if encoding in ("bgr8", "8UC3") and arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
        return arr
    try:
        out = convert_color(arr, encoding, "bgr8")
    except ImageError as exc:
        raise BagError(f"visible encoding {encoding!r} cannot be converted to bgr8: {exc}") from None
    out = np.asarray(out)
    if out.ndim != 3 or out.shape[2] != 3 or out.dtype != np.uint8:
        raise BagError(f"visible encoding {encoding!r} is not a supported colour/grey image")
    return np.ascontiguousarray(out)


def engine_input(arr: np.ndarray, encoding: str, role: str) -> tuple[np.ndarray, str]:
    """(array, encoding) the streaming engine accepts: native when it knows the encoding, else converted
    (IR to mono8/mono16, visible to bgr8)."""
    if encoding in ENCODINGS and ENCODINGS[encoding][1] == arr.dtype:
        return arr, encoding
    if role == "ir":
        out = ir_to_dataset(arr, encoding)
        return out, "mono16" if out.dtype == np.uint16 else "mono8"
    return vis_to_bgr(arr, encoding), "bgr8"


# --- synchronised pairs -------------------------------------------------------------------------------
@dataclass
class ImageFrame:
    """One decoded image message of the bag."""

    topic: str
    stamp_ns: int          # header stamp (bag receive time when the header stamp is zero)
    log_time_ns: int       # bag receive time
    image: np.ndarray      # native dtype and layout (see image_to_array / compressed_to_array)
    encoding: str          # ROS encoding of `image`
    header: Any            # the message's std_msgs/Header (rosbags object): frame_id, stamp


@dataclass
class SyncedPair:
    index: int             # 0-based order of formation
    ir: ImageFrame
    vis: ImageFrame

    @property
    def skew_ns(self) -> int:
        """IR stamp minus visible stamp."""
        return self.ir.stamp_ns - self.vis.stamp_ns


@dataclass
class _Pending:
    conn: Connection
    log_time_ns: int
    stamp_ns: int
    msg: Any


class SyncedBag:
    """IR/visible pairs of a bag, formed by the sync node's pairing policy in receive order: approximate
    time, or with ``pairing="latest_ir"`` every visible frame with the newest IR frame no older than
    ``max_ir_age`` (runtime.sync_policy.LatestIrPolicy, as the node with the same parameters).

    Construction validates the bag and topics (clear errors before any work); iterating yields
    SyncedPair in order of formation and raises BagError at the end when no pair formed at all.
    ``stats`` holds the policy's statistics of the last iteration.
    """

    def __init__(self, path: str | Path, ir_topic: str, vis_topic: str, slop: float = DEFAULT_SLOP_S,
                 queue_size: int = DEFAULT_QUEUE_SIZE, pairing: str = "approximate",
                 max_ir_age: float = DEFAULT_MAX_IR_AGE_S) -> None:
        self.path = Path(path)
        if pairing not in PAIRINGS:
            raise BagError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
        if max_ir_age < 0:
            raise BagError(f"max IR age must be >= 0 seconds, got {max_ir_age}")
        self.pairing = pairing
        self.max_ir_age = float(max_ir_age)
        self.slop = float(slop)
        self.queue_size = int(queue_size)
        self.stats: SyncStats | None = None
        self.skipped: list[str] = []  # messages of the last iteration that could not be used, and why
        if _norm(ir_topic) == _norm(vis_topic):
            raise BagError(f"IR and visible topics are the same ({ir_topic!r})")
        if self.slop < 0:
            raise BagError(f"slop must be >= 0 seconds, got {self.slop}")
        if self.queue_size < 1:
            raise BagError(f"queue size must be >= 1, got {self.queue_size}")
        with open_reader(self.path) as reader:
            ir = find_connections(reader, ir_topic, "IR")
            vis = find_connections(reader, vis_topic, "visible")
            # The bag's own spelling of the topic names from here on.
            self.ir_topic: str = ir[0].topic
            self.vis_topic: str = vis[0].topic
            self.ir_count = sum(c.msgcount for c in ir)
            self.vis_count = sum(c.msgcount for c in vis)
            self.duration_ns = reader.duration if reader.message_count else 0

    @property
    def max_pairs(self) -> int:
        """Upper bound of the number of pairs (for progress bars)."""
        return self.vis_count if self.pairing == "latest_ir" else min(self.ir_count, self.vis_count)

    def nominal_fps(self, default: float = 30.0) -> float:
        """Visible frame rate estimated from the message count and the bag's duration."""
        if self.vis_count > 1 and self.duration_ns > 0:
            fps = (self.vis_count - 1) * NS_PER_S / self.duration_ns
            if 0.5 <= fps <= 1000:
                return fps
        return default

    def _skip(self, p: _Pending | None, reason: str, conn: Connection | None = None, log_time: int = 0) -> None:
        """Record (and name, for the first few) a message that cannot be used; the rest go on."""
        conn, log_time = (p.conn, p.log_time_ns) if p is not None else (conn, log_time)
        where = f"{conn.topic} message received at {log_time / NS_PER_S:.6f} s"
        if p is not None:
            where += f" (stamp {p.stamp_ns / NS_PER_S:.6f} s)"
        self.skipped.append(f"{where}: {reason}")
        if len(self.skipped) <= MAX_NAMED_SKIPS:
            log.warning("skipped %s", self.skipped[-1])
        elif len(self.skipped) == MAX_NAMED_SKIPS + 1:
            log.warning("skipping more malformed messages; the count is reported at the end")

    def _decode(self, matched: tuple[_Pending, _Pending], index: int) -> SyncedPair | None:
        frames = []
        for p in matched:
            if self._last_decoded[0] is p:  # latest_ir: an IR frame reused by several pairs is decoded once
                frame = self._last_decoded[1]
            else:
                try:
                    frame = self._frame(p)
                except BagError as exc:
                    frame = None
                    self._skip(p, str(exc))
                self._last_decoded = (p, frame)
            if frame is None:
                return None
            frames.append(frame)
        return SyncedPair(index, *frames)

    def __iter__(self) -> Iterator[SyncedPair]:
        if self.pairing == "latest_ir":  # the node's rule: an IR frame up to slop after the visible one counts
            policy = LatestIrPolicy(self.queue_size, self.max_ir_age, future_tolerance=self.slop)
        else:
            policy = ApproximateTimePolicy(2, self.queue_size, self.slop)
        self.stats = policy.stats
        self.skipped = []
        self._last_decoded: tuple[_Pending | None, ImageFrame | None] = (None, None)
        ir_range = [None, None]
        vis_range = [None, None]
        n = 0
        with open_reader(self.path) as reader:
            conns = [c for c in reader.connections if c.topic in (self.ir_topic, self.vis_topic)]
            for conn, log_time, raw in reader.messages(connections=conns):
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as exc:  # corrupt bytes: rosbags raises struct, index, unicode... errors
                    self._skip(None, f"cannot be deserialised ({type(exc).__name__}: {exc})", conn, log_time)
                    continue
                stamp = stamp_ns(msg, log_time)
                is_ir = conn.topic == self.ir_topic
                rng = ir_range if is_ir else vis_range
                rng[0] = stamp if rng[0] is None else min(rng[0], stamp)
                rng[1] = stamp if rng[1] is None else max(rng[1], stamp)
                matched = policy.add(0 if is_ir else 1, stamp, _Pending(conn, log_time, stamp, msg))
                if matched is None:
                    continue
                # Decode only what is paired: unpaired frames cost no image conversion.
                pair = self._decode(matched, n)
                if pair is None:  # one malformed message costs its pair, not the whole bag
                    continue
                yield pair
                n += 1
        if n == 0 and self.skipped:
            raise BagError(f"no usable IR/visible pairs in {self.path}: {len(self.skipped)} malformed message(s), "
                           f"the first: {self.skipped[0]}")
        if n == 0:
            def span(r):
                return "none" if r[0] is None else f"{r[0] / NS_PER_S:.3f}..{r[1] / NS_PER_S:.3f} s"
            rule = (f"with an IR frame at most {self.max_ir_age:g} s older" if self.pairing == "latest_ir"
                    else f"within slop {self.slop:g} s")
            raise BagError(
                f"no IR/visible pairs {rule} in {self.path}: "
                f"{self.stats.received[0]} IR messages (stamps {span(ir_range)}), "
                f"{self.stats.received[1]} visible messages (stamps {span(vis_range)}); "
                "check the topics or increase --slop")

    def frames(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, ir, vis_bgr) per pair, the shape of ``SequencePair.frames()`` and of the input of
        ``runtime.offline.stream_frames``: name is the 1-based pair number as ``000001``, ir is (H, W)
        uint8 or uint16 (16-bit kept), vis is (H, W, 3) uint8 BGR."""
        for pair in self:
            yield (f"{pair.index + 1:06d}", ir_to_dataset(pair.ir.image, pair.ir.encoding),
                   vis_to_bgr(pair.vis.image, pair.vis.encoding))

    def engine_frames(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, str, str]]:
        """(name, ir, vis, ir_encoding, vis_encoding) per pair in encodings the engine accepts, native
        where possible (e.g. 32FC1 thermal, rgb8 visible); for a stream_frames that takes encodings."""
        for pair in self:
            ir, ir_enc = engine_input(pair.ir.image, pair.ir.encoding, "ir")
            vis, vis_enc = engine_input(pair.vis.image, pair.vis.encoding, "vis")
            yield f"{pair.index + 1:06d}", ir, vis, ir_enc, vis_enc

    @staticmethod
    def _frame(p: _Pending) -> ImageFrame:
        image, encoding = decode_image(p.msg, p.conn.msgtype)
        return ImageFrame(p.conn.topic, p.stamp_ns, p.log_time_ns, image, encoding, p.msg.header)


def bag_frames(path: str | Path, ir_topic: str = DEFAULT_IR_TOPIC, vis_topic: str = DEFAULT_VIS_TOPIC,
               slop: float = DEFAULT_SLOP_S, queue_size: int = DEFAULT_QUEUE_SIZE
               ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``SyncedBag(...).frames()``: (name, ir, vis_bgr) frames of a bag for ``stream_frames``."""
    return SyncedBag(path, ir_topic, vis_topic, slop, queue_size).frames()


# --- writing ------------------------------------------------------------------------------------------
#: typestore used to serialise the messages this package adds (Image is wire-identical in every ROS 2 distro)
OUTPUT_TYPESTORE = get_typestore(Stores.LATEST)


def image_message(arr: np.ndarray, encoding: str, header: Any | None = None, *, stamp_ns: int = 0,
                  frame_id: str = "", typestore: Typestore = OUTPUT_TYPESTORE) -> Any:
    """A sensor_msgs/msg/Image of `arr` (native byte order, unpadded rows) with the given header.

    `header` may be any object with ``stamp.sec``, ``stamp.nanosec`` and ``frame_id`` (e.g. a header read
    from a ROS 1 or ROS 2 bag); otherwise stamp_ns/frame_id are used.
    """
    Image = typestore.types[IMAGE_TYPE]
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    if header is not None:
        sec, nanosec, frame_id = int(header.stamp.sec), int(header.stamp.nanosec), str(header.frame_id)
    else:
        sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return Image(
        header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id),
        height=h, width=w, encoding=encoding,
        is_bigendian=int(sys.byteorder == "big"),
        step=w * (arr.shape[2] if arr.ndim == 3 else 1) * arr.itemsize,
        data=arr.reshape(-1).view(np.uint8),
    )


def storage_plugin(name: str) -> StoragePlugin:
    try:
        return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[name]
    except KeyError:
        raise BagError(f"unknown rosbag2 storage {name!r}; choose mcap or sqlite3") from None


class BagCopyWriter:
    """A rosbag2 writer that copies every connection of an opened reader and takes added Image topics.

    ROS 1 input is converted to ROS 2 messages by rosbags' own converter (header ``seq`` dropped and
    so on); rosbag2 input is copied byte for byte. Receive times are kept.
    """

    def __init__(self, out: str | Path, reader: AnyReader, storage: str = "mcap") -> None:
        # create_connections_converters is rosbags' ROS1<->ROS2 conversion machinery behind
        # `rosbags-convert`; imported here so a change of that internal API fails at the right place.
        from rosbags.convert.converter import create_connections_converters

        self.out = Path(out)
        if self.out.exists():
            raise BagError(f"output {self.out} exists already; remove it or choose another path")
        self.writer = Writer(self.out, version=Writer.VERSION_LATEST, storage_plugin=storage_plugin(storage))
        self.writer.open()
        try:
            self._connmap, self._convmap = create_connections_converters(
                reader.connections, None, reader, self.writer)
        except Exception:
            self.abort()
            raise
        self._added: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}   # messages written per added topic
        self.copied = 0                    # messages copied from the input

    def copy(self, conn: Connection, log_time_ns: int, raw: bytes | memoryview) -> None:
        """Write one message read from the source reader, converted when needed."""
        self.writer.write(self._connmap[(conn.id, conn.owner)], log_time_ns, self._convmap[conn.msgtype](raw))
        self.copied += 1

    def add_image_topic(self, topic: str) -> None:
        topic = _norm(topic)
        if any(_norm(c.topic) == topic for c in self.writer.connections):
            raise BagError(f"topic {topic} exists in the input bag already; choose another --prefix")
        self._added[topic] = self.writer.add_connection(topic, IMAGE_TYPE, typestore=OUTPUT_TYPESTORE)
        self.counts[topic] = 0

    def write_image(self, topic: str, log_time_ns: int, msg: Any) -> None:
        topic = _norm(topic)
        data = OUTPUT_TYPESTORE.serialize_cdr(msg, IMAGE_TYPE)
        self.writer.write(self._added[topic], log_time_ns, data)
        self.counts[topic] += 1

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Give up after an error: the unfinished output (no index, no metadata) is removed so that a
        rerun is not refused by an unreadable leftover. The directory did not exist before we made it."""
        try:
            self.writer.abort()
        finally:
            shutil.rmtree(self.out, ignore_errors=True)


__all__ = [
    "BagCopyWriter",
    "BagError",
    "COMPRESSED_TYPE",
    "DEFAULT_IR_TOPIC",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_VIS_TOPIC",
    "DEFAULT_SLOP_S",
    "IMAGE_TYPE",
    "ImageFrame",
    "SyncedBag",
    "SyncedPair",
    "bag_frames",
    "compressed_to_array",
    "decode_image",
    "engine_input",
    "image_message",
    "image_to_array",
    "image_topics",
    "ir_to_dataset",
    "list_image_topics",
    "open_reader",
    "stamp_ns",
    "vis_to_bgr",
]
