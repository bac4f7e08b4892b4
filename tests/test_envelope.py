"""The envelope's own clock stamp and its wire form."""

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicepulse.envelope import Envelope, utc_now_iso

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


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
# Field names include the header's: on the wire the field's value wins, as in a merged dict.
_NAMES = st.sampled_from(["id", "type", "raw", "source", "status", "from", "call_sid"]) | st.text(
    max_size=6
)


_HEADER = frozenset(
    {"id", "type", "schema", "account_sid", "parent_account_sid", "received_at", "source", "raw"}
)


@given(
    fields=st.dictionaries(_NAMES, _JSON, max_size=6),
    raw=st.none() | st.dictionaries(st.text(max_size=5), _JSON, max_size=3),
    parent=st.none() | st.text(min_size=1, max_size=4),
)
def test_to_json_is_the_header_then_the_fields_then_raw(
    fields: dict[str, Any], raw: dict[str, Any] | None, parent: str | None
) -> None:
    envelope = Envelope(
        "EV1", "call-fact", "AC1", "tests", fields, raw, parent, "2026-11-26T10:00:00+00:00"
    )
    merged: dict[str, Any] = {
        "id": "EV1",
        "type": "call-fact",
        "schema": envelope.schema,
        "account_sid": "AC1",
        "parent_account_sid": parent,
        "received_at": "2026-11-26T10:00:00+00:00",
        "source": "tests",
        **fields,
    }
    if raw is not None:
        merged["raw"] = raw
    assert envelope.to_json() == orjson.dumps(merged)
    if not set(fields) & _HEADER:
        assert Envelope.from_json(envelope.to_json()) == envelope
