"""The receiver over real HTTP accepts exactly what the twilio SDK's RequestValidator accepts.

A receiver runs on loopback (uvicorn in a thread of its own, in-process bus). Hypothesis draws
status callbacks with extra parameters (repeated names, unicode values, empty values) and query
strings, signs them with the SDK for the URL with or without the port, with another token, or
over other parameters, and posts them; the receiver answers 204 exactly when the SDK's
``validate`` (given the parameters as the receiver's own form parser sees them) says valid.
"""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode, urlparse

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from twilio.request_validator import RequestValidator, add_port, remove_port

from ingest.app import STATUS_PATH, create_app
from ingest.server import HttpServerStage
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant, TenantRegistry
from tests.ingest.test_signature_oracle import MultiParams
from voicepulse.bus import InProcessBus
from voicepulse.settings import Settings

SUB = "AC" + "1" * 32
TOKEN = "receiver-oracle-token"


class _Background:
    """A receiver served from a thread with its own event loop, for synchronous tests."""

    def __init__(self, data_dir: Path) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._data_dir = data_dir
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tenant = Tenant(SUB, "sub", None, 1.0, (SecretStr(TOKEN),))
        settings = Settings(data_dir=self._data_dir, port=0, demo=False)
        bus = InProcessBus()
        await bus.start()
        app = create_app(settings, bus, TenantSource(TenantRegistry({SUB: tenant})))
        server = HttpServerStage("serve", app, "127.0.0.1", 0)
        await server.start()
        self.port = server.port
        self._ready.set()
        await self._stop.wait()
        await server.stop()
        await bus.stop()

    def __enter__(self) -> "_Background":
        self._thread.start()
        assert self._ready.wait(30), "the receiver did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Background]:
    with _Background(tmp_path_factory.mktemp("oracle")) as running:
        yield running


_VALUE = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc"], max_codepoint=0x1F600), max_size=10
)
_NAME = st.sampled_from(["To", "From", "Zoë", "a", "A", "Digits", "Ω", "x y"])
_QUERY = st.lists(st.tuples(st.sampled_from(["t", "Tenant", "é"]), _VALUE), max_size=2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.lists(st.tuples(_NAME, _VALUE), max_size=6),
    query=_QUERY,
    kind=st.sampled_from(["without_port", "with_port", "other_token", "other_params"]),
)
def test_receiver_agrees_with_the_sdk(
    receiver: _Background, extra: list[tuple[str, str]], query: list[tuple[str, str]], kind: str
) -> None:
    raw_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    url = f"http://127.0.0.1:{receiver.port}{STATUS_PATH}" + (f"?{raw_query}" if raw_query else "")
    pairs = [("AccountSid", SUB), ("CallSid", "CA" + "a" * 32), *extra]
    params = MultiParams(pairs)
    parsed = urlparse(url)
    signed_url = add_port(parsed) if kind == "with_port" else remove_port(parsed)
    signed_params = MultiParams([*pairs, ("Extra", "1")]) if kind == "other_params" else params
    token = "not-the-token" if kind == "other_token" else TOKEN
    signature = RequestValidator(token).compute_signature(signed_url, signed_params)
    expected = RequestValidator(TOKEN).validate(url, params, signature)
    response = httpx.post(
        url,
        content=urlencode(pairs).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert response.status_code == (204 if expected else 403), response.text
    assert expected == (kind in ("without_port", "with_port"))
