"""The ISV aggregate: every subaccount's rows of a window merged into one ``ISV`` row.

It reads ``voicepulse.health`` whole (its own consumer group per process, from the beginning),
keeps the latest row per (subaccount, direction group, window), and publishes the merge for each
window that changed. Each subaccount row carries its window's full state and the merge rules are
in :class:`voicepulse.messages.HealthWindow`, so the ISV row is a function of the latest
subaccount rows: replays, restarts and several processes publishing it all converge to the
same row. Windows older than the horizon (by window start, against the newest seen) are dropped.

An ISV row is ``closed`` once every subaccount row it merges is: each shard closes its windows
by its own stream time, so the ISV row of a window is closed when the last of them has. A
subaccount none of whose rows for the window has been read yet is not waited for (it is not
known): its row, when it comes, changes the ISV row like a late event would.
"""

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from processors.processor import row_envelope
from processors.windows import merge_rows
from voicepulse import topics
from voicepulse.deadletter import dead_letter
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.messages import ISV_ACCOUNT, HealthSums
from voicepulse.types import Bus, Record

__all__ = ["IsvAggregator", "IsvHandler", "isv_group"]

logger = logging.getLogger(__name__)

_Key = tuple[str, str]  # (direction group, window_start)
# A row merges if it has every sum (the ISV row's CPS limit is its own).
_REQUIRED = HealthSums.__required_keys__ - {"cps_limit"}


def isv_group() -> str:
    """A consumer group of its own for this process: the aggregate needs every partition."""
    return f"voicepulse-isv-{uuid.uuid4().hex[:12]}"


class IsvAggregator:
    """The latest subaccount rows per window and their merge; free of I/O."""

    def __init__(self, cps_limit: float, horizon_windows: int = 120) -> None:
        self._cps_limit = cps_limit
        self._horizon = horizon_windows
        self._rows: dict[_Key, dict[str, dict[str, Any]]] = {}

    def add(self, envelope: Envelope) -> _Key | None:
        """Take one health row; the window whose aggregate changed, if any."""
        if envelope.account_sid == ISV_ACCOUNT:
            return None
        fields = dict(envelope.fields)
        missing = _REQUIRED - fields.keys()
        if missing:
            raise BadMessage(f"a health row without {', '.join(sorted(missing))}")
        key = (str(fields.get("direction_group")), str(fields.get("window_start")))
        rows = self._rows.setdefault(key, {})
        if rows.get(envelope.account_sid) == fields:
            return None
        rows[envelope.account_sid] = fields
        return key

    def row(self, key: _Key) -> Envelope:
        merged = merge_rows(list(self._rows[key].values()), self._cps_limit)
        return row_envelope(ISV_ACCOUNT, dict(merged))

    def evict(self) -> None:
        starts = sorted({start for _, start in self._rows})
        if len(starts) <= self._horizon:
            return
        cutoff = starts[-self._horizon]
        for key in [k for k in self._rows if k[1] < cutoff]:
            del self._rows[key]


class IsvHandler:
    """A :class:`voicepulse.stage.Handler` over ``voicepulse.health`` publishing ISV rows."""

    name = "isv"

    def __init__(self, bus: Bus, cps_limit: float) -> None:
        self._bus = bus
        self.aggregator = IsvAggregator(cps_limit)

    async def handle(self, records: Sequence[Record]) -> bool:
        changed: dict[_Key, None] = {}
        for record in records:
            try:
                envelope = Envelope.from_json(record.value)
                if envelope.type != "health-minute" or "window_start" not in envelope.fields:
                    raise BadMessage(f"not a health row: {envelope.type!r}")
                key = self.aggregator.add(envelope)
            except BadMessage as exc:
                await dead_letter(self._bus, record, str(exc), stage=self.name)
                continue
            if key is not None:
                changed[key] = None
        rows = [self.aggregator.row(key) for key in changed]
        # Published together: the bus groups concurrent publishes into one request, in the
        # order they were started; one at a time, each row would wait for its own round trip.
        # Every publish is waited for before a failure is raised, so none is left running.
        results = await asyncio.gather(
            *(self._bus.publish(topics.HEALTH, row.key, row.to_json()) for row in rows),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.aggregator.evict()
        return True

    async def flush(self) -> None:
        return None
