"""Twilio's REST APIs through the official SDK, async, with the parent account's credentials.

Lists go through the SDK's ``page_async`` and ``next_page_async`` (so its paging is what runs:
relative ``next_page_uri`` on Api v2010, absolute ``meta.next_page_url`` on Insights) and yield
each page's records as the JSON Twilio sent, kept whole. SDK errors become :class:`PullError`.
"""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import SecretStr
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from ingest.pollers.errors import from_twilio
from ingest.pollers.http import PacedHttpClient, RetryPolicy
from ingest.pollers.metrics import PullMetrics
from voicepulse.errors import ConfigError

__all__ = ["Credentials", "TwilioApi"]

logger = logging.getLogger(__name__)

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Credentials:
    """The parent account, and either its auth token or an API key (SID and secret)."""

    account_sid: str
    auth_token: SecretStr | None = None
    api_key_sid: str | None = None
    api_key_secret: SecretStr | None = None
    api_base_url: str | None = None
    insights_base_url: str | None = None

    def check(self) -> None:
        if self.api_key_sid is not None:
            if self.api_key_secret is None:
                raise ConfigError("an API key SID needs its secret (twilio_api_key_secret)")
        elif self.auth_token is None:
            raise ConfigError("give the parent's auth token or an API key SID and secret")


class TwilioApi:
    """The few Twilio reads the pollers need. Open inside the event loop that will use it."""

    def __init__(
        self,
        credentials: Credentials,
        metrics: PullMetrics,
        policy: RetryPolicy,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        credentials.check()
        self.parent_sid = credentials.account_sid
        self._credentials = credentials
        self._metrics = metrics
        self._policy = policy
        self._timeout_s = timeout_s
        self._http: PacedHttpClient | None = None
        self._client: Any = None

    async def open(self) -> None:
        if self._client is not None:
            return
        creds = self._credentials
        self._http = PacedHttpClient(self._policy, self._metrics, timeout_s=self._timeout_s)
        if creds.api_key_sid is not None and creds.api_key_secret is not None:
            username, password = creds.api_key_sid, creds.api_key_secret
        else:
            assert creds.auth_token is not None
            username, password = creds.account_sid, creds.auth_token
        self._client = Client(
            username=username,
            password=password.get_secret_value(),
            account_sid=creds.account_sid,
            http_client=self._http,
        )
        if creds.api_base_url:
            self._client.api.base_url = creds.api_base_url.rstrip("/")
        if creds.insights_base_url:
            self._client.insights.base_url = creds.insights_base_url.rstrip("/")

    async def close(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("TwilioApi is not open")
        return self._client

    async def subaccounts(self) -> list[str]:
        """The parent's active subaccounts, from the Accounts API."""
        accounts = self.client.api.v2010.accounts
        found: list[str] = []
        pages = _pages(accounts.page_async(status="active", page_size=1000), "list accounts")
        async for records in pages:
            found += [r["sid"] for r in records if r.get("sid") != self.parent_sid]
        return found

    def calls(self, account_sid: str, since: date, page_size: int) -> AsyncIterator[list[Record]]:
        """Pages of the subaccount's calls that started on or after ``since`` (UTC date)."""
        calls = self.client.api.v2010.accounts(account_sid).calls
        first = calls.page_async(
            start_time_after=datetime.combine(since, time(), UTC), page_size=page_size
        )
        return _pages(first, f"list calls of {account_sid}")

    async def call(self, account_sid: str, call_sid: str) -> Record | None:
        """One Call resource; None when Twilio no longer has it."""
        uri = f"/Accounts/{account_sid}/Calls/{call_sid}.json"
        return await _fetch(self.client.api.v2010, uri, f"fetch call {call_sid}")

    def summaries(
        self, account_sid: str, start: datetime, page_size: int
    ) -> AsyncIterator[list[Record]]:
        """Pages of the subaccount's Insights summaries (partial and complete) since ``start``."""
        first = self.client.insights.v1.call_summaries.page_async(
            subaccount=account_sid,
            start_time=start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            processing_state="all",
            page_size=page_size,
        )
        return _pages(first, f"list Insights summaries of {account_sid}")

    async def summary(self, call_sid: str) -> Record | None:
        """One call's Insights summary; None when there is none (yet, or any more)."""
        uri = f"/Voice/{call_sid}/Summary"
        return await _fetch(self.client.insights.v1, uri, f"fetch summary of {call_sid}")

    def usage(
        self, account_sid: str, category: str, start: date, end: date
    ) -> AsyncIterator[list[Record]]:
        """Pages of the subaccount's own daily usage records (``IncludeSubaccounts=false``)."""
        daily = self.client.api.v2010.accounts(account_sid).usage.records.daily
        first = daily.page_async(
            category=category,
            start_date=start,
            end_date=end,
            include_subaccounts=False,
            page_size=1000,
        )
        return _pages(first, f"list {category} usage of {account_sid}")


async def _pages(first: Any, what: str) -> AsyncIterator[list[Record]]:
    try:
        page = await first
        while page is not None:
            yield _records(page)
            page = await page.next_page_async()
    except TwilioException as exc:
        raise from_twilio(exc, what) from exc


def _records(page: Any) -> list[Record]:
    # The SDK's instances drop fields it does not know; the page keeps Twilio's JSON whole.
    records: list[Record] = page.load_page(page._payload)
    return records


async def _fetch(version: Any, uri: str, what: str) -> Record | None:
    try:
        payload: Record = await version.fetch_async(method="GET", uri=uri)
    except TwilioException as exc:
        error = from_twilio(exc, what)
        if error.status == 404:
            return None
        raise error from exc
    return payload
