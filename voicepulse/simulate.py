"""Simulated Twilio traffic: signed, Twilio-shaped status callbacks posted to a receiver.

:class:`Simulator` posts, in real time, the status callbacks of the traffic model in
:mod:`voicepulse.traffic` (tenant ``i`` gets ``traffic.PROFILES[i % 6]``): each callback is sent
when its Timestamp comes, with sequence numbers from 0, RFC 2822 timestamps and
``CallDuration`` on the terminal event, signed with the tenant's auth token by the twilio SDK's
own signer. :func:`write_scenario` writes a finished scenario instead: the envelopes as
delivered (with duplicates and disorder) and the ground truth of :mod:`voicepulse.truth`.
"""

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import httpx
import orjson
from twilio.request_validator import RequestValidator

from ingest.tenants import Tenant, TenantRegistry
from voicepulse import traffic
from voicepulse.envelope import epoch_iso
from voicepulse.lifecycle import Lifecycle

__all__ = ["CHUNK_S", "Simulator", "demo_tenants_path", "write_scenario"]

CHUNK_S = 5  # the simulator draws calls this many seconds ahead

logger = logging.getLogger(__name__)


def demo_tenants_path() -> Path:
    """The demo tenants file that ships with VoicePulse."""
    return Path(str(resources.files("voicepulse").joinpath("demo/tenants.toml")))


class Simulator(Lifecycle):
    """Posts simulated calls at ``calls_per_second`` until stopped or ``calls`` calls are sent.

    ``url`` is asked for on start, so a receiver on a port chosen at start can be the target.
    """

    name = "simulate"

    def __init__(
        self,
        url: Callable[[], str],
        tenants: TenantRegistry,
        *,
        calls_per_second: float,
        calls: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._target = url
        self._url = ""
        self._tenants = list(tenants.values())
        self._rate = calls_per_second
        self._limit = calls
        self._rng = random.Random(seed)
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        self.failed = 0

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        if self._task is None:
            self._url = self._target()
            self._client = httpx.AsyncClient(timeout=15)
            self._task = asyncio.create_task(self._run(), name="stage:simulate")

    async def wait(self) -> None:
        """Wait until ``calls`` calls have been sent (forever when there is no limit)."""
        if self._task is not None:
            await self._task

    async def drain(self, timeout_s: float) -> None:
        return None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _run(self) -> None:
        """Draw calls a chunk ahead; post each callback when its Timestamp comes."""
        by_sid = {t.account_sid: t for t in self._tenants}
        tenants = _sim_tenants(self._tenants, self._rate)
        queue: list[tuple[int, int, str, dict[str, str]]] = []
        order = 0
        drawn = 0
        horizon = int(time.time())
        pending: set[asyncio.Task[None]] = set()
        try:
            while self._limit is None or drawn < self._limit or queue:
                now = time.time()
                if (self._limit is None or drawn < self._limit) and horizon <= now + CHUNK_S:
                    model = traffic.generate(self._rng, tenants, horizon, CHUNK_S)
                    for call in model.calls[: None if self._limit is None else self._limit - drawn]:
                        drawn += 1
                        for params in traffic.callback_params(call):
                            at = call.callbacks[int(params["SequenceNumber"])][2]
                            heapq.heappush(queue, (at, order, call.account_sid, params))
                            order += 1
                    horizon += CHUNK_S
                while queue and queue[0][0] <= now:
                    _, _, sid, params = heapq.heappop(queue)
                    task = asyncio.create_task(self._post_call(by_sid[sid], [params]))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                wake = min(queue[0][0] if queue else horizon, horizon - CHUNK_S)
                await asyncio.sleep(min(max(wake - time.time(), 0.01), 1.0))
            if pending:
                await asyncio.gather(*pending)
        finally:
            for task in pending:
                task.cancel()

    async def _post_call(self, tenant: Tenant, callbacks: list[dict[str, str]]) -> None:
        assert self._client is not None
        signer = RequestValidator(tenant.auth_tokens[0].get_secret_value())
        for params in callbacks:
            signature = signer.compute_signature(self._url, params)
            try:
                response = await self._client.post(
                    self._url, data=params, headers={"X-Twilio-Signature": signature}
                )
            except httpx.HTTPError as exc:
                self.failed += 1
                logger.warning("simulated callback not delivered: %s", exc)
                continue
            if response.status_code >= 300:
                self.failed += 1
                logger.warning(
                    "simulated callback refused: %d %s", response.status_code, response.text
                )
            else:
                self.sent += 1


def write_scenario(
    tenants: TenantRegistry,
    envelopes_path: Path,
    truth_path: Path,
    *,
    seconds: int,
    calls_per_second: float,
    seed: int | None,
    call_timeout_s: int = 4 * 3600,
    max_delay_s: int = 60,
    duplicate_rate: float = 0.1,
) -> int:
    """Write a scenario starting now: envelopes as delivered (JSON lines) and its ground
    truth (JSON); returns the number of envelopes."""
    from voicepulse.truth import expected_rows

    rng = random.Random(seed)
    sim = _sim_tenants(list(tenants.values()), calls_per_second)
    model = traffic.generate(rng, sim, int(time.time()), seconds)
    delivered = list(
        traffic.delivery(
            rng, traffic.envelopes(model), max_delay_s=max_delay_s, duplicate_rate=duplicate_rate
        )
    )
    with envelopes_path.open("wb") as out:
        for envelope in delivered:
            out.write(envelope.to_json() + b"\n")
    truth = expected_rows(model, call_timeout_s=call_timeout_s)
    rows = [
        {"account_sid": a, "direction_group": g, "window_start": epoch_iso(start), **row}
        for (a, g, start), row in sorted(truth.items())
    ]
    truth_path.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return len(delivered)


def _sim_tenants(tenants: Sequence[Tenant], calls_per_second: float) -> list[traffic.SimTenant]:
    """Tenant ``i`` gets profile ``i`` (cycling); the rate is shared equally."""
    return [
        traffic.SimTenant(
            t.account_sid,
            t.parent_account_sid,
            traffic.PROFILES[i % len(traffic.PROFILES)],
            cps_limit=t.cps_limit,
            calls_per_second=calls_per_second / len(tenants),
        )
        for i, t in enumerate(tenants)
    ]
