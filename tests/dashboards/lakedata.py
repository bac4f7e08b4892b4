"""A warehouse for the dashboard tests: the demo tenants' traffic written by the real sink.

Every demo subaccount gets 90 minutes of outbound health windows up to ``now`` (inbound every
fifth minute), an hourly window over the week before and a window every third day over the
month, the ``ISV`` rows summed from them, four calls with their status callbacks, and alerts;
the first subaccount's usage record for today disagrees with its calls (a flagged day).
"""

import asyncio
from datetime import datetime, timedelta

from ingest.tenants import TenantRegistry
from tests.warehouse.envelopes import alert, call_fact, call_status, health, records, usage
from voicepulse.bus import InProcessBus
from voicepulse.envelope import Envelope
from voicepulse.settings import Settings
from warehouse.setup import build_sink

__all__ = ["MINUTES", "call_sids", "fill_lake"]

MINUTES = 90
_STATUSES = ("initiated", "ringing", "in-progress", "completed")


def call_sids(index: int) -> list[str]:
    return [f"CA{index:02x}{n:030x}" for n in range(4)]


def _health(sid: str, parent: str | None, index: int, now: datetime) -> list[Envelope]:
    t0 = now - timedelta(minutes=MINUTES)
    out = []
    # Recent minutes, then the week hour by hour, then the month every third day.
    minutes = [
        *range(MINUTES),
        *(-60 * h for h in range(1, 24 * 7)),
        *(-1440 * d for d in range(8, 30, 3)),
    ]
    for m in minutes:
        attempts = 3 + (index + m) % 4
        answered = attempts if index != 1 else attempts // 3  # the second one: low ASR
        out.append(
            health(
                sid,
                m,
                attempts,
                answered,
                {str(300 + index * 20): attempts},
                t0=t0,
                parent=parent,
                short_calls=answered if index == 2 else 0,
                queue_time_max_ms=20_000,
            )
        )
        if m % 5 == 0:
            out.append(
                health(
                    sid,
                    m,
                    3,
                    2,
                    {},
                    t0=t0,
                    parent=parent,
                    direction_group="inbound",
                    attestation={"A": 2, "C": 1},
                    from_numbers={},
                )
            )
    return out


def _isv(windows: list[Envelope]) -> list[Envelope]:
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for w in windows:
        key = (w.fields["direction_group"], w.fields["window_start"])
        total = sums.setdefault(key, {"attempts": 0, "answered": 0})
        total["attempts"] += w.fields["attempts"]
        total["answered"] += w.fields["answered"]
    out = []
    for (group, start), total in sums.items():
        when = datetime.fromisoformat(start)
        out.append(
            health(
                "ISV",
                0,
                total["attempts"],
                total["answered"],
                {},
                t0=when,
                parent=None,
                direction_group=group,
                cps_peak=3,
                cps_limit=10.0,
            )
        )
    return out


def _calls(sid: str, parent: str, index: int, now: datetime) -> list[Envelope]:
    out = []
    for n, call_sid in enumerate(call_sids(index)):
        created = now - timedelta(minutes=10 + 7 * n)
        out.append(
            call_fact(call_sid, 2, account=sid, created=created, cost="0.0280", parent=parent)
        )
        out.extend(
            call_status(call_sid, seq, status, account=sid, t0=created, parent=parent)
            for seq, status in enumerate(_STATUSES)
        )
    return out


def envelopes(tenants: TenantRegistry, now: datetime) -> list[Envelope]:
    out: list[Envelope] = []
    windows: list[Envelope] = []
    t0 = now - timedelta(minutes=MINUTES)
    for index, (sid, tenant) in enumerate(tenants.items()):
        parent = tenant.parent_account_sid or sid
        windows.extend(_health(sid, parent, index, now))
        out.extend(_calls(sid, parent, index, now))
        if index == 1:
            out.append(alert("asr_low", "firing", 30, account=sid, t0=t0, parent=parent))
        if index == 2:
            out.append(alert("short_calls_high", "firing", 20, account=sid, t0=t0, parent=parent))
            out.append(alert("short_calls_high", "resolved", 50, account=sid, t0=t0, parent=parent))
    first, tenant = next(iter(tenants.items()))
    out.append(
        usage(
            first, now.date().isoformat(), "5", "0.0700", parent=tenant.parent_account_sid or first
        )
    )
    return [*windows, *_isv(windows), *out]


def fill_lake(settings: Settings, tenants: TenantRegistry, now: datetime) -> None:
    """Write the test traffic through the sink into the lake of ``settings``."""

    async def write() -> None:
        bus = InProcessBus()
        await bus.start()
        sink, con = build_sink(settings, bus, tenants)
        try:
            await sink.handle(records(envelopes(tenants, now)))
            await sink.flush()
        finally:
            con.close()
            await bus.stop()

    asyncio.run(write())
