"""Bounded event time: one subaccount's clock never moves another's windows.

An event stamped more than the tolerance after it was received counts at its receive time and
flags its call; a shard restored with a stream time from the future is brought back.
"""

import logging
import random
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.engine import EngineConfig, Shard
from processors.processor import Output, Processor
from processors.state import META_KEY, changed_entries, restore_entry
from processors.vocabulary import epoch, receipt_epoch
from simulator import envelopes, generate
from tests.processors.sources import SUB, callback
from tests.processors.streams import normalise, tenants
from voicepulse.envelope import Envelope

START = int(datetime(2026, 11, 26, 10, 0, tzinfo=UTC).timestamp())
NOW = START + 3600
CONFIG = EngineConfig(
    grace_s=120, call_timeout_s=600, horizon_s=900, future_tolerance_s=30, clock=lambda: NOW
)
ODD = "AC" + "9" * 32
YEAR_2100 = datetime(2100, 1, 1, tzinfo=UTC)


def _iso(epoch_s: int, micros: int = 0) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).replace(microsecond=micros).isoformat()


def _received(envelope: Envelope, at: int) -> Envelope:
    """The envelope as the receiver would have stamped it at ``at``."""
    return msgspec.structs.replace(envelope, received_at=_iso(at, 123456))


def _rows(shard: Shard, account: str | None = None) -> dict[tuple[str, str, int], dict[str, Any]]:
    _, rows, _ = shard.take_changes()
    return {k: normalise(row) for k, row in rows if account is None or k[0] == account}


def test_an_event_from_the_future_counts_at_its_receipt_and_flags_its_call() -> None:
    received = START + 300
    shard = Shard(CONFIG)
    for seq, status in enumerate(["initiated", "ringing", "in-progress", "completed"]):
        odd = callback(seq, status, YEAR_2100, call="CA" + "8" * 32, CallDuration="30")
        shard.apply(_received(msgspec.structs.replace(odd, account_sid=ODD), received))
    assert shard.stream_time == received
    (call,) = shard.calls.values()
    fact = call.fact()
    assert fact["timestamp_in_future"] is True
    assert fact["ended_at"] == fact["created_at"] == _iso(received)
    _, rows, _ = shard.take_changes()
    assert [(k[2], row["attempts"], row["answered"]) for k, row in rows] == [
        (received - received % 60, 1, 1)
    ]


def test_an_event_within_the_tolerance_is_taken_as_stamped() -> None:
    received = START + 300
    shard = Shard(CONFIG)
    at = datetime.fromtimestamp(received + 30, UTC)
    shard.apply(_received(callback(3, "completed", at, CallDuration="5"), received))
    assert shard.stream_time == received + 30
    assert shard.calls[next(iter(shard.calls))].fact()["timestamp_in_future"] is False


def test_without_a_receive_time_the_wall_clock_bounds_it() -> None:
    shard = Shard(CONFIG)
    envelope = callback(3, "completed", YEAR_2100, CallDuration="5")
    shard.apply_doc({**envelope.fields, "id": envelope.id, "type": envelope.type,
                     "account_sid": SUB})  # fmt: skip
    assert shard.stream_time == NOW
    assert shard.calls[next(iter(shard.calls))].timestamp_in_future


def test_a_restored_stream_time_from_the_future_is_brought_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = Shard(EngineConfig(future_tolerance_s=10**10))  # as before the bound
    broken.apply(_received(callback(0, "initiated", YEAR_2100), START))
    log = dict(changed_entries(broken, list(broken.calls.values()), []))
    assert b"stream_time" in (log[META_KEY] or b"")

    restored = Shard(CONFIG)
    for key, value in log.items():
        restore_entry(restored, key, value)
    assert restored.stream_time == int(YEAR_2100.timestamp())
    with caplog.at_level(logging.WARNING, logger="processors.engine"):
        restored.restored()
    assert restored.stream_time == NOW
    assert "brought back" in caplog.text
    # The present counts again: a call of now is in its window, not late.
    at = datetime.fromtimestamp(NOW, UTC)
    restored.apply(_received(callback(1, "completed", at, call="CA" + "7" * 32), NOW))
    row = next(row for k, row in restored.take_changes()[1] if k[2] == NOW - NOW % 60)
    assert (row["attempts"], row["late_events"]) == (1, 0)


# Timestamps one subaccount might send: none, garbage, the past, the near and far future.
_OFFSETS = st.one_of(
    st.integers(-(10**9), -3600),
    st.integers(-300, 300),
    st.integers(31, 10**9),
    st.sampled_from([30, 31, 10**10]),
)
_STAMPS = st.one_of(
    st.none(),
    st.sampled_from(["", "not a time", "Fri, 01 Jan 2100 00:00:00 GMT"]),
    _OFFSETS,
)


@st.composite
def _odd_events(draw: st.DrawFn) -> list[tuple[int, str, str, Any]]:
    """(position, kind, status, stamp) of one subaccount's events, in delivery order."""
    events = draw(
        st.lists(
            st.tuples(
                st.integers(0, 10**6),
                st.sampled_from(["call-status", "call-status", "debugger-event"]),
                st.sampled_from(["initiated", "ringing", "in-progress", "completed", "busy"]),
                _STAMPS,
            ),
            max_size=25,
        )
    )
    return sorted(events, key=lambda e: e[0])


def _odd_envelope(index: int, kind: str, status: str, stamp: Any, received: int) -> Envelope:
    if isinstance(stamp, int):
        stamp = _iso(max(received + stamp, 0))
    call = f"CA{index % 4:032d}"
    if kind == "debugger-event":
        fields: dict[str, Any] = {"sid": f"NO{index:032d}", "level": "error",
                                  "error_code": "32001", "resource_sid": call}  # fmt: skip
    else:
        fields = {"call_sid": call, "call_status": status, "direction": "outbound-api",
                  "sequence_number": index, "call_duration": 20}  # fmt: skip
    fields["timestamp"] = stamp
    return Envelope(
        id=f"{ODD}:{index}",
        type=kind,
        account_sid=ODD,
        source="test",
        fields=fields,
        received_at=_iso(received, 654321),
    )


def _run(delivered: list[Envelope]) -> dict[tuple[str, str, int], dict[str, Any]]:
    processor = Processor(CONFIG)
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for start in range(0, len(delivered), 40):
        for envelope in delivered[start : start + 40]:
            processor.shard(0).apply(envelope)
        for row in processor.drain(Output()).rows:
            rows[(row.account_sid, row.fields["direction_group"], row.fields["window_start"])] = (
                normalise(dict(row.fields))
            )
    processor.tick(2**40)
    for row in processor.drain(Output()).rows:
        rows[(row.account_sid, row.fields["direction_group"], row.fields["window_start"])] = (
            normalise(dict(row.fields))
        )
    return rows


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), odd=_odd_events())
def test_one_subaccounts_timestamps_never_change_anothers_rows(
    seed: int, odd: list[tuple[int, str, str, Any]]
) -> None:
    """Other subaccounts' events, each received up to the grace less the tolerance after it
    happened, count exactly as without the odd one's events (whatever those are stamped:
    stream time runs at most the tolerance ahead of the latest receipt)."""
    rng = random.Random(seed)
    traffic = generate(rng, tenants(rng, [0, 3, 5]), START, 120)
    arrivals = []
    for envelope in envelopes(traffic):
        at = epoch(envelope.fields.get("timestamp") or envelope.fields.get("date_created"))
        assert at is not None
        received = at + rng.randint(0, CONFIG.grace_s - CONFIG.future_tolerance_s)
        arrivals.append((received, rng.random(), _received(envelope, received)))
    arrivals.sort(key=lambda a: (a[0], a[1]))
    others = [envelope for _, _, envelope in arrivals]
    mixed = list(others)
    for index, (position, kind, status, stamp) in enumerate(reversed(odd)):
        at = position * len(others) // 10**6
        received = arrivals[min(at, len(arrivals) - 1)][0]
        mixed.insert(at, _odd_envelope(index, kind, status, stamp, received))
    alone = _run(others)
    together = {k: row for k, row in _run(mixed).items() if k[0] not in (ODD, "ISV")}
    assert together == {k: row for k, row in alone.items() if k[0] != "ISV"}


def _receiver_form(value: str) -> bool:
    return len(value) == 32 and value[19] == "." and value.endswith("+00:00")


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2099, 12, 31, 23, 59, 59, 999999),
            timezones=st.just(UTC),
        ).map(lambda d: d.isoformat(timespec="microseconds")),
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat(timespec="microseconds")),
        st.text(max_size=34).filter(lambda v: not _receiver_form(v)),
        st.none(),
    )
)
def test_receipt_epoch_reads_received_at_as_epoch_does(value: str | None) -> None:
    """For the receiver's own form (utc_now_iso) and anything not of its shape."""
    assert receipt_epoch(value) == epoch(value)
