"""The latest known change of every alert: which alerts fire now, for the Alertmanager re-sends.

Fed twice: by the notifier's own consumer group as it delivers, and by a tracker that reads
``voicepulse.alerts`` from its first record on every start (a fresh, never-committing group), so
the set is rebuilt after a restart without any state of its own. Both feed :meth:`apply`, which
keeps the change with the latest ``changed_at`` per alert, so the order in which the two readers
see a change does not matter, and a resolve already read is never undone by an older firing.
"""

import logging
import uuid
from collections.abc import Iterable

from alerting.notify.notice import AlertKey, Notice
from voicepulse import topics
from voicepulse.errors import BadMessage
from voicepulse.stage import LoopStage
from voicepulse.types import Bus

__all__ = ["FiringSet", "FiringTracker"]

logger = logging.getLogger(__name__)


class FiringSet:
    """Latest change per alert key."""

    def __init__(self) -> None:
        self._latest: dict[AlertKey, Notice] = {}

    def apply(self, notice: Notice) -> Notice:
        """Record ``notice`` unless a later change of its alert is known; the latest change."""
        known = self._latest.get(notice.key)
        if known is None or notice.changed_at >= known.changed_at:
            self._latest[notice.key] = notice
            return notice
        return known

    def latest(self, key: AlertKey) -> Notice | None:
        return self._latest.get(key)

    def firing(self) -> list[Notice]:
        return [notice for notice in self._latest.values() if notice.state == "firing"]

    def apply_all(self, notices: Iterable[Notice]) -> None:
        for notice in notices:
            self.apply(notice)


class FiringTracker(LoopStage):
    """A stage that reads ``voicepulse.alerts`` from the start into a :class:`FiringSet`, then
    follows it; idle (for :meth:`drain`) once it has caught up.

    Its consumer group is new on every start and never commits, so every start reads the whole
    topic (alert state changes: a small topic) and nothing is left behind on the broker.
    """

    def __init__(self, name: str, bus: Bus, firing: FiringSet, group: str) -> None:
        super().__init__(name)
        self._consumer = bus.consumer([topics.ALERTS], f"{group}-{uuid.uuid4().hex[:8]}")
        self._firing = firing
        self.read = 0

    async def _open(self) -> None:
        await self._consumer.start()

    async def _close(self) -> None:
        await self._consumer.stop()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            records = await self._consumer.poll(0.5, 1000)
            if not records:
                self._idle.set()
            for record in records:
                self.read += 1
                try:
                    notice = Notice.from_record(record)
                except BadMessage:
                    continue  # the notifiers' own groups log and count it
                if notice is not None:
                    self._firing.apply(notice)
