"""What can go wrong telling a receiver about an alert.

    VoicePulseError
    └── NotifyError
        ├── DeliveryFailed      no answer, a timeout, 5xx, 429 or 408: retried with backoff
        │                       (never sooner than the receiver's Retry-After)
        ├── DeliveryRejected    any other 4xx: the receiver refuses this notification; counted,
        │                       logged and skipped (retrying would block every later one)
        └── DeliveryAbandoned   the stage stopped before the receiver took it: its offsets are
                                not committed, so it is delivered after the restart

httpx errors are translated here, at one boundary (:func:`check_response`, :func:`post`).
"""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from voicepulse.errors import VoicePulseError

__all__ = ["DeliveryAbandoned", "DeliveryFailed", "DeliveryRejected", "NotifyError", "post"]

_RETRIED_4XX = frozenset({408, 425, 429})
_MAX_RETRY_AFTER_S = 600.0


class NotifyError(VoicePulseError):
    """A notification did not reach its receiver."""


class DeliveryFailed(NotifyError):
    retriable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # the receiver's Retry-After, when it gave one


class DeliveryRejected(NotifyError):
    retriable = False


class DeliveryAbandoned(NotifyError):
    retriable = True


async def post(
    client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str]
) -> None:
    """POST ``content``; return on 2xx, else raise :class:`DeliveryFailed` or
    :class:`DeliveryRejected` by what the answer says about trying again."""
    try:
        response = await client.post(url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{url}: {exc!r}") from exc
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"{url} answered {status}: {response.text[:200]}"
    if status >= 500 or status in _RETRIED_4XX:
        raise DeliveryFailed(reason, retry_after_s=_retry_after(response))
    raise DeliveryRejected(reason)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), capped at ten minutes."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)
