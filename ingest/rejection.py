"""A request the receiver refuses, with the status it gets and the reason it is counted under."""

__all__ = ["Rejection"]


class Rejection(Exception):
    """A request answered 4xx/5xx; ``reason`` is the metric label and the log line.

    ``detail`` goes to the log only: never a token, never the body.

    A plain exception class, not a frozen dataclass: Python sets ``__traceback__``,
    ``__context__`` and ``__notes__`` on an exception as it travels, which a frozen or slotted
    class refuses with ``TypeError``.
    """

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(status, reason, detail)
        self.status = status
        self.reason = reason
        self.detail = detail

    def __repr__(self) -> str:
        return f"Rejection(status={self.status}, reason={self.reason!r}, detail={self.detail!r})"
