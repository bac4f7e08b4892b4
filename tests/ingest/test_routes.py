"""Every route and signature case over real HTTP (uvicorn on loopback), the bus in-process.

Covers GET and JSON (bodySHA256) callbacks, the shared-key scheme, the debugger webhook, the
dialer's ``POST /v1/calls``, proxies (trusted, untrusted, a real rewriting proxy hop), the
health routes and the metrics. Every refused request leaves the bus untouched.
"""

import hashlib
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from ingest.app import STATUS_PATH
from ingest.server import HttpServerStage
from tests.conftest import SettingsFactory
from tests.helpers import signed_headers
from tests.ingest.support import (
    OTHER,
    PARENT,
    PARENT_TOKEN,
    STATUS,
    SUB,
    SUB_TOKEN,
    Running,
    registry,
    serving,
)
from voicepulse import topics

API_KEY = "dialer-key-0123456789"


@pytest.fixture
async def running(settings_factory: SettingsFactory) -> AsyncIterator[Running]:
    settings = settings_factory(
        ingest_api_key_sha256=[hashlib.sha256(API_KEY.encode()).hexdigest()],
        webhook_shared_keys={"webhooks_sharedkey_1": SecretStr("shared-secret")},
    )
    async with serving(settings, registry()) as running:
        yield running


async def test_get_callback_signs_the_url_alone(running: Running) -> None:
    url = running.url(STATUS_PATH) + "?" + urlencode(STATUS)
    signature = RequestValidator(SUB_TOKEN).compute_signature(url, {})
    async with httpx.AsyncClient() as client:
        ok = await client.get(url, headers={"X-Twilio-Signature": signature})
        tampered = await client.get(
            url.replace("completed", "busy"), headers={"X-Twilio-Signature": signature}
        )
    assert ok.status_code == 204
    assert (tampered.status_code, tampered.text) == (403, "bad_signature")
    [envelope] = running.published(topics.CALL_STATUS)
    assert envelope.raw == STATUS


async def test_json_callback_checks_body_hash(running: Running) -> None:
    body = orjson.dumps(STATUS)
    url = running.url(STATUS_PATH) + f"?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {
        "X-Twilio-Signature": RequestValidator(SUB_TOKEN).compute_signature(url, {}),
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient() as client:
        ok = await client.post(url, content=body, headers=headers)
        swapped = await client.post(
            url, content=body.replace(b"completed", b"busy"), headers=headers
        )
    assert ok.status_code == 204
    assert (swapped.status_code, swapped.text) == (403, "bad_signature")
    assert [e.fields["call_status"] for e in running.published(topics.CALL_STATUS)] == ["completed"]


async def test_shared_key_scheme(running: Running) -> None:
    url = running.url(STATUS_PATH)
    validator = RequestValidator("shared-secret")

    def headers(key: str, algorithm: str) -> dict[str, str]:
        return {
            "X-Twilio-Signature": validator.compute_signature(url, STATUS, "HMAC_SHA256"),
            "X-Twilio-Webhooks-Signature-Settings": f"key={key},algorithm={algorithm}",
        }

    async with httpx.AsyncClient() as client:
        ok = await client.post(
            url, data=STATUS, headers=headers("webhooks_sharedkey_1", "HMAC_SHA256")
        )
        unknown = await client.post(url, data=STATUS, headers=headers("nope", "HMAC_SHA256"))
        md5 = await client.post(
            url, data=STATUS, headers=headers("webhooks_sharedkey_1", "HMAC_MD5")
        )
    assert ok.status_code == 204
    assert (unknown.status_code, unknown.text) == (403, "unknown_shared_key")
    assert (md5.status_code, md5.text) == (403, "unsupported_signature_algorithm")
    assert len(running.published(topics.CALL_STATUS)) == 1


def _debugger_event(**overrides: str) -> dict[str, str]:
    payload = {
        "resource_sid": "CA" + "b" * 32,
        "service_sid": None,
        "error_code": "32001",
        "more_info": {"msg": "SIP trunk CPS exceeded"},
    }
    event = {
        "Sid": "NO" + "c" * 32,
        "AccountSid": SUB,
        "ParentAccountSid": PARENT,
        "Timestamp": "2026-11-26T10:05:00.123Z",
        "Level": "ERROR",
        "PayloadType": "application/json",
        "Payload": orjson.dumps(payload).decode(),
    }
    event.update(overrides)
    return event


async def test_debugger_event_is_published(running: Running) -> None:
    url = running.url("/twilio/debugger")
    event = _debugger_event()
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data=event, headers=signed_headers(SUB_TOKEN, url, event))
    assert response.status_code == 204
    [envelope] = running.published(topics.DEBUGGER)
    assert envelope.id == event["Sid"]
    assert envelope.type == "debugger-event"
    assert envelope.parent_account_sid == PARENT
    assert envelope.fields["level"] == "error"
    assert envelope.fields["timestamp"] == "2026-11-26T10:05:00.123000+00:00"
    assert envelope.fields["error_code"] == "32001"
    assert envelope.fields["resource_sid"] == "CA" + "b" * 32
    assert envelope.fields["service_sid"] is None
    assert envelope.fields["more_info"] == '{"msg":"SIP trunk CPS exceeded"}'
    assert envelope.fields["flags"] == []
    assert envelope.raw == event


async def test_debugger_odd_event_is_flagged_and_parent_may_sign(running: Running) -> None:
    url = running.url("/twilio/debugger")
    event = _debugger_event(Payload="{not json", Timestamp="yesterday", Level="Notice")
    no_sid = {k: v for k, v in _debugger_event().items() if k != "Sid"}
    async with httpx.AsyncClient() as client:
        ok = await client.post(url, data=event, headers=signed_headers(PARENT_TOKEN, url, event))
        missing = await client.post(
            url, data=no_sid, headers=signed_headers(SUB_TOKEN, url, no_sid)
        )
    assert ok.status_code == 204
    assert (missing.status_code, missing.text) == (400, "missing_sid")
    [envelope] = running.published(topics.DEBUGGER)
    assert envelope.fields["flags"] == [
        "unknown_level",
        "unparsable_payload",
        "unparsable_timestamp",
    ]
    assert envelope.fields["payload"] is None


def _call_resource(sid_char: str, account: str = SUB) -> dict[str, object]:
    return {
        "sid": "CA" + sid_char * 32,
        "account_sid": account,
        "status": "queued",
        "direction": "outbound-api",
        "from": "+14155550100",
        "to": "+16285550100",
        "queue_time": "1500",
        "duration": None,
        "price": "-0.0130",
        "price_unit": "usd",
        "date_created": "Thu, 26 Nov 2026 10:05:00 +0000",
        "start_time": None,
        "end_time": None,
        "parent_call_sid": None,
        "trunk_sid": None,
    }


async def test_dialer_posts_call_resources(running: Running) -> None:
    url = running.url("/v1/calls")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient() as client:
        one = await client.post(url, json=_call_resource("1"), headers=auth)
        many = await client.post(
            url, json=[_call_resource("2"), _call_resource("3", OTHER)], headers=auth
        )
    assert (one.status_code, one.json()) == (202, {"accepted": 1})
    assert (many.status_code, many.json()) == (202, {"accepted": 2})
    envelopes = running.published(topics.TWILIO_CALLS)
    assert [e.fields["call_sid"][2] for e in envelopes] == ["1", "2", "3"]
    first = envelopes[0]
    assert first.type == "call-resource"
    assert first.id.startswith("CA" + "1" * 32 + ":")
    assert first.parent_account_sid == PARENT
    assert first.fields["origin"] == "dialer"
    assert first.fields["queue_time_ms"] == 1500
    assert first.fields["cost"] == "0.0130"
    assert first.fields["price_unit"] == "USD"
    assert first.fields["date_created"] == "2026-11-26T10:05:00+00:00"
    assert first.fields["duration_s"] is None
    assert first.raw == _call_resource("1")


@pytest.mark.parametrize(
    ("case", "headers", "content", "status", "reason"),
    [
        ("no key", {}, orjson.dumps(_call_resource("1")), 401, "missing_api_key"),
        ("wrong key", {"Authorization": "Bearer nope"}, b"{}", 403, "bad_api_key"),
        ("not JSON", {"Content-Type": "text/plain"}, b"x", 415, "unsupported_media_type"),
        ("malformed", {}, b"[1, 2]", 400, "malformed_body"),
        ("no sid", {}, orjson.dumps({"account_sid": SUB}), 400, "missing_call_sid"),
        (
            "unknown account",
            {},
            orjson.dumps(_call_resource("1", "AC" + "5" * 32)),
            403,
            "unknown_account",
        ),
        (
            "one bad in many",
            {},
            orjson.dumps([_call_resource("1"), {"sid": "CA1"}]),
            400,
            "missing_account_sid",
        ),
    ],
)
async def test_dialer_rejections(
    running: Running, case: str, headers: dict[str, str], content: bytes, status: int, reason: str
) -> None:
    sent = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    sent.update(headers)
    if case == "no key":
        del sent["Authorization"]
    async with httpx.AsyncClient() as client:
        response = await client.post(running.url("/v1/calls"), content=content, headers=sent)
    assert (response.status_code, response.text) == (status, reason)
    assert running.published(topics.TWILIO_CALLS) == []


async def test_chunked_oversized_body_is_413(running: Running) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"AccountSid=" + SUB.encode() + b"&Padding="
        for _ in range(20):
            yield b"x" * 8192

    async with httpx.AsyncClient() as client:
        response = await client.post(
            running.url(STATUS_PATH),
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert (response.status_code, response.text) == (413, "body_too_large")
    assert running.published(topics.CALL_STATUS) == []


async def test_health_and_metrics(running: Running) -> None:
    async with httpx.AsyncClient() as client:
        healthz = await client.get(running.url("/healthz"))
        readyz = await client.get(running.url("/readyz"))
        await client.post(
            running.url(STATUS_PATH), data=STATUS, headers={"X-Twilio-Signature": "x"}
        )
        url = running.url(STATUS_PATH)
        await client.post(url, data=STATUS, headers=signed_headers(SUB_TOKEN, url, STATUS))
        metrics = (await client.get(running.url("/metrics"))).text
    assert (healthz.status_code, readyz.status_code) == (200, 200)
    assert 'voicepulse_ingest_requests_total{outcome="accepted",route="status"} 1.0' in metrics
    assert 'voicepulse_ingest_requests_total{outcome="rejected_403",route="status"} 1.0' in metrics
    assert 'voicepulse_ingest_rejections_total{reason="bad_signature"} 1.0' in metrics
    assert 'voicepulse_ingest_publish_seconds_count{where="bus"} 1.0' in metrics
    assert "voicepulse_ingest_bus_up 1.0" in metrics
    assert "voicepulse_ingest_spool_records 0.0" in metrics
    assert "voicepulse_ingest_tenants 3.0" in metrics
    assert SUB_TOKEN not in metrics


PUBLIC = "https://voice.example.com:8443" + STATUS_PATH


async def test_forwarded_headers_from_a_trusted_proxy(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(trusted_proxies=["127.0.0.0/8"])
    async with serving(settings, registry()) as running, httpx.AsyncClient() as client:
        headers = signed_headers(SUB_TOKEN, PUBLIC, STATUS)
        x_forwarded = await client.post(
            running.url(STATUS_PATH),
            data=STATUS,
            headers={
                **headers,
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "voice.example.com",
                "X-Forwarded-Port": "8443",
            },
        )
        forwarded = await client.post(
            running.url(STATUS_PATH),
            data=STATUS,
            headers={
                **headers,
                "Forwarded": "for=192.0.2.1;proto=http;host=evil.example, "
                'for=192.0.2.60;proto=https;host="voice.example.com:8443"',
            },
        )
        spoofed_left = await client.post(
            running.url(STATUS_PATH),
            data=STATUS,
            headers={
                **signed_headers(SUB_TOKEN, "https://evil.example" + STATUS_PATH, STATUS),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil.example, voice.example.com:8443",
            },
        )
    assert x_forwarded.status_code == 204
    assert forwarded.status_code == 204
    assert (spoofed_left.status_code, spoofed_left.text) == (403, "bad_signature")


async def test_untrusted_client_cannot_forge_forwarded_host(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(trusted_proxies=["10.0.0.0/8"])
    forged_url = "https://evil.example" + STATUS_PATH
    async with serving(settings, registry()) as running, httpx.AsyncClient() as client:
        response = await client.post(
            running.url(STATUS_PATH),
            data=STATUS,
            headers={
                **signed_headers(SUB_TOKEN, forged_url, STATUS),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil.example",
            },
        )
        assert (response.status_code, response.text) == (403, "bad_signature")
        assert running.published(topics.CALL_STATUS) == []


async def test_untrusted_client_cannot_forge_forwarded_proto(
    settings_factory: SettingsFactory,
) -> None:
    # The client is on loopback, which the HTTP server itself must not trust either: only the
    # configured proxies may say which scheme Twilio used.
    settings = settings_factory(trusted_proxies=["10.0.0.0/8"])
    async with serving(settings, registry()) as running, httpx.AsyncClient() as client:
        as_https = running.url(STATUS_PATH).replace("http://", "https://")
        response = await client.post(
            running.url(STATUS_PATH),
            data=STATUS,
            headers={
                **signed_headers(SUB_TOKEN, as_https, STATUS),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-For": "203.0.113.9",
            },
        )
        assert (response.status_code, response.text) == (403, "bad_signature")
        assert running.published(topics.CALL_STATUS) == []


async def test_configured_public_base_url_wins(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(
        public_base_url="https://voice.example.com:8443/", trusted_proxies=["127.0.0.1"]
    )
    async with serving(settings, registry()) as running, httpx.AsyncClient() as client:
        response = await client.post(
            running.url(STATUS_PATH) + "?tenant=a%20b",
            data=STATUS,
            headers={
                **signed_headers(SUB_TOKEN, PUBLIC + "?tenant=a%20b", STATUS),
                "X-Forwarded-Host": "evil.example",
            },
        )
    assert response.status_code == 204


def _rewriting_proxy(upstream: str) -> Starlette:
    """A TLS-terminator stand-in: forwards to ``upstream`` and says what Twilio called."""

    async def forward(request: Request) -> Response:
        async with httpx.AsyncClient() as client:
            reply = await client.request(
                request.method,
                upstream
                + request.url.path
                + (f"?{request.url.query}" if request.url.query else ""),
                content=await request.body(),
                headers={
                    "Content-Type": request.headers.get("content-type", ""),
                    "X-Twilio-Signature": request.headers.get("x-twilio-signature", ""),
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "voice.example.com",
                    "X-Forwarded-Port": "8443",
                },
            )
        return Response(reply.content, reply.status_code)

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])


async def test_through_a_proxy_that_rewrites_scheme_host_and_port(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory(trusted_proxies=["127.0.0.1"])
    async with serving(settings, registry()) as running:
        proxy = HttpServerStage("proxy", _rewriting_proxy(running.base), "127.0.0.1", 0)
        await proxy.start()
        try:
            async with httpx.AsyncClient() as client:
                via_proxy = f"http://127.0.0.1:{proxy.port}{STATUS_PATH}"
                ok = await client.post(
                    via_proxy, data=STATUS, headers=signed_headers(SUB_TOKEN, PUBLIC, STATUS)
                )
                internal_url = await client.post(
                    via_proxy,
                    data=STATUS,
                    headers=signed_headers(SUB_TOKEN, running.url(STATUS_PATH), STATUS),
                )
        finally:
            await proxy.stop()
        assert ok.status_code == 204
        assert internal_url.status_code == 403
        assert len(running.published(topics.CALL_STATUS)) == 1
