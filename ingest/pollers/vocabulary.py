"""Insights' words in the status-callback vocabulary (messages.py: InsightsSummary).

Kept here until :mod:`processors.vocabulary` carries the Insights table; the Call resource needs
no translation (its statuses and directions are already the callback's words, less
``initiated``).
"""

from typing import Final

__all__ = ["insights_call_state", "insights_direction"]

_CALL_STATES: Final = {
    "answered": "in-progress",
    "fail": "failed",
    "noanswer": "no-answer",
    "ringing": "ringing",
    "completed": "completed",
    "busy": "busy",
    "canceled": "canceled",
}


def insights_call_state(state: str | None) -> str | None:
    """``fail`` -> ``failed``, ``noanswer`` -> ``no-answer``, ``answered`` -> ``in-progress``;
    a word with no callback equivalent (``undialed``) is kept as Twilio sent it."""
    if state is None:
        return None
    return _CALL_STATES.get(state, state)


def insights_direction(direction: str | None) -> str | None:
    """``outbound_api`` -> ``outbound-api`` (underscores to hyphens)."""
    return None if direction is None else direction.replace("_", "-")
