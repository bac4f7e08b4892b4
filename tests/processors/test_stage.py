"""The processor stage on the in-process bus: idle windows close on the wall clock, events
after the grace count as late on the row and still reach the call facts, bad input is
dead-lettered."""

import logging
import time
from typing import Any

import pytest

from processors.engine import EngineConfig
from processors.processor import Output, Processor
from processors.stage import INPUT_TOPICS, processor_stage
from voicepulse import topics
from voicepulse.bus.memory import InProcessBus
from voicepulse.envelope import Envelope

SUB = "AC" + "2" * 32


def _terminal(call: str, at: int) -> Envelope:
    return Envelope(
        id=f"{call}:1",
        type="call-status",
        account_sid=SUB,
        source="test",
        fields={
            "call_sid": call,
            "call_status": "completed",
            "direction": "outbound-api",
            "from": "+14155550100",
            "sequence_number": 1,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at)),
            "call_duration": 40,
        },
    )


def _latest(bus: InProcessBus, topic: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for record in bus.records(topic):
        envelope = Envelope.from_json(record.value)
        out[envelope.id] = dict(envelope.fields)
    return out


async def test_idle_window_closes_on_the_wall_clock_and_late_events_are_counted() -> None:
    bus = InProcessBus()
    await bus.start()
    now = int(time.time())
    at = (now - 60) // 60 * 60  # a window starting a minute or two ago...
    grace = now + 3 - 60 - at  # ...still open at first, closed by the clock 3 s from now
    stage, handler = processor_stage(bus, EngineConfig(grace_s=grace), wall_clock_lag_s=0)
    await stage.start()
    try:
        await bus.publish(topics.CALL_STATUS, SUB.encode(), _terminal("CA1", at).to_json())
        await stage.drain(5)
        shard = handler.processor.shards[0]
        assert len(shard.windows) == 1  # open: in time
        deadline = time.monotonic() + 10
        while shard.windows and time.monotonic() < deadline:
            await stage.drain(1)
        assert not shard.windows  # closed without any later event
        assert len(shard.closed) == 1
        await bus.publish(topics.CALL_STATUS, SUB.encode(), _terminal("CA2", at).to_json())
        await bus.publish(topics.CALL_STATUS, SUB.encode(), b"not json")
        await stage.drain(5)
    finally:
        await stage.stop()
        await bus.stop()
    (row,) = [r for r in _latest(bus, topics.HEALTH).values() if r["direction_group"] == "outbound"]
    assert (row["attempts"], row["answered"], row["late_events"]) == (1, 1, 1)
    facts = {f["call_sid"]: f for f in _latest(bus, topics.CALLS).values()}
    assert facts["CA2"]["status"] == "completed"
    assert facts["CA2"]["late"] is True
    assert facts["CA1"]["late"] is False
    assert len(bus.records(topics.DEAD_LETTER)) == 1
    assert INPUT_TOPICS[0] == topics.CALL_STATUS


def test_an_event_later_than_the_horizon_leaves_its_window_row_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A window whose row is no longer held (closed longer than the horizon ago) is not
    rebuilt from nothing for a very late event: such a row, all zeros but the late count,
    would replace the real one in the warehouse. The event still reaches its call fact."""
    config = EngineConfig(grace_s=120, horizon_s=600)
    processor = Processor(config)
    at = (int(time.time()) - 3600) // 60 * 60
    shard = processor.shard(0)
    shard.apply(_terminal("CA1", at + 5))
    first = processor.drain(Output())
    (row,) = [r for r in first.rows if r.fields["direction_group"] == "outbound"]
    assert row.fields["attempts"] == 1
    processor.tick(at + 60 + 120 + 600 + 1)  # closed, then forgotten
    processor.drain(Output())
    shard.apply(_terminal("CA2", at + 7))  # an hour late
    with caplog.at_level(logging.WARNING, logger="processors.processor"):
        out = processor.drain(Output())
    assert processor.forgotten_late == 1
    assert "1 late events were for windows closed more than the horizon" in caplog.text
    assert [
        r.fields for r in out.rows if r.fields["window_start"] == row.fields["window_start"]
    ] == []
    (fact,) = out.facts
    assert (fact.fields["call_sid"], fact.fields["status"], fact.fields["late"]) == (
        "CA2",
        "completed",
        True,
    )
