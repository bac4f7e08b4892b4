"""The receiver over real HTTP (uvicorn on loopback): what is accepted, what is refused.

The bus here is the in-process one; the same receiver on Kafka is covered by the integration
tests. Every refused request must leave the bus untouched.
"""

from collections.abc import AsyncIterator

import httpx
import pytest

from ingest.app import STATUS_PATH
from tests.conftest import SettingsFactory
from tests.helpers import signed_headers
from tests.ingest.support import (
    NEW_TOKEN,
    PARENT,
    PARENT_TOKEN,
    SUB,
    SUB_TOKEN,
    registry,
    serving,
)
from tests.ingest.support import STATUS as PARAMS
from tests.ingest.support import Running as Serving
from voicepulse import topics
from voicepulse.envelope import Envelope


class Running:
    """The status-callback route of a receiver serving on loopback."""

    def __init__(self, serving: Serving) -> None:
        self._serving = serving

    @property
    def url(self) -> str:
        return self._serving.url(STATUS_PATH)

    def published(self) -> list[Envelope]:
        return self._serving.published(topics.CALL_STATUS)


@pytest.fixture
async def receiver(settings_factory: SettingsFactory) -> AsyncIterator[Running]:
    async with serving(settings_factory(), registry(SUB_TOKEN, NEW_TOKEN)) as running:
        yield Running(running)


async def _post(url: str, params: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, data=params, headers=headers)


async def test_signed_callback_is_published_with_raw_parameters(receiver: Running) -> None:
    response = await _post(receiver.url, PARAMS, signed_headers(SUB_TOKEN, receiver.url, PARAMS))
    assert response.status_code == 204
    [envelope] = receiver.published()
    assert envelope.id == f"{PARAMS['CallSid']}:3"
    assert envelope.account_sid == SUB
    assert envelope.parent_account_sid == PARENT
    assert envelope.fields["timestamp"] == "2010-08-31T20:36:29+00:00"
    assert envelope.fields["call_duration"] == 42
    assert envelope.raw == PARAMS


async def test_secondary_token_is_accepted_during_rotation(receiver: Running) -> None:
    response = await _post(receiver.url, PARAMS, signed_headers(NEW_TOKEN, receiver.url, PARAMS))
    assert response.status_code == 204
    assert len(receiver.published()) == 1


async def test_url_signed_with_explicit_port_is_accepted(receiver: Running) -> None:
    assert ":" in receiver.url.split("//", 1)[1]  # the receiver's own URL carries its port
    response = await _post(receiver.url, PARAMS, signed_headers(SUB_TOKEN, receiver.url, PARAMS))
    assert response.status_code == 204


@pytest.mark.parametrize(
    ("case", "params", "token", "status", "reason"),
    [
        ("forged", PARAMS, "not-the-token", 403, "bad_signature"),
        ("signed by the parent", PARAMS, PARENT_TOKEN, 403, "bad_signature"),
        (
            "unknown account",
            dict(PARAMS, AccountSid="AC" + "2" * 32),
            SUB_TOKEN,
            403,
            "unknown_account",
        ),
        (
            "no AccountSid",
            {k: v for k, v in PARAMS.items() if k != "AccountSid"},
            SUB_TOKEN,
            400,
            "missing_account_sid",
        ),
        (
            "no CallSid",
            {k: v for k, v in PARAMS.items() if k != "CallSid"},
            SUB_TOKEN,
            400,
            "missing_call_sid",
        ),
        ("tampered", PARAMS, SUB_TOKEN, 403, "bad_signature"),
    ],
)
async def test_rejected_requests_never_reach_the_bus(
    receiver: Running,
    case: str,
    params: dict[str, str],
    token: str,
    status: int,
    reason: str,
) -> None:
    headers = signed_headers(token, receiver.url, params)
    sent = dict(params, CallStatus="busy") if case == "tampered" else params
    response = await _post(receiver.url, sent, headers)
    assert (response.status_code, response.text) == (status, reason)
    assert receiver.published() == []
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(receiver.url.replace(STATUS_PATH, "/metrics"))).text
    assert f'voicepulse_ingest_rejections_total{{reason="{reason}"}} 1.0' in metrics


async def test_malformed_body_is_400(receiver: Running) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            receiver.url,
            content=b"AccountSid=%ZZ&\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert (response.status_code, response.text) == (400, "malformed_body")
    assert receiver.published() == []


async def test_wrong_content_type_is_415(receiver: Running) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            receiver.url, content=b"<Call/>", headers={"Content-Type": "application/xml"}
        )
    assert (response.status_code, response.text) == (415, "unsupported_media_type")
    assert receiver.published() == []


async def test_oversized_body_is_413(receiver: Running) -> None:
    params = dict(PARAMS, Padding="x" * (65 * 1024))
    response = await _post(receiver.url, params, signed_headers(SUB_TOKEN, receiver.url, params))
    assert response.status_code == 413
    assert receiver.published() == []


async def test_unknown_status_is_published_and_flagged(receiver: Running) -> None:
    params = dict(PARAMS, CallStatus="teleported", Timestamp="yesterday")
    response = await _post(receiver.url, params, signed_headers(SUB_TOKEN, receiver.url, params))
    assert response.status_code == 204
    [envelope] = receiver.published()
    assert envelope.fields["flags"] == ["unknown_call_status", "unparsable_timestamp"]
    assert envelope.raw is not None
    assert envelope.raw["CallStatus"] == "teleported"


async def test_tenant_with_no_secondary_refuses_the_new_token(
    settings_factory: SettingsFactory,
) -> None:
    tenants = registry(SUB_TOKEN)
    assert len(tenants[SUB].auth_tokens) == 1
    async with serving(settings_factory(), tenants) as served:
        running = Running(served)
        headers = signed_headers(NEW_TOKEN, running.url, PARAMS)
        assert (await _post(running.url, PARAMS, headers)).status_code == 403
        assert running.published() == []
