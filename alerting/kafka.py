"""The alert stage on Kafka: its state in a changelog, each turn one transaction.

Run by :class:`voicepulse.bus.StatefulStage` (the commit protocol is there): a consumer group
on ``voicepulse.health``, whose per-partition state is the evaluator's series of the accounts
on that partition (the health topic is keyed by account), kept in the compacted changelog
``voicepulse.alert-changelog``. Each turn sends, in one transaction, the alert changes
(``voicepulse.alerts``), dead letters, the changelog entries of the series it changed and the
input offsets. Killed at any instant and restarted, it restores the series as of the last
committed turn and redoes the rest, so the alert history is the one an uninterrupted run
gives: no change published twice, none lost, a firing alert still firing.
"""

import logging
from collections.abc import Mapping
from typing import Final

from alerting.evaluator import Evaluator
from alerting.rules import RuleSet
from alerting.stage import ALERT_GROUP, closed_row
from alerting.state import restore_entry, series_entries
from voicepulse import topics
from voicepulse.bus.changelog import Entries
from voicepulse.bus.stateful import HandlerStage, Poll, StatefulStage
from voicepulse.bus.transactional import Transaction
from voicepulse.deadletter import dead_letter_envelope
from voicepulse.errors import BadMessage

__all__ = ["CHANGELOG", "KafkaAlertStage"]

logger = logging.getLogger(__name__)

CHANGELOG: Final = "voicepulse.alert-changelog"


class KafkaAlertStage(HandlerStage):
    """The evaluator over ``voicepulse.health`` on Kafka, crash-safe."""

    name = "alert"

    def __init__(
        self,
        bootstrap_servers: str,
        rules: RuleSet,
        *,
        tenant_names: Mapping[str, str] | None = None,
        namespace: str = "",
        group: str = ALERT_GROUP,
        instance_id: str = "0",
        partitions: int = 6,
        replication_factor: int = 1,
        max_records: int = 5000,
        poll_timeout_s: float = 0.2,
    ) -> None:
        self.evaluator = Evaluator(rules, tenant_names, changelog=True)
        self._partition: dict[tuple[str, str], int] = {}
        self.published = 0
        self._stage = StatefulStage(
            self.name,
            bootstrap_servers,
            self,
            topics=[topics.HEALTH],
            outputs=[topics.ALERTS, topics.DEAD_LETTER],
            changelog=CHANGELOG,
            group=group,
            instance_id=instance_id,
            namespace=namespace,
            partitions=partitions,
            replication_factor=replication_factor,
            max_records=max_records,
            poll_timeout_s=poll_timeout_s,
            description="alert stage",
        )

    async def turn(self, poll: Poll, tx: Transaction) -> bool:
        """Apply the polled rows; the changes, dead letters, changelog and offsets to ``tx``."""
        evaluator = self.evaluator
        for record in poll.records:
            try:
                row = closed_row(record)
                if row is None:
                    continue
                changes = evaluator.add(row.account_sid, row.fields)
            except BadMessage as exc:
                dead = dead_letter_envelope(record, str(exc), stage=self.name)
                tx.send(topics.DEAD_LETTER, dead.key, dead.to_json())
                continue
            self._partition[(row.account_sid, str(row.fields["direction_group"]))] = (
                record.partition
            )
            for change in changes:
                tx.send(topics.ALERTS, change.key, change.to_json())
            self.published += len(changes)
        for series in evaluator.take_touched():
            partition = self._partition[(series.account_sid, series.group)]
            for key, value in series_entries(series):
                tx.log(partition, key, value)
        tx.consumed(poll.records)
        return True

    def revoke(self, partitions: set[int]) -> None:
        """Drop the series of revoked partitions (their new owner restores them)."""
        gone = [key for key, partition in self._partition.items() if partition in partitions]
        self.evaluator.drop(gone)
        for key in gone:
            del self._partition[key]

    async def restore(self, partition: int, entries: Entries) -> None:
        """Rebuild the series of ``partition`` from its changelog entries."""
        self.revoke({partition})
        count = 0
        async for key, value in entries:
            self._partition[restore_entry(self.evaluator, key, value)] = partition
            count += 1
        logger.info(
            "restored alert partition %d: %d series from %d changelog entries",
            partition,
            sum(1 for p in self._partition.values() if p == partition),
            count,
        )
