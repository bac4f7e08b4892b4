"""``voicepulse fake-twilio``: serve a generated ISV on loopback until Ctrl-C.

Prints the credentials and the settings that point the pullers (``voicepulse run``) at it, and
can write a tenants file for its subaccounts.
"""

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from simulator.fake_twilio.generate import generate_state
from simulator.fake_twilio.server import serve_fake_twilio
from simulator.fake_twilio.state import FakeState

__all__ = ["add_parser", "run_fake_twilio", "tenants_toml"]


def add_parser(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> argparse.ArgumentParser:
    """The ``fake-twilio`` sub-command's options."""
    fake = commands.add_parser(
        "fake-twilio", help="a fake Twilio REST API (Calls, Insights, Usage) for tests and demos"
    )
    fake.add_argument("--bind", dest="fake_host", default="127.0.0.1", help="address to bind")
    fake.add_argument("--port", dest="fake_port", type=int, default=8099)
    fake.add_argument("--subaccounts", type=int, default=5)
    fake.add_argument("--calls", type=int, default=1000, help="calls over the last --days days")
    fake.add_argument("--days", type=float, default=3.0)
    fake.add_argument("--seed", type=int, default=1)
    fake.add_argument("--rate-429", type=float, default=0.0, help="share of requests given 429")
    fake.add_argument("--rate-5xx", type=float, default=0.0, help="share of requests given 503")
    fake.add_argument("--tenants-out", type=Path, default=None, help="write a tenants file here")
    return fake


def tenants_toml(state: FakeState) -> str:
    """A tenants file (ingest/tenants.py) for the fake's subaccounts."""
    blocks = ["# The fake Twilio's subaccounts (voicepulse fake-twilio); tokens are made up.\n"]
    for account in state.subaccounts.values():
        blocks.append(
            "[[tenants]]\n"
            f'account_sid = "{account.sid}"\n'
            f'name = "{account.friendly_name}"\n'
            f'parent_account_sid = "{state.parent.sid}"\n'
            f'auth_token = "{account.auth_token}"\n'
        )
    return "\n".join(blocks)


def run_fake_twilio(args: argparse.Namespace, announce: Callable[[str], None]) -> int:
    """Generate the state from ``args`` and serve it until SIGINT or SIGTERM."""
    state = generate_state(
        subaccounts=args.subaccounts, calls=args.calls, days=args.days, seed=args.seed
    )
    state.faults.rate_429 = args.rate_429
    state.faults.rate_5xx = args.rate_5xx
    if args.tenants_out is not None:
        args.tenants_out.write_text(tenants_toml(state), encoding="utf-8")
    asyncio.run(_serve(state, args.fake_host, args.fake_port, args.tenants_out, announce))
    return 0


async def _serve(
    state: FakeState,
    host: str,
    port: int,
    tenants: Path | None,
    announce: Callable[[str], None],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_fake_twilio(state, host, port) as base:
        key_sid, (secret, _) = next(iter(state.api_keys.items()))
        lines = [
            f"Fake Twilio: {base} ({len(state.subaccounts)} subaccounts, "
            f"{len(state.calls_by_sid)} calls)",
            f"Parent:      {state.parent.sid}  auth token {state.parent.auth_token}",
            f"API key:     {key_sid}  secret {secret}",
            "Pull from it:",
            f"  export VOICEPULSE_TWILIO_ACCOUNT_SID={state.parent.sid}",
            f"  export VOICEPULSE_TWILIO_AUTH_TOKEN={state.parent.auth_token}",
            f"  export VOICEPULSE_TWILIO_API_BASE_URL={base}",
            f"  export VOICEPULSE_TWILIO_INSIGHTS_BASE_URL={base}",
            f"  export VOICEPULSE_TENANTS_FILE={tenants}"
            if tenants
            else "  export VOICEPULSE_PULL_DISCOVER_SUBACCOUNTS=true",
            "Then:        .venv/bin/voicepulse run   (pulls, processes and stores; "
            "`voicepulse pull` alone needs Kafka)",
            "Stop:        Ctrl-C",
        ]
        announce("\n".join(lines))
        await stop.wait()
