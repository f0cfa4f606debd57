"""rosbag2 reading (sqlite3 and mcap) with ``rosbags``, ROS-free, and honest about damaged bags.

A recording cut by a power loss or a killed recorder is the common case on a robot: an MCAP file
without its footer, an SQLite file with missing pages. ``rosbags`` refuses to open those, so this
module falls back to a linear scan that yields every complete message before the damage, then raises
``BagReadError`` naming the file, how many messages were read and what broke. Callers decide whether
that ends the run (replay) or only shortens it (evaluation reports cover the frames read).

Messages come out as raw CDR bytes plus their type name: the replay node publishes those bytes
unchanged (no deserialisation at all), the evaluation deserialises only the topics it needs.
"""

from __future__ import annotations

import functools
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import yaml
from rosbags.highlevel import AnyReader
from rosbags.rosbag2.storage_mcap import decompress
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from .images import image_to_bgr

MCAP_MAGIC = b"\x89MCAP0\r\n"


class BagReadError(RuntimeError):
    """A bag that could not be read to its end; ``messages_read`` complete messages came before."""

    def __init__(
        self, path: Path | str, messages_read: int, reason: str, expected: int | None = None
    ) -> None:
        self.path = Path(path)
        self.messages_read = messages_read
        self.expected = expected
        self.reason = reason
        of = f" of {expected}" if expected else ""
        super().__init__(f"bag {self.path}: read {messages_read}{of} messages, then: {reason}")


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str  # e.g. "sensor_msgs/msg/Image"
    timestamp_ns: int  # receive (log) time recorded in the bag
    data: bytes  # CDR with its 4-byte encapsulation header, as rclpy's serialize_message writes it


@dataclass
class BagInfo:
    path: Path
    storage: str  # "mcap" | "sqlite3"
    topics: dict[str, str]  # topic -> message type
    msgdefs: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (format, text)
    message_count: int | None = None  # from the bag's metadata when it has one
    start_ns: int | None = None
    salvaged: bool = False  # opened by the fallback scanner (damaged bag)


def _vision_msgs_dir() -> Path | None:
    """``vision_msgs/msg`` definitions: the installed package on a robot, else the source tree copy."""
    try:  # lazy: ament exists only on a ROS install
        from ament_index_python.packages import get_package_share_directory

        d = Path(get_package_share_directory("vision_msgs")) / "msg"
        if d.is_dir():
            return d
    except Exception:
        pass
    d = Path(__file__).resolve().parents[2] / "third_party" / "vision_msgs" / "msg"
    return d if d.is_dir() else None


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """A rosbags typestore with the ROS 2 Humble types plus ``vision_msgs`` (cached)."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    d = _vision_msgs_dir()
    if d is not None:
        types: dict[str, Any] = {}
        for f in sorted(d.glob("*.msg")):
            types.update(get_types_from_msg(f.read_text(), f"vision_msgs/msg/{f.stem}"))
        store.register(types)
    return store


def deserializer(info: BagInfo) -> Any:
    """A typestore that knows every type of this bag (its own definitions override the defaults)."""
    store = typestore()
    extra: dict[str, Any] = {}
    for msgtype, (fmt, text) in info.msgdefs.items():
        if fmt == "ros2msg" and text and msgtype not in store.types:
            try:
                extra.update(get_types_from_msg(text, msgtype))
            except Exception:  # a definition rosbags cannot parse: that topic stays raw-only
                continue
    if extra:
        store.register(extra)
    return store


def _storage_files(path: Path) -> tuple[str, list[Path]]:
    if path.is_file() and path.suffix == ".bag":
        return "ros1", [path]  # BehaviorMetrics' recordings and perfect laps
    if path.is_file():
        files = [path]
    else:
        if not path.is_dir():
            raise FileNotFoundError(f"bag not found: {path} (expected a rosbag2 folder or a .mcap/.db3 file)")
        files = sorted(path.glob("*.mcap")) or sorted(path.glob("*.db3"))
    if not files:
        raise BagReadError(path, 0, "no .mcap or .db3 file in the bag directory")
    return ("mcap" if files[0].suffix == ".mcap" else "sqlite3"), files


class Bag:
    """``with Bag(path) as bag: for m in bag.messages(topics): ...``; ``bag.info`` lists topics.

    ``path`` is a rosbag2 directory (``metadata.yaml`` + storage files) or a single ``.mcap``/``.db3``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: Any = None
        self._open_error = ""
        self.storage, self._files = _storage_files(self.path)
        self.info = self._open()

    # -- opening: rosbags first, the salvage scanner when rosbags refuses the file
    def _open(self) -> BagInfo:
        if self.storage == "ros1" or (self.path / "metadata.yaml").is_file():
            try:
                reader = AnyReader([self.path], default_typestore=typestore())
                reader.open()
            except Exception as exc:
                self._open_error = f"{type(exc).__name__}: {exc}"
            else:
                self._reader = reader
                topics = {c.topic: c.msgtype for c in reader.connections}
                msgdefs = {c.msgtype: ("ros2msg", c.msgdef.data) for c in reader.connections}
                return BagInfo(
                    self.path, self.storage, topics, msgdefs, reader.message_count, reader.start_time
                )
        else:
            self._open_error = "no metadata.yaml"
        expected = _expected_count(self.path)
        if self.storage == "ros1":  # no salvage scanner for ROS 1 bags
            raise BagReadError(self.path, 0, self._open_error)
        scan = _mcap_scan_topics if self.storage == "mcap" else _sqlite_topics
        topics, msgdefs, damage = scan(self._files)
        if not topics and damage:
            # Nothing readable at all: say why now, not later as "no such topic".
            raise BagReadError(self.path, 0, self._salvage_reason(damage), expected)
        return BagInfo(self.path, self.storage, topics, msgdefs, expected, None, salvaged=True)

    def _salvage_reason(self, reason: str) -> str:
        return f"{reason} (rosbags could not open it: {self._open_error}; read by the salvage scanner)"

    def require(self, topic: str, what: str = "topic") -> None:
        """ValueError naming the bag's topics when ``topic`` is not one of them."""
        if topic not in self.info.topics:
            have = ", ".join(sorted(self.info.topics)) or "none"
            raise ValueError(f"bag {self.path} has no {what} {topic}; it has: {have}")

    def decoded(self, topics: Iterable[str] | None = None) -> Iterator[tuple[BagMessage, Any]]:
        """``(raw message, deserialised message)`` of ``topics``, as ``messages`` reads them."""
        if self._reader is not None:  # rosbags knows the bag's own definitions, ROS 1 or 2
            decode = self._reader.deserialize
        else:
            decode = deserializer(self.info).deserialize_cdr
        for m in self.messages(topics):
            yield m, decode(m.data, m.msgtype)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Every message of ``topics`` (all when None) in log-time order.

        Raises ``BagReadError`` after the last readable message when the bag is damaged.
        """
        wanted = set(topics) if topics is not None else None
        count = 0
        try:
            if self._reader is not None:
                conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
                for conn, ts, raw in self._reader.messages(connections=conns):
                    yield BagMessage(conn.topic, conn.msgtype, ts, bytes(raw))
                    count += 1
                return
            scan = _mcap_scan_messages if self.storage == "mcap" else _sqlite_messages
            for msg in scan(self._files, wanted):
                yield msg
                count += 1
        except BagReadError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self.info.salvaged:
                reason = self._salvage_reason(reason)
            raise BagReadError(self.path, count, reason, self.info.message_count) from exc


def _expected_count(path: Path) -> int | None:
    meta = path / "metadata.yaml" if path.is_dir() else None
    if meta is None or not meta.is_file():
        return None
    try:
        data = yaml.safe_load(meta.read_text())
        return int(data["rosbag2_bagfile_information"]["message_count"])
    except Exception:
        return None


# -- MCAP linear scan: records are opcode(1) + length(8) + body; stop at the first incomplete one
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK, _OP_FOOTER, _OP_DATA_END = 0x03, 0x04, 0x05, 0x06, 0x02, 0x0F
_OP_PARTIAL_CHUNK = -1  # internal marker: a chunk record cut by the end of the file


def _str(buf: BinaryIO) -> str:
    (n,) = struct.unpack("<I", buf.read(4))
    return buf.read(n).decode()


def _records(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Top-level records up to the footer. A file cut short ends in ``ValueError`` naming the byte;
    an uncompressed chunk cut short first yields its complete part (recorders default to no
    compression, so a killed recording keeps everything but the last partial message)."""
    if f.read(8) != MCAP_MAGIC:
        raise ValueError("not an MCAP file (bad magic)")
    while True:
        head = f.read(9)
        if len(head) < 9:
            raise ValueError(f"file ends at byte {f.tell()} without the MCAP footer (recording cut short)")
        op, size = head[0], struct.unpack("<Q", head[1:])[0]
        body = f.read(size)
        if op in (_OP_FOOTER, _OP_DATA_END):
            return
        if len(body) < size:
            if op == _OP_CHUNK:
                yield _OP_PARTIAL_CHUNK, body
            raise ValueError(f"record 0x{op:02x} cut at byte {f.tell()} ({len(body)} of {size} bytes)")
        yield op, body


def _chunk_records(body: bytes, partial: bool) -> Iterator[tuple[int, bytes]]:
    buf = BytesIO(body)
    _, _, usize, crc = struct.unpack("<QQQI", buf.read(28))
    compression = _str(buf)
    (csize,) = struct.unpack("<Q", buf.read(8))
    if partial:
        if compression:
            return  # a cut compressed chunk cannot be decoded
        inner = BytesIO(buf.read())
    else:
        inner = BytesIO(decompress(buf.read(csize), compression, usize, crc))
    while True:
        head = inner.read(9)
        if len(head) < 9:
            return
        iop, isize = head[0], struct.unpack("<Q", head[1:])[0]
        rec = inner.read(isize)
        if len(rec) < isize:
            return
        yield iop, rec


def _flat_records(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Top-level records with chunks expanded into the records they hold."""
    for op, body in _records(f):
        if op in (_OP_CHUNK, _OP_PARTIAL_CHUNK):
            yield from _chunk_records(body, partial=op == _OP_PARTIAL_CHUNK)
        else:
            yield op, body


def _mcap_walk(files: list[Path], wanted: set[str] | None, with_messages: bool) -> Iterator[Any]:
    schemas: dict[int, tuple[str, str, str]] = {}
    channels: dict[int, tuple[str, str]] = {}
    for path in files:
        with open(path, "rb") as f:
            for op, body in _flat_records(f):
                buf = BytesIO(body)
                if op == _OP_SCHEMA:
                    (sid,) = struct.unpack("<H", buf.read(2))
                    name, enc = _str(buf), _str(buf)
                    (n,) = struct.unpack("<I", buf.read(4))
                    schemas[sid] = (name, enc, buf.read(n).decode(errors="replace"))
                elif op == _OP_CHANNEL:
                    cid, sid = struct.unpack("<HH", buf.read(4))
                    topic = _str(buf)
                    name, enc, text = schemas.get(sid, ("", "", ""))
                    channels[cid] = (topic, name)
                    if not with_messages:
                        yield topic, name, enc, text
                elif op == _OP_MESSAGE and with_messages:
                    cid, _seq, log_time, _pub = struct.unpack("<HIQQ", body[:22])
                    topic, msgtype = channels.get(cid, ("", ""))
                    if topic and (wanted is None or topic in wanted):
                        yield BagMessage(topic, msgtype, log_time, body[22:])


_Topics = tuple[dict[str, str], dict[str, tuple[str, str]], str]  # topics, definitions, damage ("" if none)


def _mcap_scan_topics(files: list[Path]) -> _Topics:
    topics: dict[str, str] = {}
    defs: dict[str, tuple[str, str]] = {}
    try:
        for topic, name, enc, text in _mcap_walk(files, None, with_messages=False):
            topics[topic] = name
            defs[name] = (enc, text)
    except ValueError as exc:  # with topics found, the message pass reports the damage with its count
        return topics, defs, f"ValueError: {exc}"
    return topics, defs, ""


def _mcap_scan_messages(files: list[Path], wanted: set[str] | None) -> Iterator[BagMessage]:
    # Salvaged files are not indexed: messages come in write order, which is log-time order for
    # a recorder; sort per topic is not attempted (that would need the whole file in memory).
    yield from _mcap_walk(files, wanted, with_messages=True)


def _sqlite_topics(files: list[Path]) -> _Topics:
    topics: dict[str, str] = {}
    damage = ""
    for path in files:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for name, typ in con.execute("SELECT name, type FROM topics"):
                topics[name] = typ
        except sqlite3.DatabaseError as exc:  # e.g. "database disk image is malformed"
            damage = f"{path.name}: {type(exc).__name__}: {exc}"
        finally:
            con.close()
    return topics, {}, damage


def _sqlite_messages(files: list[Path], wanted: set[str] | None) -> Iterator[BagMessage]:
    for path in files:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ids = {i: (n, t) for i, n, t in con.execute("SELECT id, name, type FROM topics")}
            for tid, ts, data in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
                topic, msgtype = ids[tid]
                if wanted is None or topic in wanted:
                    yield BagMessage(topic, msgtype, int(ts), bytes(data))
        finally:
            con.close()


def images_from_bag(bag: str | Path, topic: str = "/camera/image_raw", limit: int = 0) -> Iterator[np.ndarray]:
    """8-bit BGR images of a ``sensor_msgs/Image`` topic (every encoding ``io.images`` reads).

    ValueError for a missing topic, FileNotFoundError for a missing bag, ``BagReadError`` at damage.
    """
    with Bag(bag) as b:
        b.require(topic)
        for count, (_, msg) in enumerate(b.decoded([topic]), start=1):
            yield np.ascontiguousarray(image_to_bgr(msg))
            if limit and count >= limit:
                return


def odometry_xy(path: str | Path, topic: str | None = None) -> np.ndarray:
    """x, y of every ``nav_msgs/Odometry`` on ``topic`` (or the bag's only odometry topic)."""
    with Bag(path) as bag:
        topics = [t for t, typ in bag.info.topics.items() if typ == "nav_msgs/msg/Odometry"]
        if topic is not None:
            topics = [t for t in topics if t == topic]
        if not topics:
            raise ValueError(f"{path}: no nav_msgs/Odometry{' on ' + topic if topic else ''} in the bag")
        xy = [(msg.pose.pose.position.x, msg.pose.pose.position.y) for _, msg in bag.decoded(topics[:1])]
    if len(xy) < 3:
        raise ValueError(f"{path}: a reference lap needs at least 3 odometry messages, found {len(xy)}")
    return np.asarray(xy, np.float64)
