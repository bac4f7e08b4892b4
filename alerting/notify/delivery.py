"""Delivering alert state changes to one notifier, with ``voicepulse.alerts`` as the outbox.

Each notifier is its own consumer group on ``voicepulse.alerts`` (so a receiver that is down
holds back neither evaluation nor the other notifiers) and follows the commit protocol of
:mod:`voicepulse.stage`:

1. Poll a batch of alert changes.
2. Drop what no notifier is told: pending changes, and changes an active silence covers.
3. Deliver the rest in order, in chunks; a chunk that fails is retried with backoff until the
   receiver takes it (or refuses it: a 4xx other than 408/425/429 is counted and skipped).
4. Only then report the batch durable, so its offsets are committed.

A crash or stop anywhere before 4 replays the batch after the restart: at least once. Every
notification carries the change's envelope id, by which a receiver drops repeats.
"""

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from alerting.notify.errors import DeliveryAbandoned, DeliveryFailed, DeliveryRejected
from alerting.notify.metrics import NotifierMetrics
from alerting.notify.notice import Notice
from alerting.silences import SilenceStore
from voicepulse import topics
from voicepulse.errors import BadMessage
from voicepulse.stage import ConsumerStage
from voicepulse.types import Bus, Record

__all__ = ["Backoff", "DeliveryHandler", "Notifier", "NotifierStage"]

logger = logging.getLogger(__name__)


class Notifier(Protocol):
    """Where notifications go (Alertmanager, a webhook)."""

    name: str
    batch_size: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deliver(self, notices: Sequence[Notice]) -> None:
        """Hand ``notices`` over, in order; raise DeliveryFailed (try again later) or
        DeliveryRejected (never). Delivering again what was delivered is harmless."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with equal jitter: attempt 1 waits base/2..base, doubling to max."""

    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_s, self.base_s * 2 ** min(attempt - 1, 30))
        return random.uniform(ceiling / 2, ceiling)


class DeliveryHandler:
    """Steps 2 and 3 above, as a :class:`voicepulse.stage.Handler`."""

    def __init__(
        self,
        notifier: Notifier,
        silences: SilenceStore,
        metrics: NotifierMetrics,
        backoff: Backoff,
    ) -> None:
        self._notifier = notifier
        self._silences = silences
        self._metrics = metrics
        self._backoff = backoff
        self._abandoned = asyncio.Event()

    def abandon(self) -> None:
        """Stop retrying: a delivery still failing raises :class:`DeliveryAbandoned`."""
        self._abandoned.set()

    async def handle(self, records: Sequence[Record]) -> bool:
        notices = self._told(self._decode(records))
        size = self._notifier.batch_size
        for start in range(0, len(notices), size):
            await self._deliver(notices[start : start + size])
        return True

    async def flush(self) -> None:
        return None  # nothing is buffered: every batch is delivered before it is committed

    def _decode(self, records: Sequence[Record]) -> list[Notice]:
        notices = []
        for record in records:
            try:
                notice = Notice.from_record(record)
            except BadMessage as exc:
                # The sink dead-letters it from the same topic; here it only cannot be told.
                self._metrics.bad_records.labels(self._notifier.name).inc()
                logger.warning("%s: skipping an unreadable alert: %s", self._notifier.name, exc)
                continue
            if notice is not None and notice.notifies:
                notices.append(notice)
        return notices

    def _told(self, notices: list[Notice]) -> list[Notice]:
        if not notices:
            return notices
        silences = self._silences.active()
        told = []
        for notice in notices:
            if notice.silenced_by(silences):
                self._metrics.notifications.labels(self._notifier.name, "silenced").inc()
            else:
                told.append(notice)
        return told

    async def _deliver(self, chunk: Sequence[Notice]) -> None:
        name = self._notifier.name
        attempt = 0
        while True:
            try:
                await self._notifier.deliver(chunk)
            except DeliveryRejected as exc:
                logger.error("%s refused %d notification(s), skipped: %s", name, len(chunk), exc)
                self._metrics.notifications.labels(name, "rejected").inc(len(chunk))
                return
            except DeliveryFailed as exc:
                attempt += 1
                self._metrics.failures.labels(name).inc()
                await self._wait(attempt, exc)
                continue
            self._metrics.notifications.labels(name, "delivered").inc(len(chunk))
            return

    async def _wait(self, attempt: int, exc: DeliveryFailed) -> None:
        name = self._notifier.name
        if self._abandoned.is_set():
            raise DeliveryAbandoned(f"{name}: stopped with notifications undelivered") from exc
        delay = max(self._backoff.delay(attempt), exc.retry_after_s or 0.0)
        log = logger.warning if attempt in (1, 10) or attempt % 100 == 0 else logger.debug
        log("%s: delivery failed (attempt %d), retrying in %.1f s: %s", name, attempt, delay, exc)
        try:
            await asyncio.wait_for(self._abandoned.wait(), delay)
        except TimeoutError:
            return
        raise DeliveryAbandoned(f"{name}: stopped with notifications undelivered") from exc


class NotifierStage(ConsumerStage):
    """One notifier's consumer group on ``voicepulse.alerts`` (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        notifier: Notifier,
        silences: SilenceStore,
        metrics: NotifierMetrics,
        backoff: Backoff,
    ) -> None:
        self._notifier = notifier
        self._delivery = DeliveryHandler(notifier, silences, metrics, backoff)
        super().__init__(
            f"notify-{notifier.name}",
            bus,
            [topics.ALERTS],
            f"voicepulse-notify-{notifier.name}",
            self._delivery,
            max_records=500,
        )

    async def _open(self) -> None:
        await self._notifier.start()
        await super()._open()

    async def _close(self) -> None:
        try:
            await super()._close()
        finally:
            await self._notifier.stop()

    async def stop(self) -> None:
        """Stop retrying, finish the batch in hand, commit what was delivered; harmless twice."""
        self._delivery.abandon()
        try:
            await super().stop()
        except DeliveryAbandoned as exc:
            logger.warning("%s; they are delivered after the next start", exc)
