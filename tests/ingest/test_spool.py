"""The spool on a real file system: group commit, order, recovery after a crash, limits."""

import asyncio
from pathlib import Path

import pytest

from ingest.spool import Spool, SpooledRecord, SpoolFull, encode
from voicepulse.errors import ConfigError


def _spool(directory: Path, *, max_bytes: int = 10**8, segment_bytes: int = 10**6) -> Spool:
    spool = Spool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes)
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
