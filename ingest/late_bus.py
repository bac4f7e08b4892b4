"""A bus the receiver can start before Kafka answers.

Twilio does not retry what a receiver that is down refuses, so the receiver must come up and
take callbacks even while Kafka is away: it spools them (:mod:`ingest.publisher`) until Kafka
answers. :class:`LateStartBus` wraps the real bus: :meth:`start` tries once and, when the broker
does not answer, keeps trying in the background; until then :meth:`publish` raises
:class:`BusUnavailable`, which sends events to the spool.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from voicepulse.errors import BusUnavailable
from voicepulse.types import Bus, Consumer

__all__ = ["LateStartBus"]

logger = logging.getLogger(__name__)


class LateStartBus:
    """Implements :class:`voicepulse.types.Bus` over ``bus``, started when the broker answers."""

    def __init__(self, bus: Bus, *, retry_s: float = 2.0) -> None:
        self._bus = bus
        self._retry_s = retry_s
        self._started = False
        self._starter: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        if self._started or self._starter is not None:
            return
        try:
            await self._bus.start()
        except BusUnavailable as exc:
            logger.warning("the bus is unavailable, starting anyway (events spool): %s", exc)
            self._starter = asyncio.create_task(self._keep_trying(), name="bus-starter")
        else:
            self._started = True

    async def _keep_trying(self) -> None:
        while not self._started:
            await asyncio.sleep(self._retry_s)
            try:
                await self._bus.start()
            except BusUnavailable as exc:
                logger.debug("the bus is still unavailable: %s", exc)
            else:
                self._started = True
                logger.info("the bus is available: started")

    async def stop(self) -> None:
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starter
        if self._started:
            self._started = False
            await self._bus.stop()

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if not self._started:
            raise BusUnavailable("the bus has not started yet: the broker did not answer")
        await self._bus.publish(topic, key, value)

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        return self._bus.consumer(topics, group)
