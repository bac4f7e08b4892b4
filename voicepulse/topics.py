"""Kafka topic names: the contract between stages (docs/architecture.md, "Topics")."""

from typing import Final

__all__ = [
    "ALERTS",
    "ALL_TOPICS",
    "CALLS",
    "CALL_STATUS",
    "DEAD_LETTER",
    "DEBUGGER",
    "HEALTH",
    "INSIGHTS",
    "TWILIO_CALLS",
    "USAGE",
]

CALL_STATUS: Final = "twilio.call-status"
DEBUGGER: Final = "twilio.debugger"
TWILIO_CALLS: Final = "twilio.calls"
INSIGHTS: Final = "twilio.insights"
USAGE: Final = "twilio.usage"
CALLS: Final = "voicepulse.calls"
HEALTH: Final = "voicepulse.health"
ALERTS: Final = "voicepulse.alerts"
DEAD_LETTER: Final = "voicepulse.dead-letter"

ALL_TOPICS: Final = (
    CALL_STATUS,
    DEBUGGER,
    TWILIO_CALLS,
    INSIGHTS,
    USAGE,
    CALLS,
    HEALTH,
    ALERTS,
    DEAD_LETTER,
)
