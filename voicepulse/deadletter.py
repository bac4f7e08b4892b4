"""The dead-letter topic: what a stage could not parse, with the reason and the original bytes."""

import base64
import logging

from voicepulse import topics
from voicepulse.envelope import Envelope
from voicepulse.types import Bus, Record

__all__ = ["dead_letter", "dead_letter_envelope"]

logger = logging.getLogger(__name__)


async def dead_letter(bus: Bus, record: Record, reason: str, *, stage: str) -> None:
    """Publish ``record`` to ``voicepulse.dead-letter``; the stage then goes on."""
    envelope = dead_letter_envelope(record, reason, stage=stage)
    await bus.publish(topics.DEAD_LETTER, envelope.key, envelope.to_json())


def dead_letter_envelope(record: Record, reason: str, *, stage: str) -> Envelope:
    """The dead-letter envelope for ``record`` (logged once, here), for stages that publish
    it themselves, e.g. inside a Kafka transaction."""
    logger.warning(
        "%s: dead-lettering %s[%d]@%d: %s",
        stage,
        record.topic,
        record.partition,
        record.offset,
        reason,
    )
    account = record.key.decode(errors="replace") if record.key else "unknown"
    envelope = Envelope(
        id=f"{record.topic}:{record.partition}:{record.offset}",
        type="dead-letter",
        account_sid=account,
        source=stage,
        fields={
            "reason": reason,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "original_base64": base64.b64encode(record.value).decode(),
        },
    )
    return envelope
