"""Simulated Twilio traffic: signed, Twilio-shaped status callbacks posted to a receiver.

Each tenant gets a traffic profile (answer rate, call lengths); every call sends the callbacks
Twilio sends, with sequence numbers from 0, RFC 2822 timestamps and ``CallDuration`` on the
terminal event, signed with the tenant's auth token by the twilio SDK's own signer.
"""

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import resources
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from ingest.tenants import Tenant, TenantRegistry

__all__ = [
    "PROFILES",
    "STATUS_PATH",
    "Profile",
    "Simulator",
    "call_callbacks",
    "demo_tenants_path",
]

STATUS_PATH = "/twilio/voice/status"

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Profile:
    """How one tenant's calls behave."""

    answer_rate: float
    busy_rate: float
    failed_rate: float
    short_call_rate: float
    mean_talk_s: float
    inbound_share: float = 0.2


PROFILES: Sequence[Profile] = (
    Profile(
        answer_rate=0.82, busy_rate=0.06, failed_rate=0.02, short_call_rate=0.05, mean_talk_s=95
    ),
    Profile(
        answer_rate=0.38, busy_rate=0.22, failed_rate=0.10, short_call_rate=0.15, mean_talk_s=60
    ),
    Profile(
        answer_rate=0.75, busy_rate=0.08, failed_rate=0.02, short_call_rate=0.55, mean_talk_s=20
    ),
)


def demo_tenants_path() -> Path:
    """The demo tenants file that ships with VoicePulse."""
    return Path(str(resources.files("voicepulse").joinpath("demo/tenants.toml")))


def call_callbacks(
    rng: random.Random, tenant: Tenant, profile: Profile, ended_at: datetime
) -> list[dict[str, str]]:
    """The status callbacks of one call, in the order Twilio sends them."""
    inbound = rng.random() < profile.inbound_share
    call_sid = "CA" + uuid.UUID(int=rng.getrandbits(128)).hex
    base = {
        "AccountSid": tenant.account_sid,
        "CallSid": call_sid,
        "ApiVersion": "2010-04-01",
        "Direction": "inbound" if inbound else "outbound-api",
        "From": f"+1415555{rng.randrange(10000):04d}",
        "To": f"+1628555{rng.randrange(10000):04d}",
        "CallbackSource": "call-progress-events",
    }
    if inbound:
        base["StirVerstat"] = rng.choice(
            ["TN-Validation-Passed-A", "TN-Validation-Passed-B", "No-TN-Validation"]
        )
    draw = rng.random()
    ring_s = rng.randint(2, 20)
    if draw < profile.answer_rate:
        if rng.random() < profile.short_call_rate:
            talk = rng.randint(1, 12)
        else:
            talk = 13 + int(rng.expovariate(1 / max(profile.mean_talk_s - 13, 1)))
        steps = [
            ("initiated", 0),
            ("ringing", 1),
            ("in-progress", ring_s),
            ("completed", ring_s + talk),
        ]
        final = {"CallDuration": str(talk), "Duration": str(-(-talk // 60))}
    else:
        if draw < profile.answer_rate + profile.busy_rate:
            status = "busy"
        elif draw < profile.answer_rate + profile.busy_rate + profile.failed_rate:
            status = "failed"
        else:
            status = "no-answer"
        steps = [("initiated", 0), ("ringing", 1), (status, ring_s)]
        final = {"CallDuration": "0", "Duration": "0"}
        if status == "no-answer":
            final["SipResponseCode"] = "487"
    started = ended_at - timedelta(seconds=steps[-1][1])
    callbacks = []
    for sequence, (status, offset) in enumerate(steps):
        params = dict(base)
        params["CallStatus"] = status
        params["SequenceNumber"] = str(sequence)
        params["Timestamp"] = format_datetime(started + timedelta(seconds=offset))
        if sequence == len(steps) - 1:
            params.update(final)
        callbacks.append(params)
    return callbacks


class Simulator:
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
        sent_calls = 0
        pending: set[asyncio.Task[None]] = set()
        try:
            while self._limit is None or sent_calls < self._limit:
                index = self._rng.randrange(len(self._tenants))
                tenant = self._tenants[index]
                profile = PROFILES[index % len(PROFILES)]
                callbacks = call_callbacks(self._rng, tenant, profile, datetime.now(UTC))
                task = asyncio.create_task(self._post_call(tenant, callbacks))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent_calls += 1
                await asyncio.sleep(self._rng.expovariate(self._rate))
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
