"""Subaccount tokens from Twilio's Accounts API, with the parent's credentials (twilio SDK).

``GET /2010-04-01/Accounts/{SubSid}.json`` with the parent's SID and auth token returns the
subaccount, its auth token included. A subaccount is accepted only when Twilio says the parent
owns it and it is not closed. Every failure (not found, refused, Twilio unreachable) is logged
without credentials and answers None: the request in hand is then refused as an unknown
account, and :class:`ingest.tenant_source.TenantSource` limits how often it asks again.
"""

import logging
from typing import Any

import httpx
from pydantic import SecretStr
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ingest.tenants import Tenant

__all__ = ["TwilioTokenFetcher"]

logger = logging.getLogger(__name__)


class _HttpxClient(AsyncHttpClient):  # type: ignore[misc]
    """The SDK's async HTTP client interface on httpx (the SDK's own aiohttp one uses an API
    that aiohttp deprecates)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(logger, True, timeout_s)
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's interface
        allow_redirects: bool = False,
    ) -> Response:
        reply = await self._client.request(
            method.upper(),
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            follow_redirects=allow_redirects,
        )
        return Response(reply.status_code, reply.text, reply.headers)

    async def close(self) -> None:
        await self._client.aclose()


class TwilioTokenFetcher:
    """Implements :class:`ingest.tenant_source.TokenFetcher` with the twilio SDK (async)."""

    def __init__(self, api_base_url: str | None = None, *, timeout_s: float = 5.0) -> None:
        self._base_url = api_base_url.rstrip("/") if api_base_url else None
        self._timeout_s = timeout_s
        self._clients: dict[str, tuple[Any, _HttpxClient]] = {}

    def _client(self, parent: Tenant) -> Any:
        known = self._clients.get(parent.account_sid)
        if known is not None:
            return known[0]
        http = _HttpxClient(self._timeout_s)
        client = Client(
            username=parent.account_sid,
            password=parent.auth_tokens[0].get_secret_value(),
            http_client=http,
        )
        if self._base_url:
            client.api.base_url = self._base_url
        self._clients[parent.account_sid] = (client, http)
        return client

    async def fetch(self, parent: Tenant, account_sid: str) -> Tenant | None:
        """The subaccount with its current token, or None (see the module docstring)."""
        client = self._client(parent)
        try:
            account = await client.api.v2010.accounts(account_sid).fetch_async()
        except TwilioException as exc:
            status = getattr(exc, "status", "?")
            logger.warning(
                "Twilio refused the lookup of %s under %s: HTTP %s",
                account_sid,
                parent.account_sid,
                status,
            )
            return None
        except httpx.HTTPError as exc:
            logger.warning("Twilio unreachable for the lookup of %s: %r", account_sid, exc)
            return None
        if account.owner_account_sid != parent.account_sid or account.status == "closed":
            logger.warning(
                "%s is not an open subaccount of %s (owner %s, status %s)",
                account_sid,
                parent.account_sid,
                account.owner_account_sid,
                account.status,
            )
            return None
        if not account.auth_token:
            logger.warning("Twilio returned no auth token for %s", account_sid)
            return None
        return Tenant(
            account_sid=account_sid,
            name=account.friendly_name or account_sid,
            parent_account_sid=parent.account_sid,
            cps_limit=1.0,
            auth_tokens=(SecretStr(account.auth_token),),
        )

    async def close(self) -> None:
        """Close every HTTP session; harmless twice."""
        clients, self._clients = self._clients, {}
        for _, http in clients.values():
            await http.close()
