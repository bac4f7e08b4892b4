"""The envelope's own clock stamp."""

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicepulse.envelope import utc_now_iso

# From 1970 to 2100, in nanoseconds.
_INSTANTS = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)


@given(st.lists(_INSTANTS, min_size=1, max_size=5))
def test_utc_now_iso_writes_what_datetime_isoformat_writes(instants: list[int]) -> None:
    for nanoseconds in instants:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(time, "time_ns", lambda n=nanoseconds: n)
            stamp = utc_now_iso()
        seconds, rest = divmod(nanoseconds, 10**9)
        instant = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
        assert stamp == instant.isoformat(timespec="microseconds")


def test_utc_now_iso_follows_the_clock_across_a_second() -> None:
    with pytest.MonkeyPatch.context() as patch:
        stamps = []
        for nanoseconds in (1_764_201_599_999_999_999, 1_764_201_600_000_000_000):
            patch.setattr(time, "time_ns", lambda n=nanoseconds: n)
            stamps.append(utc_now_iso())
    assert stamps == ["2025-11-26T23:59:59.999999+00:00", "2025-11-27T00:00:00.000000+00:00"]
