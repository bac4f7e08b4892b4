"""The local spool: where an event goes when Kafka does not acknowledge it in time.

Layout: segment files ``<20-digit sequence>.seg`` in one directory, oldest first. A record is

    length (4 bytes, big-endian) | crc32 of the payload (4 bytes) | payload
    payload = topic length (2) | topic | key length (4) | key | value

Guarantees:

1. :meth:`Spool.append` returns only after the record is written and fsynced. Appends that
   arrive while a write is under way are written together by the next write with one fsync
   (group commit), so concurrent requests share fsyncs instead of paying one each.
2. A record is never half-visible: a crash mid-write leaves a torn tail, which the next
   :meth:`Spool.open` cuts off (that record was never acknowledged to anyone). A checksum
   mismatch before the tail sets the segment aside as ``.corrupt`` and logs it, never silently.
3. Records come back in the order they were appended (:meth:`closed_segments`, then
   :meth:`read_segment`); a segment is deleted only by :meth:`remove_segment`, which the
   drainer calls after Kafka acknowledged every record in it.
4. Past ``max_bytes`` an append raises :class:`SpoolFull`: the caller answers 503.
5. One process per directory (an exclusive lock), so two receivers never interleave.
6. Orphans: :meth:`Spool.open` also takes the segments of the directories given as ``adopt``
   (a dead receiver's, or those of a run with more workers, :func:`spool_directories`) whose
   lock it gets, by renaming them into its own directory: a segment is in exactly one of the
   two at every moment, so a crash mid-way neither loses nor repeats it.
"""

import asyncio
import errno
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from voicepulse.errors import ConfigError, VoicePulseError

__all__ = ["Spool", "SpoolError", "SpoolFull", "SpooledRecord", "spool_directories"]

logger = logging.getLogger(__name__)

_HEADER: Final = struct.Struct(">II")
_SUFFIX: Final = ".seg"
_WORKER_PREFIX: Final = "worker-"


class SpoolError(VoicePulseError):
    """The spool could not write or fsync (disk full, I/O error)."""


class SpoolFull(SpoolError):
    """The spool reached its configured size."""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    topic: str
    key: bytes
    value: bytes


def encode(record: SpooledRecord) -> bytes:
    topic = record.topic.encode()
    payload = b"".join(
        (struct.pack(">H", len(topic)), topic, struct.pack(">I", len(record.key)), record.key)
    )
    payload += record.value
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> SpooledRecord:
    (topic_len,) = struct.unpack_from(">H", payload, 0)
    topic = payload[2 : 2 + topic_len].decode()
    (key_len,) = struct.unpack_from(">I", payload, 2 + topic_len)
    start = 6 + topic_len
    return SpooledRecord(topic, payload[start : start + key_len], payload[start + key_len :])


def scan(data: bytes) -> tuple[list[SpooledRecord], int, bool]:
    """The whole records in ``data``, the length they cover, and whether a checksum failed."""
    records: list[SpooledRecord] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if end > len(data):
            break
        payload = data[offset + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return records, offset, True
        records.append(_decode_payload(payload))
        offset = end
    return records, offset, False


def spool_directories(root: Path, workers: int, index: int | None) -> tuple[Path, list[Path]]:
    """The directory a receiver spools into and the orphan directories it adopts.

    A single receiver (``index`` None) owns ``root`` and adopts every ``root/worker-<j>``; the
    worker ``i`` of ``workers`` owns ``root/worker-<i>`` and adopts ``root`` and the
    ``worker-<j>`` with ``j >= workers`` (left by a run with more workers).
    """
    found = {}
    for path in root.glob(f"{_WORKER_PREFIX}*"):
        suffix = path.name.removeprefix(_WORKER_PREFIX)
        if path.is_dir() and suffix.isdigit():
            found[int(suffix)] = path
    if index is None:
        return root, [found[j] for j in sorted(found)]
    orphans = [root, *(found[j] for j in sorted(found) if j >= workers)]
    return root / f"{_WORKER_PREFIX}{index}", orphans


class Spool:
    """Segment files under one directory; see the module docstring for the guarantees."""

    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int, adopt: Sequence[Path] = ()
    ) -> None:
        self.directory = directory
        self._orphans = tuple(adopt)
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._sizes: dict[Path, int] = {}
        self._counts: dict[Path, int] = {}
        self._active: Path | None = None
        self._file: BinaryIO | None = None
        self._lock_file: BinaryIO | None = None
        self._next = 1
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._pending_records = 0
        self._writer: asyncio.Task[None] | None = None
        self._io = asyncio.Lock()
        self._largest = 1
        self.fsyncs = 0

    @property
    def records(self) -> int:
        """Records stored or being written, not yet removed by the drainer."""
        return sum(self._counts.values()) + self._pending_records

    @property
    def size(self) -> int:
        return sum(self._sizes.values()) + self._pending_bytes

    @property
    def has_room(self) -> bool:
        """Room for one more record as large as the largest seen so far."""
        return self.max_bytes - self.size >= self._largest

    def open(self) -> None:
        """Lock the directory and take stock of what an earlier run left, repairing torn tails."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = (self.directory / ".lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.close()
            raise ConfigError(f"the spool {self.directory} is in use by another process") from exc
        self._lock_file = lock
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            self._recover(path)
            self._next = max(self._next, int(path.stem) + 1)
        for orphan in self._orphans:
            self._adopt(orphan)
        if self._counts:
            logger.warning(
                "spool %s holds %d records from an earlier run; they will be sent to Kafka",
                self.directory,
                self.records,
            )

    def _adopt(self, directory: Path) -> None:
        """Move the segments of ``directory`` behind our own, unless another process holds it."""
        if not directory.is_dir():
            return
        with (directory / ".lock").open("ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                logger.info("spool %s is in use by another process, not adopted", directory)
                return
            segments = sorted(directory.glob(f"*{_SUFFIX}"))
            for path in segments:
                target = self.directory / f"{self._next:020d}{_SUFFIX}"
                self._next += 1
                path.rename(target)
                self._recover(target)
        if segments:
            _fsync_directory(directory)
            _fsync_directory(self.directory)
            logger.warning(
                "spool %s: adopted %d segments left in %s", self.directory, len(segments), directory
            )

    def _recover(self, path: Path) -> None:
        data = path.read_bytes()
        records, valid, corrupt = scan(data)
        if corrupt:
            aside = path.with_suffix(".corrupt")
            logger.error(
                "spool segment %s fails its checksum after %d records; the rest is kept in %s",
                path,
                len(records),
                aside,
            )
            aside.write_bytes(data[valid:])
        if valid < len(data):
            with path.open("r+b") as file:
                file.truncate(valid)
                os.fsync(file.fileno())
        if records:
            self._sizes[path] = valid
            self._counts[path] = len(records)
        else:
            path.unlink()

    def close(self) -> None:
        """Close the files; what is stored stays for the next run. Harmless twice."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._active = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def append(self, record: SpooledRecord) -> None:
        """Store ``record``; returns once it is fsynced (see guarantee 1)."""
        data = encode(record)
        self._largest = max(self._largest, len(data))
        if self.size + len(data) > self.max_bytes:
            raise SpoolFull(f"the spool holds {self.size} bytes, its limit is {self.max_bytes}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((data, future))
        self._pending_bytes += len(data)
        self._pending_records += 1
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="spool-writer")
        await future

    async def _write_pending(self) -> None:
        while self._pending:
            async with self._io:
                batch, self._pending = self._pending, []
                size = sum(len(data) for data, _ in batch)
                try:
                    path = await asyncio.to_thread(self._write, [data for data, _ in batch])
                except OSError as exc:
                    error: SpoolError | None = SpoolError(f"spool write failed: {exc}")
                else:
                    error = None
                    self._sizes[path] = self._sizes.get(path, 0) + size
                    self._counts[path] = self._counts.get(path, 0) + len(batch)
                self._pending_bytes -= size
                self._pending_records -= len(batch)
            for _, future in batch:
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def _write(self, chunks: list[bytes]) -> Path:
        if self._file is None or self._active is None:
            self._start_segment()
        assert self._file is not None
        assert self._active is not None
        path = self._active
        try:
            _write_all(self._file, b"".join(chunks))
            os.fsync(self._file.fileno())
        except OSError:
            self._cut_back(path)
            raise
        self.fsyncs += 1
        if self._file.tell() >= self._segment_bytes:
            self._end_segment()
        return path

    def _cut_back(self, path: Path) -> None:
        """After a failed write (a full disk, an I/O error): truncate the segment to the records
        already acknowledged and end it, so that what is stored drains as it is and the next
        write starts a new segment. The file is unbuffered, so closing it writes nothing (a
        buffered file would retry the failed bytes on every close and never let go)."""
        assert self._file is not None
        good = self._sizes.get(path, 0)
        try:
            os.ftruncate(self._file.fileno(), good)
        except OSError as exc:  # the torn tail is repaired by the next open's scan
            logger.error("spool segment %s: truncating a failed write failed: %s", path, exc)
        self._end_segment()
        if good == 0:
            path.unlink(missing_ok=True)

    def _start_segment(self) -> None:
        self._active = self.directory / f"{self._next:020d}{_SUFFIX}"
        self._next += 1
        self._file = self._active.open("ab", buffering=0)
        _fsync_directory(self.directory)

    def _end_segment(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._active = None

    async def roll(self) -> None:
        """End the segment being written, so that the drainer can take every record so far."""
        async with self._io:
            self._end_segment()

    def closed_segments(self) -> list[Path]:
        """Segments no longer written to, oldest first."""
        return sorted(path for path in self._counts if path != self._active)

    def read_segment(self, path: Path) -> list[SpooledRecord]:
        """The records of a closed segment, in append order (blocking: call it in a thread)."""
        records, _, _ = scan(path.read_bytes()[: self._sizes[path]])
        return records

    def remove_segment(self, path: Path) -> None:
        """Delete a drained segment (only after Kafka acknowledged all of it)."""
        path.unlink(missing_ok=True)
        self._sizes.pop(path, None)
        self._counts.pop(path, None)


def _write_all(file: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, "the spool's file took no bytes")
        view = view[written:]


def _fsync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
