"""Helpers shared by tests: signed Twilio-style requests, polling for a condition, free ports."""

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from ingest.tenants import Tenant
from voicepulse.bus import KafkaBus
from voicepulse.envelope import Envelope

T = TypeVar("T")

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]
"""Scraped samples: by sample name, by sorted labels."""


def signed_headers(token: str, url: str, params: Mapping[str, str]) -> dict[str, str]:
    """Headers as Twilio sends them, signed by the twilio SDK (the oracle, not our code)."""
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, dict(params))}


async def post_signed(
    client: httpx.AsyncClient, url: str, tenant: Tenant, params: Mapping[str, str]
) -> httpx.Response:
    headers = signed_headers(tenant.auth_tokens[0].get_secret_value(), url, params)
    return await client.post(url, data=dict(params), headers=headers)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (for a server in another process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.2,
) -> T:
    """Call ``probe`` until ``done(result)``; return that result, or fail with the last one."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s; last: {result!r}")
        await asyncio.sleep(interval_s)


async def read_topic(bootstrap: str, namespace: str, topic: str) -> list[Envelope]:
    """Every envelope on ``topic`` in ``namespace``, read by a fresh consumer group, in
    partition order (so in order per subaccount)."""
    bus = KafkaBus(bootstrap, namespace=namespace)
    consumer = bus.consumer([topic], f"test-reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        seen: list[Envelope] = []
        while True:
            batch = await consumer.poll(timeout_s=3.0, max_records=5000)
            if not batch:
                return seen
            seen.extend(Envelope.from_json(record.value) for record in batch)
    finally:
        await consumer.stop()


async def scrape_metrics(port: int) -> Samples:
    """``GET /metrics`` on loopback ``port``, parsed."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def metric_value(samples: dict[str, Any], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    found = [v for k, v in samples.get(name, {}).items() if labels.items() <= dict(k).items()]
    assert len(found) == 1, (name, labels, samples.get(name))
    return float(found[0])
