"""The processor without I/O: records in, call facts and health rows out, per shard.

Records are routed to a :class:`~processors.engine.Shard` by partition number. A shard remembers
the next offset it expects per input topic, so a record it has already applied (a replay after a
crash, when the shard was restored from a changelog that already holds that record's effect) is
skipped rather than applied twice.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from processors.calls import CallState
from processors.engine import EngineConfig, Shard
from processors.state import changed_entries
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.types import Record

__all__ = ["Output", "Processor", "decode", "fact_envelope", "row_envelope"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Output:
    """What one batch made: envelopes to publish, changelog entries per shard, rejects."""

    facts: list[Envelope] = field(default_factory=list)
    rows: list[Envelope] = field(default_factory=list)
    changelog: dict[int, list[tuple[str, bytes | None]]] = field(default_factory=dict)
    rejected: list[tuple[Record, str]] = field(default_factory=list)


def fact_envelope(call: CallState) -> Envelope:
    """A ``voicepulse.calls`` envelope; id ``CallSid:version``."""
    return Envelope(
        id=f"{call.call_sid}:{call.version}",
        type="call-fact",
        account_sid=call.account_sid,
        parent_account_sid=call.parent_account_sid,
        source="processors.calls",
        fields=call.fact(),
    )


def row_envelope(account_sid: str, fields: dict[str, object]) -> Envelope:
    """A ``voicepulse.health`` envelope; id ``account_sid:direction_group:window_start``."""
    return Envelope(
        id=f"{account_sid}:{fields['direction_group']}:{fields['window_start']}",
        type="health-minute",
        account_sid=account_sid,
        source="processors.health",
        fields=fields,
    )


def decode(data: bytes) -> dict[str, Any]:
    """An envelope's JSON as one flat dict (header and fields), checked for what the processor
    relies on; :class:`BadMessage` otherwise. Cheaper than :meth:`Envelope.from_json`."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadMessage("not a JSON object")
    for name in ("id", "type", "account_sid"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise BadMessage(f"envelope field {name!r} missing or not a string")
    return doc


class Processor:
    """Shards of call and window state, fed with records, drained into :class:`Output`."""

    def __init__(self, config: EngineConfig, *, changelog: bool = False) -> None:
        self.config = config
        self.shards: dict[int, Shard] = {}
        self._changelog = changelog

    def shard(self, partition: int) -> Shard:
        shard = self.shards.get(partition)
        if shard is None:
            shard = self.shards[partition] = Shard(self.config)
        return shard

    def feed(self, records: Iterable[Record], out: Output) -> None:
        """Apply records; undecodable or unusable ones go to ``out.rejected`` with the reason."""
        for record in records:
            shard = self.shard(record.partition)
            if record.offset < shard.offsets.get(record.topic, 0):
                continue  # already in the restored state
            shard.offsets[record.topic] = record.offset + 1
            try:
                shard.apply_doc(decode(record.value))
            except BadMessage as exc:
                out.rejected.append((record, str(exc)))

    def tick(self, now: int) -> None:
        """Let every shard's stream time reach ``now`` (the wall clock, for idle windows)."""
        for shard in self.shards.values():
            shard.advance(now)

    def drain(self, out: Output) -> Output:
        """Collect what changed into ``out``: new fact versions, changed rows, changelog."""
        for partition in sorted(self.shards):
            shard = self.shards[partition]
            calls, rows, dirty = shard.take_changes()
            out.facts.extend(fact_envelope(call) for call in calls)
            out.rows.extend(row_envelope(key[0], row) for key, row in rows)
            windows = [key for key, _ in rows]
            if self._changelog and (
                dirty or windows or shard.evicted_calls or shard.evicted_windows
            ):
                out.changelog[partition] = changed_entries(shard, dirty, windows)
        return out

    def apply_envelopes(self, envelopes: Sequence[Envelope], partition: int = 0) -> Output:
        """Apply envelopes directly (tests, benchmarks); returns what changed."""
        shard = self.shard(partition)
        out = Output()
        for envelope in envelopes:
            shard.apply(envelope)
        return self.drain(out)
