"""The processor without I/O: records in, call facts and health rows out, per shard.

Records are routed to a :class:`~processors.engine.Shard` by partition number. A shard remembers
the next offset it expects per input topic, so a record it has already applied (a replay after a
crash, when the shard was restored from a changelog that already holds that record's effect) is
skipped rather than applied twice.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import orjson

from processors.calls import Callback, CallState
from processors.engine import EngineConfig, Shard
from processors.state import changed_entries
from voicepulse.envelope import Envelope, utc_now_iso
from voicepulse.errors import BadMessage
from voicepulse.messages import CALL_FACT_SCHEMA
from voicepulse.types import Record

__all__ = ["Output", "Processor", "decode", "fact_envelope", "row_envelope"]

logger = logging.getLogger(__name__)

_FORGOTTEN_LOG_EVERY_S: Final = 60.0


@dataclass(slots=True)
class Output:
    """What one batch made: envelopes to publish, changelog entries per shard, rejects."""

    facts: list[Envelope] = field(default_factory=list)
    rows: list[Envelope] = field(default_factory=list)
    changelog: dict[int, list[tuple[str, bytes | None]]] = field(default_factory=dict)
    rejected: list[tuple[Record, str]] = field(default_factory=list)


def fact_envelope(call: CallState, received_at: str | None = None) -> Envelope:
    """A ``voicepulse.calls`` envelope; id ``CallSid:opened_at:version`` (``opened_at`` in
    epoch seconds: versions count from 1 again in a state reopened past the dedupe horizon, so
    the id is unique across a call's states); ``received_at`` defaults to now (a batch passes
    one time for all its envelopes). Its ``schema`` is
    :data:`~voicepulse.messages.CALL_FACT_SCHEMA`: the id's form changed."""
    return Envelope(
        id=f"{call.call_sid}:{call.opened_at}:{call.version}",
        type="call-fact",
        schema=CALL_FACT_SCHEMA,
        account_sid=call.account_sid,
        parent_account_sid=call.parent_account_sid,
        source="processors.calls",
        fields=call.fact(),
        received_at=received_at or utc_now_iso(),
    )


def row_envelope(
    account_sid: str, fields: dict[str, object], received_at: str | None = None
) -> Envelope:
    """A ``voicepulse.health`` envelope; id ``account_sid:direction_group:window_start``;
    ``received_at`` defaults to now."""
    return Envelope(
        id=f"{account_sid}:{fields['direction_group']}:{fields['window_start']}",
        type="health-minute",
        account_sid=account_sid,
        source="processors.health",
        fields=fields,
        received_at=received_at or utc_now_iso(),
    )


def decode(data: bytes) -> dict[str, Any]:
    """An envelope's JSON as one flat dict (header and fields), checked for what the processor
    relies on; :class:`BadMessage` otherwise. Cheaper than :meth:`Envelope.from_json`."""
    try:
        doc = _loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from exc
    if type(doc) is not dict:
        raise BadMessage("not a JSON object")
    for name in _HEADER:
        value = doc.get(name)
        if type(value) is not str or not value:
            raise BadMessage(f"envelope field {name!r} missing or not a string")
    return doc


_loads = orjson.loads
_HEADER = ("id", "type", "account_sid")
_decode_callback = msgspec.json.Decoder(Callback).decode


class Processor:
    """Shards of call and window state, fed with records, drained into :class:`Output`."""

    def __init__(self, config: EngineConfig, *, changelog: bool = False) -> None:
        self.config = config
        self.shards: dict[int, Shard] = {}
        self._changelog = changelog
        self._clock: int | None = None
        self.forgotten_late = 0
        """Late events for windows older than the horizon, since start (see :meth:`drain`)."""
        self._forgotten_logged = 0
        self._forgotten_logged_at = -_FORGOTTEN_LOG_EVERY_S

    def shard(self, partition: int) -> Shard:
        shard = self.shards.get(partition)
        if shard is None:
            shard = self.shards[partition] = Shard(self.config)
            if self._clock is not None:  # a new shard starts at the clock the others reached
                shard.advance(self._clock)
        return shard

    def feed(self, records: Iterable[Record], out: Output) -> None:
        """Apply records; undecodable or unusable ones go to ``out.rejected`` with the reason."""
        partition = None
        shard = None
        decode_callback = _decode_callback
        for record in records:
            if record.partition != partition:
                partition = record.partition
                shard = self.shard(partition)
            assert shard is not None
            offsets = shard.offsets
            topic = record.topic
            offset = record.offset
            if offset < offsets.get(topic, 0):
                continue  # already in the restored state
            offsets[topic] = offset + 1
            value = record.value
            try:
                # A status callback is decoded straight into a Callback (skipping what the
                # processor does not read); anything else, or anything decode() should judge,
                # goes the general way.
                try:
                    callback = decode_callback(value)
                except msgspec.DecodeError:  # also a ValidationError: decode() gives the reason
                    shard.apply_doc(decode(value))
                    continue
                if callback.type == "call-status" and callback.id and callback.account_sid:
                    shard.apply_callback(callback)
                else:
                    shard.apply_doc(decode(value))
            except BadMessage as exc:
                out.rejected.append((record, str(exc)))

    def tick(self, now: int) -> None:
        """Let every shard's stream time reach ``now`` (the wall clock, for idle windows)."""
        self._clock = now if self._clock is None else max(self._clock, now)
        for shard in self.shards.values():
            shard.advance(now)

    def drain(self, out: Output) -> Output:
        """Collect what changed into ``out``: new fact versions, changed rows, changelog."""
        now = utc_now_iso()
        for partition in sorted(self.shards):
            shard = self.shards[partition]
            calls, rows, dirty = shard.take_changes()
            out.facts.extend(fact_envelope(call, now) for call in calls)
            out.rows.extend(row_envelope(key[0], row, now) for key, row in rows)
            windows = [key for key, _ in rows]
            if self._changelog and (
                dirty or windows or shard.evicted_calls or shard.evicted_windows
            ):
                out.changelog[partition] = changed_entries(shard, dirty, windows)
            if shard.forgotten_late:
                self.forgotten_late += shard.forgotten_late
                shard.forgotten_late = 0
        self._log_forgotten_late()
        return out

    def _log_forgotten_late(self) -> None:
        """Say how many late events no health row counted (at most once a minute)."""
        unlogged = self.forgotten_late - self._forgotten_logged
        now = time.monotonic()
        if not unlogged or now - self._forgotten_logged_at < _FORGOTTEN_LOG_EVERY_S:
            return
        logger.warning(
            "%d late events were for windows closed more than the horizon (%d s) ago: their "
            "call facts have them, no health row counts them (%d since start)",
            unlogged,
            self.config.horizon_s,
            self.forgotten_late,
        )
        self._forgotten_logged = self.forgotten_late
        self._forgotten_logged_at = now

    def apply_envelopes(self, envelopes: Sequence[Envelope], partition: int = 0) -> Output:
        """Apply envelopes directly (tests, benchmarks); returns what changed."""
        shard = self.shard(partition)
        out = Output()
        for envelope in envelopes:
            shard.apply(envelope)
        return self.drain(out)
