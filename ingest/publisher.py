"""Making an event durable before the receiver answers 2xx: Kafka, else the local spool.

:meth:`DurablePublisher.publish` returns only once the event is durable:

1. While the spool is empty, the event goes to the bus, which must acknowledge it within the
   receiver's deadline (``kafka_publish_timeout_s``, enforced here, by one timer for all
   publishes: :mod:`ingest.deadline`; on Kafka: acks=all, idempotent producer). The bus's own,
   longer delivery timeout is for the other stages.
2. When the bus refuses the event or does not answer in time, the event is appended to the
   spool and fsynced (:mod:`ingest.spool`), and from then on every event goes to the spool,
   behind the ones already there: an event answered 2xx precedes, on the topic, every event of
   its subaccount received after that answer. (An event that timed out may still reach the
   topic later through the producer's retries: then it is there twice, never missing.)
3. A background drainer sends the spooled segments to the bus, oldest first and in order per key
   (Kafka key = subaccount; see :meth:`DurablePublisher._send_in_order`), and deletes a segment
   only after every record of it was acknowledged. A segment that fails half way is sent again
   from its start: a crash or an outage can duplicate an event on the topic (same envelope id),
   never lose one.
4. When the spool is empty again (checked with no await between the check and the switch, so
   no append can slip in between), events go straight to the bus again.
5. A full spool raises :class:`SpoolFull` and a write error :class:`SpoolError`: the caller
   answers 503, never 2xx.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from ingest.deadline import SharedDeadline
from ingest.metrics import ReceiverMetrics
from ingest.spool import Spool, SpooledRecord
from voicepulse.errors import BusUnavailable
from voicepulse.types import Bus

__all__ = ["DurablePublisher"]

logger = logging.getLogger(__name__)

_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_WINDOW = 500


class DurablePublisher:
    """Publishes to the bus with a deadline, spooling what the bus does not take in time."""

    def __init__(
        self, bus: Bus, spool: Spool, metrics: ReceiverMetrics, *, deadline_s: float = 2.0
    ) -> None:
        self._bus = bus
        self._spool = spool
        self._metrics = metrics
        self._deadline_s = deadline_s
        self._deadline = SharedDeadline(deadline_s)
        self._spooling = False
        self._bus_up = True
        self._wake = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._observed_bus = metrics.publish_seconds.labels("bus")
        self._observed_spool = metrics.publish_seconds.labels("spool")

    @property
    def spooling(self) -> bool:
        return self._spooling

    @property
    def ready(self) -> bool:
        """The bus answers, or the spool has room (what ``/readyz`` reports)."""
        return (self._bus_up and not self._spooling) or self._spool.has_room

    async def start(self) -> None:
        """Open the spool; records left by an earlier run are drained first."""
        if self._drainer is not None:
            return
        self._spool.open()
        await self._deadline.start()
        self._spooling = self._spool.records > 0
        self._update_gauges()
        self._drainer = asyncio.create_task(self._drain_forever(), name="spool-drainer")
        if self._spooling:
            self._wake.set()

    async def stop(self) -> None:
        """Stop the drainer; the spool keeps what is not drained for the next run."""
        drainer, self._drainer = self._drainer, None
        if drainer is None:
            return
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer
        await self._deadline.stop()
        self._spool.close()

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Return once the event is on the bus or fsynced in the spool (module docstring)."""
        started = time.perf_counter()
        if not self._spooling:
            try:
                in_time = await self._deadline.within(self._bus.publish(topic, key, value))
            except BusUnavailable as exc:
                self._bus_down(exc)
            else:
                if in_time:
                    if not self._bus_up:
                        self._bus_up = True
                        self._metrics.bus_up.set(1)
                    self._observed_bus.observe(time.perf_counter() - started)
                    return
                self._bus_down(TimeoutError(f"no acknowledgement within {self._deadline_s} s"))
        await self._spool.append(SpooledRecord(topic, key, value))
        self._metrics.spooled.inc()
        self._update_gauges()
        self._observed_spool.observe(time.perf_counter() - started)

    def _bus_down(self, exc: BaseException) -> None:
        if self._bus_up or not self._spooling:
            logger.warning("the bus did not take an event in time, spooling: %s", exc or "timeout")
        self._bus_up = False
        self._metrics.bus_up.set(0)
        self._spooling = True
        self._wake.set()

    def _update_gauges(self) -> None:
        self._metrics.spool_records.set(self._spool.records)
        self._metrics.spool_bytes.set(self._spool.size)

    async def _drain_forever(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._spooling:
                try:
                    await self._drain_once()
                except OSError as exc:
                    logger.error("reading the spool failed, retrying: %s", exc)
                    await asyncio.sleep(_RETRY_S[-1])
                except (BusUnavailable, TimeoutError) as exc:
                    self._bus_up = False
                    self._metrics.bus_up.set(0)
                    delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                    failures += 1
                    logger.info("spool drain paused %.1f s, the bus is unavailable: %s", delay, exc)
                    await asyncio.sleep(delay)
                else:
                    failures = 0

    async def _drain_once(self) -> None:
        await self._spool.roll()
        segments = self._spool.closed_segments()
        if not segments:
            # Only appends still being written: let them finish (never spin the loop).
            await asyncio.sleep(0.005)
        for segment in segments:
            records = await asyncio.to_thread(self._spool.read_segment, segment)
            await self._send_in_order(records)
            self._spool.remove_segment(segment)
            self._metrics.drained.inc(len(records))
            self._metrics.drained_segments.inc()
            self._update_gauges()
            self._bus_up = True
            self._metrics.bus_up.set(1)
        if self._spool.records == 0:
            self._spooling = False
            logger.info("spool drained: events go straight to the bus again")

    async def _send_in_order(self, records: Sequence[SpooledRecord]) -> None:
        """Send every record, in windows of ``_WINDOW`` publishes in flight at once.

        Order per key holds because each publish is started (as a task) in record order, and
        a publish hands its record to the producer before it first waits: the Kafka producer
        appends records for one partition in the order they are handed over, and the
        idempotent producer keeps that order through retries. The next window starts only
        once the whole previous one is acknowledged; a failure anywhere fails the segment,
        which is then sent again from its start (duplicates, never gaps).
        """
        for start in range(0, len(records), _WINDOW):
            window = records[start : start + _WINDOW]
            sends = [asyncio.ensure_future(self._send(record)) for record in window]
            results = await asyncio.gather(*sends, return_exceptions=True)
            for result in results:
                if isinstance(result, BusUnavailable | TimeoutError):
                    raise BusUnavailable(f"draining the spool: {result!r}")
                if isinstance(result, BaseException):
                    raise result

    async def _send(self, record: SpooledRecord) -> None:
        await asyncio.wait_for(
            self._bus.publish(record.topic, record.key, record.value), self._deadline_s
        )
