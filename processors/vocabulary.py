"""Twilio's vocabularies, normalised in one place (docs/twilio.md, "Status vocabularies").

Three sources describe the same call in different words: status callbacks (``in-progress``,
``no-answer``, ``outbound-api``), the Call resource (no ``initiated``; otherwise the callback
words) and Voice Insights (``fail``, ``noanswer``, ``undialed``, ``answered``, ``completed``,
``outbound_api``). Everything here maps them onto the status-callback vocabulary.
"""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Final, Literal

__all__ = [
    "ANSWERED_STATUS",
    "OPEN_STATUSES",
    "OUTBOUND_DIRECTIONS",
    "STATUS_RANK",
    "TERMINAL_STATUSES",
    "Attestation",
    "attestation",
    "call_resource_status",
    "direction",
    "direction_group",
    "epoch",
    "insights_state",
    "parse_time",
    "receipt_epoch",
]

TERMINAL_STATUSES: Final = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
ANSWERED_STATUS: Final = "in-progress"
OPEN_STATUSES: Final = ("queued", "initiated", "ringing", "in-progress")
OUTBOUND_DIRECTIONS: Final = frozenset({"outbound-api", "outbound-dial", "trunking-terminating"})

STATUS_RANK: Final = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
"""Open statuses in the order a call moves through them; a call never moves back."""

_INSIGHTS_STATES: Final = {
    "answered": "in-progress",
    "fail": "failed",
    "noanswer": "no-answer",
    "undialed": "failed",
    "canceled": "canceled",
    "cancelled": "canceled",
    "busy": "busy",
    "completed": "completed",
    "ringing": "ringing",
    "in-progress": "in-progress",
    "initiated": "initiated",
    "queued": "queued",
    "failed": "failed",
    "no-answer": "no-answer",
}

Attestation = Literal["A", "B", "C", "failed", "none"]


def direction_group(direction: str) -> Literal["outbound", "inbound"]:
    """``outbound`` for outbound-api, outbound-dial and trunking-terminating; else ``inbound``."""
    return "outbound" if direction in OUTBOUND_DIRECTIONS else "inbound"


def direction(value: str | None) -> str | None:
    """Any source's direction in the Api v2010 words (``outbound_api`` -> ``outbound-api``)."""
    if not value:
        return None
    return value.strip().lower().replace("_", "-")


def call_resource_status(value: str | None) -> str | None:
    """A Call resource status in callback words (the same words, lower-cased; no-answer kept)."""
    if not value:
        return None
    word = value.strip().lower().replace("_", "-")
    return "no-answer" if word == "noanswer" else word


def insights_state(value: str | None) -> str | None:
    """An Insights ``call_state`` in callback words (``fail`` -> ``failed``, ``answered`` ->
    ``in-progress``, ``noanswer`` -> ``no-answer``, ``undialed`` -> ``failed``)."""
    if not value:
        return None
    word = value.strip().lower().replace("_", "-")
    return _INSIGHTS_STATES.get(word, word)


@lru_cache(maxsize=256)  # a few values, read for every finished inbound call and its facts
def attestation(stir_verstat: str | None) -> Attestation:
    """The attestation class of a ``StirVerstat`` (``-Diverted`` variants count as their base)."""
    if not stir_verstat:
        return "none"
    value = stir_verstat.strip().lower().removesuffix("-diverted")
    if value.startswith("tn-validation-passed-"):
        level = value.rsplit("-", 1)[-1].upper()
        return level if level in ("A", "B", "C") else "none"  # type: ignore[return-value]
    if value.startswith("tn-validation-failed"):
        return "failed"
    return "none"


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 or RFC 2822 time as an aware UTC datetime; None when absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


EPOCHS: dict[str, int | None] = {}
"""The memo of :func:`epoch` (a hit is final: read it directly in hot loops)."""


def epoch(value: object) -> int | None:
    """:func:`parse_time` as whole epoch seconds, memoised (callback times repeat per second)."""
    if not isinstance(value, str):
        return None
    known = EPOCHS.get(value, -1)
    if known != -1:
        return known
    if len(EPOCHS) > 100_000:
        EPOCHS.clear()
    parsed = parse_time(value)
    result = None if parsed is None else int(parsed.timestamp())
    EPOCHS[value] = result
    return result


def receipt_epoch(value: object) -> int | None:
    """When an envelope was received: its ``received_at`` as whole epoch seconds. The
    receiver writes it to the microsecond in UTC (``2026-11-26T10:05:00.123456+00:00``), a
    string that never repeats, so that form is read by its whole second (its first 19
    characters, memoised by :func:`epoch`); any other form is read by :func:`epoch`. (Only
    for the years 20xx: there the fraction cannot round a float timestamp up to the next
    second, as it can centuries later.)"""
    if (
        type(value) is str
        and len(value) == 32
        and value[19] == "."
        and value[26:] == "+00:00"
        and value.startswith("20")
    ):
        second = value[:19]
        return EPOCHS.get(second) or epoch(second)  # the memo read first: a hit is final
    return epoch(value)
