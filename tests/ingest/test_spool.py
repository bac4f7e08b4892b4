"""The spool on a real file system: group commit, order, recovery after a crash, limits."""

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.spool import (
    Spool,
    SpooledRecord,
    SpoolError,
    SpoolFull,
    encode,
    spool_directories,
)
from voicepulse.errors import ConfigError


def _spool(
    directory: Path,
    *,
    max_bytes: int = 10**8,
    segment_bytes: int = 10**6,
    adopt: tuple[Path, ...] = (),
) -> Spool:
    spool = Spool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes, adopt=adopt)
    spool.open()
    return spool


def _record(i: int) -> SpooledRecord:
    return SpooledRecord("twilio.call-status", f"AC{i % 3}".encode(), f"event-{i}".encode())


def _only_segment(directory: Path) -> Path:
    [segment] = directory.glob("*.seg")
    return segment


def _tear(segment: Path) -> int:
    """Append a half-written record, as a crash mid-write leaves it; the size before."""
    whole = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(encode(_record(99))[:-3])
    return whole


def _flip_byte(segment: Path, at: int) -> bytes:
    data = bytearray(segment.read_bytes())
    data[at] ^= 0xFF
    segment.write_bytes(bytes(data))
    return bytes(data)


def _all(spool: Spool) -> list[SpooledRecord]:
    return [r for path in spool.closed_segments() for r in spool.read_segment(path)]


async def test_concurrent_appends_share_fsyncs_and_keep_order(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await asyncio.gather(*(spool.append(_record(i)) for i in range(200)))
    assert spool.records == 200
    assert 1 <= spool.fsyncs < 50, f"{spool.fsyncs} fsyncs for 200 concurrent appends"
    spool.close()
    reopened = _spool(tmp_path)
    assert _all(reopened) == [_record(i) for i in range(200)]
    assert reopened.records == 200
    reopened.close()


async def test_segments_roll_and_are_removed_only_when_asked(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=200)
    for i in range(20):
        await spool.append(_record(i))
    await spool.roll()
    segments = spool.closed_segments()
    assert len(segments) > 3
    assert _all(spool) == [_record(i) for i in range(20)]
    size = spool.size
    spool.remove_segment(segments[0])
    assert not segments[0].exists()
    assert spool.size < size
    assert _all(spool)[0] != _record(0)
    spool.close()


async def test_torn_tail_is_cut_off_on_open(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(5):
        await spool.append(_record(i))
    spool.close()
    segment = _only_segment(tmp_path)
    whole = _tear(segment)
    reopened = _spool(tmp_path)
    assert _all(reopened) == [_record(i) for i in range(5)]
    assert segment.stat().st_size == whole
    await reopened.append(_record(5))
    reopened.close()
    again = _spool(tmp_path)
    assert _all(again) == [_record(i) for i in range(6)]
    again.close()


async def test_checksum_failure_is_set_aside_not_dropped(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(3):
        await spool.append(_record(i))
    spool.close()
    segment = _only_segment(tmp_path)
    second = len(encode(_record(0)))
    data = _flip_byte(segment, second + 10)
    reopened = _spool(tmp_path)
    assert _all(reopened) == [_record(0)]
    assert segment.with_suffix(".corrupt").read_bytes() == data[second:]
    reopened.close()


async def test_full_spool_refuses(tmp_path: Path) -> None:
    one = len(encode(_record(0)))
    spool = _spool(tmp_path, max_bytes=3 * one)
    for i in range(3):
        await spool.append(_record(i))
    assert not spool.has_room
    with pytest.raises(SpoolFull):
        await spool.append(_record(3))
    assert spool.records == 3
    spool.close()


async def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    with pytest.raises(ConfigError, match="in use"):
        _spool(tmp_path)
    spool.close()
    _spool(tmp_path).close()


def test_spool_directories_of_single_receiver_and_workers(tmp_path: Path) -> None:
    for name in ("worker-0", "worker-1", "worker-3", "worker-x"):
        (tmp_path / name).mkdir()
    workers = [tmp_path / f"worker-{i}" for i in (0, 1, 3)]
    assert spool_directories(tmp_path, 1, None) == (tmp_path, workers)
    assert spool_directories(tmp_path, 2, 0) == (workers[0], [tmp_path, workers[2]])
    assert spool_directories(tmp_path, 2, 1) == (workers[1], [tmp_path, workers[2]])
    assert spool_directories(tmp_path, 4, 3) == (workers[2], [tmp_path])


async def test_orphan_spools_are_adopted_in_order_torn_tails_cut(tmp_path: Path) -> None:
    own, orphan = tmp_path / "worker-0", tmp_path / "worker-3"
    spool = _spool(own)
    await spool.append(_record(0))
    spool.close()
    left = _spool(orphan, segment_bytes=40)
    for i in range(1, 6):
        await left.append(_record(i))
    left.close()
    whole = _tear(sorted(orphan.glob("*.seg"))[-1])
    adopted = _spool(own, adopt=(orphan, tmp_path / "absent"))
    assert _all(adopted) == [_record(i) for i in range(6)]
    assert adopted.records == 6
    assert not list(orphan.glob("*.seg"))
    assert sorted(own.glob("*.seg"))[-1].stat().st_size == whole
    await adopted.append(_record(6))  # its next segment comes after the adopted ones
    adopted.close()
    again = _spool(tmp_path / "again", adopt=(own,))
    assert _all(again) == [_record(i) for i in range(7)]
    again.close()


async def test_a_spool_in_use_is_not_adopted(tmp_path: Path) -> None:
    live = _spool(tmp_path / "worker-1")
    await live.append(_record(1))
    adopter = _spool(tmp_path / "worker-0", adopt=(tmp_path / "worker-1",))
    assert adopter.records == 0
    assert live.records == 1
    adopter.close()
    live.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs of its own (mounting needs root: CI runs as root, so there it must run)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a small tmpfs (root only): {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


async def test_a_full_disk_refuses_appends_and_the_stored_records_still_drain(
    small_disk: Path,
) -> None:
    """On a full disk each append raises SpoolError (the receiver answers 503); every record
    acknowledged before stays readable, rolling the segment does not fail, and once drained
    the freed space takes appends again."""
    spool = _spool(small_disk / "spool", segment_bytes=16 * 1024)
    stored: list[SpooledRecord] = []
    refused = 0
    for i in range(2_000):
        record = SpooledRecord("twilio.call-status", b"AC1", f"event-{i}".encode() * 40)
        try:
            await spool.append(record)
        except SpoolError:
            refused += 1
        else:
            stored.append(record)
    assert stored, "the first append already failed"
    assert refused, f"all {len(stored)} appends were stored: the disk never filled"
    assert spool.records == len(stored)
    await spool.roll()
    assert _all(spool) == stored
    for path in spool.closed_segments():
        spool.remove_segment(path)
    await spool.append(_record(1))
    spool.close()
    reopened = _spool(small_disk / "spool")
    assert _all(reopened) == [_record(1)]
    reopened.close()
