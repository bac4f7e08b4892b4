"""A call ends by whichever source says so first: a terminal status callback, a terminal Call
resource or a complete Insights summary. Which source wins each field when several do
(docs/metrics.md, "A call's sources"), and the same call, row and bill in any arrival order."""

import random
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.pollers.envelopes import call_envelope, insights_envelope
from processors.engine import EngineConfig, Shard
from processors.processor import fact_envelope
from tests.processors.sources import PARENT, SUB, T0, callback
from voicepulse.envelope import Envelope
from voicepulse.messages import CALL_FACT_SCHEMA

CALLS = ["CA" + f"{n:032x}" for n in range(1, 4)]


def _resource(
    call: str, status: str = "completed", *, duration: int = 42, price: str = "-0.0130"
) -> Envelope:
    """The call's polled Call resource; it ended 50 s after T0 unless it is still open."""
    ended = status in ("completed", "busy", "no-answer", "failed", "canceled")
    raw = {
        "sid": call,
        "account_sid": SUB,
        "status": status,
        "direction": "outbound-api",
        "from": "+14155550100",
        "to": "+16285550100",
        "queue_time": "700",
        "duration": str(duration) if ended else None,
        "price": price if ended else None,
        "price_unit": "usd",
        "date_created": format_datetime(T0),
        "start_time": format_datetime(T0 + timedelta(seconds=8)),
        "end_time": format_datetime(T0 + timedelta(seconds=50)) if ended else None,
    }
    return call_envelope(raw, PARENT)


def _summary(
    call: str, state: str = "complete", *, call_state: str = "completed", **extra: Any
) -> Envelope:
    raw = {
        "call_sid": call,
        "account_sid": SUB,
        "processing_state": state,
        "call_type": "carrier",
        "call_state": call_state,
        "created_time": T0.isoformat(),
        "start_time": T0.isoformat(),
        "end_time": (T0 + timedelta(seconds=50)).isoformat(),
        "duration": 50,
        "properties": {"direction": "outbound_api", "queue_time": 900},
        "tags": [],
        **extra,
    }
    return insights_envelope(raw, PARENT)


def _callback(call: str, seq: int, status: str, offset: int, **extra: str) -> Envelope:
    return callback(
        seq, status, T0 + timedelta(seconds=offset), call=call, direction="outbound-api", **extra
    )


def _rows(shard: Shard) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {key: dict(shard.row(key)) for key in [*shard.windows, *shard.closed]}


def _total(shard: Shard, field: str) -> int:
    return sum(int(row[field]) for row in _rows(shard).values())


def test_a_call_known_only_from_its_call_resource_is_finished_at_once() -> None:
    shard = Shard(EngineConfig())
    shard.apply(_resource(CALLS[0], price=""))  # ended, not rated yet
    calls, _, _ = shard.take_changes()
    assert [c.version for c in calls] == [1]  # a fact now, not at the call timeout
    fact = shard.calls[CALLS[0]].fact()
    assert fact["status"] == "completed"
    assert fact["terminal"] is True
    assert fact["closed_by_timeout"] is False
    assert fact["answered"] is True
    assert fact["call_duration_s"] == 42
    assert fact["billed_minutes"] == 1
    assert fact["ended_at"] == (T0 + timedelta(seconds=50)).isoformat()
    shard.apply(_resource(CALLS[0]))  # the price follows
    calls, _, _ = shard.take_changes()
    assert [c.version for c in calls] == [2]
    assert shard.calls[CALLS[0]].fact()["cost"] == "0.0130"
    assert _total(shard, "attempts") == 1
    assert _total(shard, "completed") == 1
    assert _total(shard, "answered") == 1
    assert _total(shard, "talk_seconds") == 42
    assert _total(shard, "unknown") == 0


def test_a_complete_insights_summary_ends_the_call_and_says_if_it_was_answered() -> None:
    shard = Shard(EngineConfig())
    shard.apply(_summary(CALLS[0], "partial", call_state="ringing"))
    assert shard.calls[CALLS[0]].terminal is None  # a partial summary ends nothing
    shard.apply(_summary(CALLS[0], connect_duration=41))
    shard.apply(_summary(CALLS[1], answered_by="machine_start", connect_duration=0))
    shard.apply(_summary(CALLS[2], call_state="noanswer", connect_duration=0))
    facts = {sid: shard.calls[sid].fact() for sid in CALLS}
    assert [f["status"] for f in facts.values()] == ["completed", "completed", "no-answer"]
    assert [f["answered"] for f in facts.values()] == [True, True, False]
    assert facts[CALLS[0]]["call_duration_s"] == 41  # the connect duration, not the total
    assert _total(shard, "attempts") == 3
    assert _total(shard, "answered") == 2
    assert _total(shard, "no_answer") == 1


def test_the_terminal_callback_wins_the_status_the_resource_the_price_the_longest_duration() -> (
    None
):
    shard = Shard(EngineConfig())
    for envelope in [
        _resource(CALLS[0], duration=44),
        _callback(CALLS[0], 0, "initiated", 0),
        _callback(CALLS[0], 3, "completed", 49, CallDuration="40", SipResponseCode="200"),
        _summary(CALLS[0], connect_duration=43),
    ]:
        shard.apply(envelope)
    fact = shard.calls[CALLS[0]].fact()
    assert fact["status"] == "completed"
    assert fact["ended_at"] == (T0 + timedelta(seconds=49)).isoformat()  # the callback's
    assert fact["call_duration_s"] == 44
    assert fact["sip_response_code"] == 200
    assert fact["cost"] == "0.0130"
    assert fact["queue_time_ms"] == 700  # the resource's, not the summary's 900
    # A callback that says busy wins over a resource that says completed.
    shard.apply(_resource(CALLS[1]))
    shard.apply(_callback(CALLS[1], 2, "busy", 20))
    assert shard.calls[CALLS[1]].fact()["status"] == "busy"
    assert shard.calls[CALLS[1]].fact()["answered"] is False
    assert _total(shard, "attempts") == 2
    assert _total(shard, "busy") == 1


def test_a_terminal_status_never_goes_back_to_open() -> None:
    shard = Shard(EngineConfig())
    shard.apply(_resource(CALLS[0], "canceled"))
    shard.apply(_resource(CALLS[0], "queued"))  # an earlier view read later
    shard.apply(_callback(CALLS[0], 1, "ringing", 2))
    assert shard.calls[CALLS[0]].fact()["status"] == "canceled"


def _events(call: str, sources: str, duration: int) -> list[Envelope]:
    out: list[Envelope] = []
    if "c" in sources:
        out += [
            _callback(call, 0, "initiated", 0),
            _callback(call, 1, "ringing", 2),
            _callback(call, 2, "in-progress", 8),
            _callback(call, 3, "completed", 50, CallDuration=str(duration)),
        ]
    if "t" in sources:  # the terminal callback only
        out.append(_callback(call, 3, "completed", 50, CallDuration=str(duration)))
    if "r" in sources:
        out += [_resource(call, "in-progress"), _resource(call, duration=duration, price="")]
        out.append(_resource(call, duration=duration))
    if "i" in sources:
        out += [_summary(call, "partial", call_state="answered")]
        out.append(_summary(call, connect_duration=duration))
    return out


def _outcome(events: list[Envelope]) -> tuple[dict[str, Any], Any]:
    shard = Shard(EngineConfig())
    terminal: set[str] = set()
    for envelope in events:
        shard.apply(envelope)
        for sid, call in shard.calls.items():
            assert sid not in terminal or call.terminal is not None  # never back to open
            if call.terminal is not None:
                terminal.add(sid)
    facts = {}
    for sid, call in shard.calls.items():
        fact = call.fact()
        del fact["version"], fact["opened_at"]  # how many changes it took depends on the order
        facts[sid] = fact
    return facts, _rows(shard)


@settings(max_examples=60, deadline=None)
@given(
    sources=st.lists(st.sampled_from(["c", "t", "r", "i", "cr", "ci", "ri", "cri", "tri"])),
    durations=st.lists(st.integers(0, 300), min_size=3, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_arrival_order_with_duplicates_gives_the_same_calls_and_rows(
    sources: list[str], durations: list[int], seed: int
) -> None:
    events = [
        envelope
        for call, how, duration in zip(CALLS, sources, durations, strict=False)
        for envelope in _events(call, how, duration)
    ]
    rng = random.Random(seed)
    shuffled = events + rng.sample(events, len(events) // 3)  # with duplicates
    rng.shuffle(shuffled)
    facts, rows = _outcome(events)
    assert _outcome(shuffled) == (facts, rows)
    ended = len(facts)
    assert sum(int(r["attempts"]) for r in rows.values()) == ended  # each call counted once
    assert sum(int(r["completed"]) for r in rows.values()) == ended
    assert all(f["status"] == "completed" and not f["closed_by_timeout"] for f in facts.values())
    billed = sum(int(f["billed_minutes"] or 0) for f in facts.values())
    assert billed == sum(-(-d // 60) for d in durations[:ended] if d > 0)


def test_a_late_price_after_the_horizon_gives_a_fact_at_once() -> None:
    """A call forgotten past the dedupe horizon, then its rated Call resource: the new state is
    finished by it and gives its fact now, not when the call timeout would close it."""
    shard = Shard(EngineConfig())
    shard.apply(_callback(CALLS[0], 0, "initiated", 0))
    shard.apply(_callback(CALLS[0], 3, "completed", 50, CallDuration="42"))
    shard.take_changes()
    end = int((T0 + timedelta(seconds=50)).timestamp())
    shard.advance(end + shard.config.horizon_s + 600)
    assert CALLS[0] not in shard.calls  # forgotten
    shard.apply(_resource(CALLS[0]))
    calls, _, _ = shard.take_changes()
    assert [(c.call_sid, c.version) for c in calls] == [(CALLS[0], 1)]
    fact = calls[0].fact()
    assert (fact["status"], fact["cost"], fact["call_duration_s"]) == ("completed", "0.0130", 42)
    assert fact["opened_at"] > (T0 + timedelta(seconds=50)).isoformat()


def test_fact_ids_are_unique_across_a_calls_states() -> None:
    shard = Shard(EngineConfig())
    shard.apply(_callback(CALLS[0], 3, "completed", 50, CallDuration="42"))
    first, _, _ = shard.take_changes()
    ids = [fact_envelope(c).id for c in first]
    shard.advance(int(T0.timestamp()) + shard.config.horizon_s + 900)
    shard.apply(_resource(CALLS[0]))  # a new state, its versions from 1 again
    again, _, _ = shard.take_changes()
    ids += [fact_envelope(c).id for c in again]
    assert [c.version for c in [*first, *again]] == [1, 1]
    assert len(set(ids)) == 2
    assert ids[1] == f"{CALLS[0]}:{again[0].opened_at}:1"
    assert {fact_envelope(c).schema for c in [*first, *again]} == {CALL_FACT_SCHEMA}
    assert Envelope.from_json(fact_envelope(again[0]).to_json()).schema == 2
