"""Health rows of simulated traffic, as the processors publish them, for the alert tests."""

import dataclasses
import random
import time
from collections.abc import Sequence

from processors.engine import EngineConfig
from processors.isv import IsvAggregator
from processors.processor import Output, Processor
from simulator import PROFILES, Profile, SimTenant, delivery, envelopes, generate
from tests.processors.kafka_run import TOPIC_OF
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope

START = 1_796_000_400  # a whole hour, epoch seconds


def profile(name: str, **changes: float) -> Profile:
    chosen = next(p for p in PROFILES if p.name == name)
    return dataclasses.replace(chosen, **changes)  # type: ignore[arg-type]


def tenant(index: int, chosen: Profile, rate: float = 1.0, cps_limit: float = 5.0) -> SimTenant:
    return SimTenant(f"AC{index:032x}", "AC" + "f" * 32, chosen, cps_limit, rate)


def health_rows(
    tenants: Sequence[SimTenant],
    seconds: int,
    *,
    seed: int = 1,
    max_delay_s: int = 0,
    duplicate_rate: float = 0.0,
    batch: int = 200,
    cps_limit: float = 5.0,
    isv_cps_limit: float = 50.0,
) -> list[Envelope]:
    """Every health row the processors publish for this traffic, in the order published
    (interim and closed rows; ISV rows after the batch that changed them), one shard, stream
    time on event time only, every window closed at the end. The processors judge CPS
    against ``cps_limit`` per subaccount and ``isv_cps_limit`` for the ISV."""
    rng = random.Random(seed)
    traffic = generate(rng, tenants, START, seconds)
    delivered = list(
        delivery(rng, envelopes(traffic), max_delay_s=max_delay_s, duplicate_rate=duplicate_rate)
    )
    processor = Processor(EngineConfig(cps_limit=lambda account: cps_limit))
    isv = IsvAggregator(cps_limit=isv_cps_limit)
    published: list[Envelope] = []

    def take(out: Output) -> None:
        changed: dict[tuple[str, str], None] = {}
        for row in out.rows:
            published.append(row)
            key = isv.add(row)
            if key is not None:
                changed[key] = None
        published.extend(isv.row(key) for key in changed)

    for first in range(0, len(delivered), batch):
        take(processor.apply_envelopes(delivered[first : first + batch]))
    processor.shard(0).advance(START + seconds + 4 * 3600 + 600)
    take(processor.drain(Output()))
    return published


async def publish_low_asr_traffic(bus: InProcessBus, seconds: int = 1200) -> str:
    """Twenty minutes of one low-ASR tenant's traffic from the last whole hour before the
    current one, published onto ``bus`` in event-time order; the tenant's account SID."""
    low = tenant(1, profile("low-asr", inbound_share=0.0), rate=1.0)
    start = int(time.time()) // 3600 * 3600 - 3600
    traffic = generate(random.Random(3), [low], start, seconds)
    for envelope in sorted(envelopes(traffic), key=_event_time):
        await bus.publish(TOPIC_OF[envelope.type], envelope.key, envelope.to_json())
    return low.account_sid


def _event_time(envelope: Envelope) -> str:
    return str(envelope.fields.get("timestamp") or envelope.fields.get("date_created") or "")
