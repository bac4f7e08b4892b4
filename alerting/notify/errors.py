"""What can go wrong telling a receiver about an alert.

    VoicePulseError
    └── NotifyError
        ├── DeliveryFailed      no answer, a timeout, 5xx, 429 or 408: retried with backoff
        ├── DeliveryRejected    any other 4xx: the receiver refuses this notification; counted,
        │                       logged and skipped (retrying would block every later one)
        └── DeliveryAbandoned   the stage stopped before the receiver took it: its offsets are
                                not committed, so it is delivered after the restart

httpx errors are translated here, at one boundary (:func:`check_response`, :func:`post`).
"""

import httpx

from voicepulse.errors import VoicePulseError

__all__ = ["DeliveryAbandoned", "DeliveryFailed", "DeliveryRejected", "NotifyError", "post"]

_RETRIED_4XX = frozenset({408, 425, 429})


class NotifyError(VoicePulseError):
    """A notification did not reach its receiver."""


class DeliveryFailed(NotifyError):
    retriable = True


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
        raise DeliveryFailed(reason)
    raise DeliveryRejected(reason)
