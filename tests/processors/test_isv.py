"""The ISV handler: a batch's aggregate rows are published together, in window order."""

import asyncio

import orjson
import pytest

from processors.isv import IsvAggregator, IsvHandler
from processors.processor import row_envelope
from processors.windows import Window
from voicepulse import topics
from voicepulse.bus.memory import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.errors import BusUnavailable
from voicepulse.messages import ISV_ACCOUNT, HealthWindow
from voicepulse.types import Record

STARTS = (1_795_687_200, 1_795_687_260, 1_795_687_320)


class HeldBus(InProcessBus):
    """The in-process bus, whose publishes are acknowledged only once ``together`` of them are
    waiting (a handler publishing one at a time never gets there); the ``fail``-th fails. As on
    Kafka, a record is queued in call order before its acknowledgement is awaited."""

    def __init__(self, together: int, fail: int | None = None) -> None:
        super().__init__()
        self._together = together
        self._fail = fail
        self._waiting = 0
        self._all_there = asyncio.Event()
        self.done = 0

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        await super().publish(topic, key, value)
        self._waiting += 1
        number = self._waiting
        if self._waiting == self._together:
            self._all_there.set()
        await self._all_there.wait()
        if number == self._fail:
            raise BusUnavailable("the broker went away")
        self.done += 1


def _records() -> list[Record]:
    rows = []
    for account in ("AC" + "1" * 32, "AC" + "2" * 32):
        window = Window()
        window.apply("end", ("completed", True, 30, False, False, "+14155550100", None), 1)
        for start in STARTS:
            rows.append(row_envelope(account, dict(window.fields("outbound", start, 1.0))))
    return [Record(topics.HEALTH, 0, i, row.key, row.to_json()) for i, row in enumerate(rows)]


async def test_rows_of_a_batch_are_published_together_in_window_order() -> None:
    bus = HeldBus(together=len(STARTS))
    await bus.start()
    assert await asyncio.wait_for(IsvHandler(bus, 1.0).handle(_records()), timeout=5)
    published = [orjson.loads(r.value) for r in bus.records(topics.HEALTH)]
    assert [row["account_sid"] for row in published] == [ISV_ACCOUNT] * len(STARTS)
    assert [row["completed"] for row in published] == [2] * len(STARTS)
    windows = sorted(row["window_start"] for row in published)
    assert [row["window_start"] for row in published] == windows
    await bus.stop()


async def test_a_failed_publish_is_raised_after_the_others_finished() -> None:
    bus = HeldBus(together=len(STARTS), fail=2)
    await bus.start()
    with pytest.raises(BusUnavailable):
        await asyncio.wait_for(IsvHandler(bus, 1.0).handle(_records()), timeout=5)
    assert bus.done == len(STARTS) - 1
    await bus.stop()


def test_the_isv_row_has_every_field_of_a_health_window() -> None:
    aggregator = IsvAggregator(cps_limit=5.0)
    keys = {aggregator.add(Envelope.from_json(record.value)) for record in _records()}
    for key in keys - {None}:
        assert key is not None
        row = aggregator.row(key).fields
        assert set(row) == HealthWindow.__required_keys__ | HealthWindow.__optional_keys__
        assert row["cps_limit"] == 5.0
