"""Two subaccounts' calls in one window, run through the processor until the window closes and a
late event follows: the health rows it publishes at each step."""

from dataclasses import dataclass
from datetime import timedelta

from processors.engine import EngineConfig
from processors.processor import Output, Processor
from tests.processors.sources import CALL, SUB, T0, callback
from voicepulse.envelope import Envelope

OTHER = "AC" + "6" * 32
"""A second subaccount, in a shard of its own."""

GRACE_S = 120
WINDOW_START = T0.replace(second=0)
CLOSES_AT = WINDOW_START + timedelta(seconds=60 + GRACE_S)


@dataclass(frozen=True, slots=True)
class Steps:
    """The rows published at each step: while open, at the close of one subaccount's shard, at
    the other's, and after a late event."""

    interim: list[Envelope]
    first_closed: list[Envelope]
    second_closed: list[Envelope]
    late: list[Envelope]


def call_events(call: str, account: str) -> list[Envelope]:
    """A call of ``account`` created at T0 and completed 50 s later (42 s answered)."""
    return [
        callback(0, "initiated", T0, call=call, AccountSid=account),
        callback(
            1,
            "completed",
            T0 + timedelta(seconds=50),
            call=call,
            AccountSid=account,
            CallDuration="42",
        ),
    ]


def run() -> Steps:
    """Both calls, then each shard's stream time past the close, then a late call of ``SUB``."""
    processor = Processor(EngineConfig(grace_s=GRACE_S))
    interim = processor.apply_envelopes(call_events(CALL, SUB), 0).rows
    interim += processor.apply_envelopes(call_events("CA" + "7" * 32, OTHER), 1).rows
    interim = _as_sent(interim)
    closes = int(CLOSES_AT.timestamp())
    processor.shard(0).advance(closes)
    first_closed = _as_sent(processor.drain(Output()).rows)
    processor.shard(1).advance(closes)
    second_closed = _as_sent(processor.drain(Output()).rows)
    late = _as_sent(processor.apply_envelopes(call_events("CA" + "8" * 32, SUB), 0).rows)
    return Steps(interim, first_closed, second_closed, late)


def _as_sent(rows: list[Envelope]) -> list[Envelope]:
    # A closed row's fields are the shard's own dict, which a later late event updates in place:
    # the rows as they went out are their encoding at the time.
    return [Envelope.from_json(row.to_json()) for row in rows]
