"""Subaccount tokens fetched from the Accounts API (the fake Twilio on loopback) with the
parent's credentials: on first sight, cached, refreshed on a mismatch at most once a minute."""

from dataclasses import replace
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from ingest.app import STATUS_PATH
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant, TenantRegistry
from ingest.token_fetch import TwilioTokenFetcher
from simulator.fake_twilio import FakeAccount, FakeState, serve_fake_twilio
from tests.conftest import SettingsFactory
from tests.helpers import signed_headers
from tests.ingest.support import STATUS, serving
from voicepulse import topics

PARENT = "AC" + "9" * 32
SUB = "AC" + "4" * 32
STRANGER = "AC" + "6" * 32
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _state() -> FakeState:
    state = FakeState(parent=FakeAccount(PARENT, "ISV", "parent-token", PARENT, CREATED))
    state.add_subaccount(FakeAccount(SUB, "Acme", "sub-token-1", PARENT, CREATED))
    state.add_subaccount(FakeAccount(STRANGER, "Other", "stranger-token", STRANGER, CREATED))
    return state


def _source(base: str, refresh_interval_s: float = 60) -> TenantSource:
    parent = Tenant(PARENT, "ISV", None, 5.0, (SecretStr("parent-token"),), True)
    return TenantSource(
        TenantRegistry({PARENT: parent}),
        fetcher=TwilioTokenFetcher(base),
        refresh_interval_s=refresh_interval_s,
    )


async def test_unknown_subaccount_token_is_fetched_cached_and_refreshed(
    settings_factory: SettingsFactory,
) -> None:
    state = _state()
    async with serve_fake_twilio(state) as base:
        source = _source(base)
        async with serving(settings_factory(), source) as running, httpx.AsyncClient() as c:
            url = running.url(STATUS_PATH)

            async def post(token: str, sequence: int, account: str = SUB) -> int:
                params = dict(STATUS, AccountSid=account, SequenceNumber=str(sequence))
                reply = await c.post(url, data=params, headers=signed_headers(token, url, params))
                return reply.status_code

            assert await post("sub-token-1", 1) == 204
            assert await post("sub-token-1", 2) == 204
            assert state.requests["account"] == 1  # first sight only, then the cache

            assert await post("parent-token", 3) == 403  # the parent's token never signs
            state.subaccounts[SUB] = replace(state.subaccounts[SUB], auth_token="sub-token-2")
            assert await post("sub-token-2", 4) == 403  # no second lookup within a minute
            assert state.requests["account"] == 1

            tenant = source.get(SUB)
            assert tenant is not None
            assert tenant.parent_account_sid == PARENT
            published = running.published(topics.CALL_STATUS)
            assert [e.id.rsplit(":", 1)[1] for e in published] == ["1", "2"]
            assert all(e.parent_account_sid == PARENT for e in published)


async def test_rotated_token_is_picked_up_on_mismatch(settings_factory: SettingsFactory) -> None:
    state = _state()
    async with serve_fake_twilio(state) as base:
        source = _source(base, refresh_interval_s=0)
        async with serving(settings_factory(), source) as running, httpx.AsyncClient() as c:
            url = running.url(STATUS_PATH)
            params = dict(STATUS, AccountSid=SUB)
            first = await c.post(
                url, data=params, headers=signed_headers("sub-token-1", url, params)
            )
            state.subaccounts[SUB] = replace(state.subaccounts[SUB], auth_token="sub-token-2")
            rotated = await c.post(
                url, data=params, headers=signed_headers("sub-token-2", url, params)
            )
            assert (first.status_code, rotated.status_code) == (204, 204)
            assert state.requests["account"] == 2
            assert len(running.published(topics.CALL_STATUS)) == 2


async def test_accounts_that_are_not_the_parents_stay_unknown(
    settings_factory: SettingsFactory,
) -> None:
    state = _state()
    async with (
        serve_fake_twilio(state) as base,
        serving(settings_factory(), _source(base)) as running,
        httpx.AsyncClient() as c,
    ):
        url = running.url(STATUS_PATH)
        for account, token in ((STRANGER, "stranger-token"), ("AC" + "7" * 32, "x")):
            params = dict(STATUS, AccountSid=account)
            for _ in range(2):
                reply = await c.post(url, data=params, headers=signed_headers(token, url, params))
                assert (reply.status_code, reply.text) == (403, "unknown_account")
        assert state.requests["account:" + STRANGER] == 0  # the fake refuses it: 403
        assert running.published(topics.CALL_STATUS) == []
