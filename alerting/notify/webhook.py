"""A signed webhook: one POST per alert state change, for receivers without Alertmanager.

The body is JSON (``format="json"``: the change itself, see :func:`webhook_body`; or
``format="slack"``: a Slack incoming-webhook message). Headers:

- ``X-VoicePulse-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with the shared
  secret; a receiver recomputes it over the raw body and compares in constant time.
- ``Idempotency-Key: <id>``: the change's envelope id, the same on every retry and replay, so
  that a receiver drops repeats (delivery is at least once).
"""

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, Final, Literal

import httpx
import orjson
from pydantic import SecretStr

from alerting.notify.errors import DeliveryFailed, post
from alerting.notify.labels import Describer, number
from alerting.notify.notice import Notice

__all__ = ["SIGNATURE_HEADER", "WebhookNotifier", "sign", "slack_body", "webhook_body"]

SIGNATURE_HEADER: Final = "X-VoicePulse-Signature"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
WebhookFormat = Literal["json", "slack"]


def sign(body: bytes, secret: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook_body(notice: Notice, describer: Describer) -> dict[str, Any]:
    """The change's own fields, with its id, subaccount, tenant name, summary and page."""
    return {
        **notice.fields,
        "id": notice.id,
        "type": "alert",
        "account_sid": notice.account_sid,
        "tenant": describer.tenant(notice),
        "summary": describer.summary(notice),
        "url": describer.url(notice),
    }


def slack_body(notice: Notice, describer: Describer) -> dict[str, Any]:
    """A Slack incoming-webhook message: one line of text, with a link to the page."""
    mark = ":rotating_light: FIRING" if notice.state == "firing" else ":white_check_mark: RESOLVED"
    text = f"{mark} *{notice.rule}* {describer.summary(notice)}"
    if notice.value is not None and notice.threshold is not None and not notice.message:
        text += f" (value {number(notice.value)}, threshold {number(notice.threshold)})"
    if (url := describer.url(notice)) is not None:
        text += f" <{url}|dashboard>"
    return {"text": text}


class WebhookNotifier:
    """POSTs each change to ``url``, signed with ``secret``."""

    name = "webhook"
    batch_size = 1  # one request per change: a retry never repeats a delivered one

    def __init__(
        self,
        url: str,
        secret: SecretStr | None,
        describer: Describer,
        *,
        format: WebhookFormat = "json",
        timeout_s: float,
    ) -> None:
        self._url = url
        self._secret = secret.get_secret_value().encode() if secret is not None else None
        self._describer = describer
        self._format = format
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def deliver(self, notices: Sequence[Notice]) -> None:
        if self._client is None:
            raise DeliveryFailed("the webhook notifier is not started")
        for notice in notices:
            body = self.body(notice)
            await post(self._client, self._url, content=body, headers=self.headers(notice, body))

    def body(self, notice: Notice) -> bytes:
        if self._format == "slack":
            return orjson.dumps(slack_body(notice, self._describer))
        return orjson.dumps(webhook_body(notice, self._describer))

    def headers(self, notice: Notice, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "voicepulse",
            IDEMPOTENCY_HEADER: notice.id,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        return headers
