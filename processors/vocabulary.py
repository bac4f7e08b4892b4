"""Twilio's status and direction vocabularies, normalised in one place (TWILIO.md)."""

from typing import Final

__all__ = ["ANSWERED_STATUS", "OUTBOUND_DIRECTIONS", "TERMINAL_STATUSES", "direction_group"]

TERMINAL_STATUSES: Final = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
ANSWERED_STATUS: Final = "in-progress"
OUTBOUND_DIRECTIONS: Final = frozenset({"outbound-api", "outbound-dial", "trunking-terminating"})


def direction_group(direction: str) -> str:
    """``outbound`` for outbound-api, outbound-dial and trunking-terminating; else ``inbound``."""
    return "outbound" if direction in OUTBOUND_DIRECTIONS else "inbound"
