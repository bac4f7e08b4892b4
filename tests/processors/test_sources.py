"""One call seen through every source, built by the ingest side's own envelope functions:
status callbacks, a polled Call resource with a late price, Insights summaries (partial, then
complete) and a debugger 32001 event; and the vocabularies they are normalised with."""

from datetime import timedelta

import msgspec

from processors import vocabulary as vocab
from processors.engine import EngineConfig, Shard
from processors.state import changed_entries, restore_entry
from tests.processors.sources import CALL, T0, callback, debugger, resource, summary
from voicepulse.envelope import Envelope


def _callback(seq: int, status: str, offset: int, **extra: str) -> Envelope:
    return callback(seq, status, T0 + timedelta(seconds=offset), **extra)


def _resource(price: str) -> Envelope:
    return resource(price)


def _summary(state: str) -> Envelope:
    return summary(state, created=T0 - timedelta(seconds=2), queue_time=2500)


def test_every_source_merges_into_one_call_and_its_windows() -> None:
    shard = Shard(EngineConfig())
    versions = []
    for envelope in [
        _callback(0, "initiated", 0),
        _callback(1, "ringing", 1),
        _callback(2, "in-progress", 8),
        _callback(3, "completed", 50, CallDuration="42", SipResponseCode="200"),
        _resource(""),  # not rated yet
        _resource("-0.0130"),  # the price arrives later
        _summary("partial"),
        _summary("complete"),
        debugger(),
        _callback(1, "ringing", 1),  # a duplicate changes nothing
    ]:
        shard.apply(envelope)
        calls, _, _ = shard.take_changes()
        versions.append([c.version for c in calls])
    fact = shard.calls[CALL].fact()
    # new versions: terminal, the resource (trunk, price unit), its price, the partial summary
    # (queue time), the complete summary, the rejection
    assert versions == [[], [], [], [1], [2], [3], [4], [5], [6], []]
    assert fact["status"] == "completed"
    assert fact["answered"] is True
    assert fact["cost"] == "0.0130"
    assert fact["price_unit"] == "USD"
    assert fact["queue_time_ms"] == 2500  # the resource has none: the summary's
    assert fact["pdd_ms"] == 1800
    assert fact["insights_state"] == "complete"
    assert fact["direction"] == "trunking-terminating"
    assert fact["trunk_cps_rejection"] is True
    assert fact["billed_minutes"] == 1
    assert fact["created_at"] == T0.isoformat()  # the resource's date_created wins
    (row,) = [shard.row(k) for k in shard.windows if k[1] == "outbound"]
    assert row["attempts"] == 1
    assert row["answered"] == 1
    assert row["talk_seconds"] == 42
    assert row["trunk_cps_rejections"] == 1
    assert row["debugger_errors"] == {"32001": 1}
    assert row["queue_time_max_ms"] == 2500
    assert row["calls_created"] == 1


def test_vocabularies_are_normalised_in_one_place() -> None:
    assert [vocab.insights_state(s) for s in ("fail", "noanswer", "undialed", "answered")] == [
        "failed",
        "no-answer",
        "failed",
        "in-progress",
    ]
    assert vocab.direction("outbound_api") == "outbound-api"
    assert vocab.direction_group("trunking-terminating") == "outbound"
    assert vocab.direction_group("inbound") == "inbound"
    assert vocab.call_resource_status("no_answer") == "no-answer"
    assert [
        vocab.attestation(v)
        for v in (
            "TN-Validation-Passed-A",
            "TN-Validation-Passed-B-Diverted",
            "TN-Validation-Failed-C",
            "No-TN-Validation",
            None,
        )
    ] == ["A", "B", "failed", "none", "none"]


CONFIG = EngineConfig(grace_s=120, call_timeout_s=600, horizon_s=900)


def _timeless_summary() -> Envelope:
    summary = _summary("partial")
    times = ("created_time", "start_time", "end_time")
    return msgspec.structs.replace(
        summary, fields={k: v for k, v in summary.fields.items() if k not in times}
    )


def test_a_call_without_a_usable_time_is_forgotten_after_the_horizon() -> None:
    """An Insights summary with no time names a call that belongs to no window: it is never
    closed as unknown nor counted, and its state is dropped the horizon after it was heard of
    (it used to stay forever)."""
    shard = Shard(CONFIG)
    start = int(T0.timestamp())
    shard.advance(start)
    shard.apply(_timeless_summary())
    assert CALL in shard.calls
    shard.advance(start + CONFIG.horizon_s - 1)
    assert CALL in shard.calls
    shard.advance(start + CONFIG.horizon_s)
    assert CALL not in shard.calls
    assert not shard.windows
    assert not shard.closed
    assert not shard.changed_calls


def test_a_timeless_call_that_learns_its_time_times_out_from_it() -> None:
    """A call first known from a summary with no time, then from a callback with one: it is
    closed as unknown the call timeout after that callback, as if the callback came first."""
    shard = Shard(CONFIG)
    start = int(T0.timestamp())
    shard.advance(start)
    shard.apply(_timeless_summary())
    shard.apply(_callback(1, "ringing", 0))
    shard.advance(start + CONFIG.call_timeout_s)
    assert shard.calls[CALL].closed_at == start + CONFIG.call_timeout_s


def _late_events(shard: Shard) -> int:
    return sum(row["late_events"] for row in shard.closed.values())


def _restored(shard: Shard) -> Shard:
    """A shard rebuilt from ``shard``'s changelog entries, as after a crash."""
    entries = changed_entries(shard, list(shard.calls.values()), [*shard.windows, *shard.closed])
    restored = Shard(CONFIG)
    for key, value in entries:
        restore_entry(restored, key, value)
    restored.rebuild_timers()
    return restored


def test_a_debugger_event_duplicated_after_the_grace_counts_once() -> None:
    """An event counted on time and its copies after the grace change nothing; a late event
    counts late once however often it comes, also in a shard restored from its changelog."""
    shard = Shard(CONFIG)
    start = int(T0.timestamp())
    shard.advance(start)
    shard.apply(debugger())
    shard.advance(start + 60 + CONFIG.grace_s)  # the window closes
    shard.apply(debugger())
    assert _late_events(shard) == 0
    late = msgspec.structs.replace(debugger(), id="NO" + "7" * 32)
    late = msgspec.structs.replace(late, fields={**late.fields, "sid": late.id})
    shard.apply(late)
    shard.apply(late)
    assert _late_events(shard) == 1
    restored = _restored(shard)
    restored.apply(late)
    restored.apply(debugger())
    assert _late_events(restored) == 1
