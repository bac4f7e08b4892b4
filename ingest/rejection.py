"""A request the receiver refuses, with the status it gets and the reason it is counted under."""

from dataclasses import dataclass

__all__ = ["Rejection"]


@dataclass(frozen=True, slots=True)
class Rejection(Exception):
    """A request answered 4xx/5xx; ``reason`` is the metric label and the log line.

    ``detail`` goes to the log only: never a token, never the body.
    """

    status: int
    reason: str
    detail: str = ""
