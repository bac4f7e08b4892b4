"""The SDK's async HTTP client, with backoff: 429 and 5xx are retried after a jittered delay
that honours ``Retry-After``; so are connections that fail or time out.

Retrying under the SDK (not around it) keeps paging intact: a page that answered 429 is asked
for again with the same URL, so nothing is skipped and nothing is listed twice. After
``max_attempts`` the last answer goes back to the SDK, which raises; the caller decides.
"""

import asyncio
import base64
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

from ingest.pollers.errors import PullError
from ingest.pollers.metrics import PullMetrics

__all__ = ["PacedHttpClient", "RetryPolicy"]

logger = logging.getLogger(__name__)
# The SDK logs every request and header at INFO; keep that out of the operators' logs.
_SDK_LOGGER = logging.getLogger(f"{__name__}.sdk")
_MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_s: float = 0.5
    max_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Exponential backoff with equal jitter; Retry-After, when given, is the floor."""
        ceiling = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        jittered = rng.uniform(ceiling / 2, ceiling)
        if retry_after_s is None:
            return jittered
        return min(retry_after_s, _MAX_RETRY_AFTER_S) + rng.uniform(0, min(1.0, self.base_s))


class PacedHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """:class:`AsyncTwilioHttpClient` that retries 429, 5xx and failed connections.

    Create it inside a running event loop (it opens an aiohttp session); close it with
    :meth:`close`.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        metrics: PullMetrics,
        *,
        timeout_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if _SDK_LOGGER.level == logging.NOTSET:
            _SDK_LOGGER.setLevel(logging.WARNING)
        super().__init__(pool_connections=False, logger=_SDK_LOGGER)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._policy = policy
        self._metrics = metrics
        self._rng = rng or random.Random()

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature; ours is the session's
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            # Sent as a header: aiohttp deprecates the BasicAuth object the SDK would build.
            headers["Authorization"] = _basic(*auth)
        attempt = 0
        while True:
            attempt += 1
            try:
                response: Response = await super().request(
                    method, url, params, data, headers, None, None, allow_redirects
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._metrics.responses.labels("error").inc()
                if attempt >= self._policy.max_attempts:
                    raise PullError(f"{method} {url}: {exc!r}", status=None) from exc
                await self._pause("network", attempt, None, url)
                continue
            status = response.status_code
            self._metrics.responses.labels(_status_class(status)).inc()
            if not _retriable(status) or attempt >= self._policy.max_attempts:
                return response
            reason = "429" if status == 429 else "5xx"
            await self._pause(reason, attempt, _retry_after(response.headers), url)

    async def _pause(self, reason: str, attempt: int, retry_after: float | None, url: str) -> None:
        delay = self._policy.delay(attempt, retry_after, self._rng)
        self._metrics.retries.labels(reason).inc()
        logger.debug("retrying %s after %.2f s (%s, attempt %d)", url, delay, reason, attempt)
        await asyncio.sleep(delay)


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _retriable(status: int) -> bool:
    return status == 429 or status >= 500


def _status_class(status: int) -> str:
    return "429" if status == 429 else f"{status // 100}xx"


def _retry_after(headers: Any) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
