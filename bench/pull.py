"""Pull throughput: ``voicepulse pull --once`` against a bare HTTP client reading the same pages.

Both read the same fake Twilio on loopback (uvicorn, in a process of its own so that it does not
share the event loop with either side): every page of Calls, Insights summaries and daily Usage
records of every subaccount, with the same page sizes and the same concurrency. The baseline
only fetches and parses JSON (aiohttp); the puller goes through the twilio SDK, builds envelopes,
compares digests in its SQLite store and publishes (in-process bus by default; Kafka when
``KAFKA_BOOTSTRAP_SERVERS`` is set). Each round starts from an empty store, so the puller does
its full first-run work. Reports records per second of each and their ratio.

    python -m bench.pull [--subaccounts 20] [--calls 6000] [--rounds 2]
"""

import argparse
import asyncio
import base64
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from ingest.pollers import pull_once
from voicepulse.settings import Settings

CATEGORIES = ["calls", "calls-inbound", "calls-outbound", "calls-sip", "trunking-termination"]


def _start_fake(port: int, subaccounts: int, calls: int, tenants: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "voicepulse.cli", "fake-twilio", "--port", str(port),
        "--subaccounts", str(subaccounts), "--calls", str(calls), "--days", "2",
        "--tenants-out", str(tenants),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)


def _read_exports(process: subprocess.Popen[str]) -> dict[str, str]:
    assert process.stdout is not None
    found: dict[str, str] = {}
    while "VOICEPULSE_TWILIO_INSIGHTS_BASE_URL" not in found:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the fake Twilio exited")
        if "export " in line:
            name, _, value = line.strip().removeprefix("export ").partition("=")
            found[name] = value
    return found


async def _baseline(env: dict[str, str], accounts: list[str], concurrency: int) -> int:
    base = env["VOICEPULSE_TWILIO_API_BASE_URL"]
    user, token = env["VOICEPULSE_TWILIO_ACCOUNT_SID"], env["VOICEPULSE_TWILIO_AUTH_TOKEN"]
    auth = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    since = datetime.now(UTC) - timedelta(days=3)
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:

        async def pages(url: str, params: dict[str, str] | None) -> int:
            count = 0
            next_url: str | None = url
            while next_url:
                async with session.get(next_url, params=params) as response:
                    body: dict[str, Any] = await response.json()
                params = None
                meta = body.get("meta")
                key = (
                    meta["key"] if meta else next(k for k, v in body.items() if isinstance(v, list))
                )
                count += len(body[key])
                if meta:
                    next_url = meta["next_page_url"]
                else:
                    uri = body["next_page_uri"]
                    next_url = f"{base}{uri}" if uri else None
            return count

        async def one(sid: str) -> int:
            async with gate:
                api = f"{base}/2010-04-01/Accounts/{sid}"
                day = f"{since.date()}"
                count = await pages(f"{api}/Calls.json", {"StartTime>": day, "PageSize": "200"})
                count += await pages(
                    f"{base}/v1/Voice/Summaries",
                    {"Subaccount": sid, "StartTime": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "ProcessingState": "all", "PageSize": "1000"},
                )  # fmt: skip
                for category in CATEGORIES:
                    count += await pages(
                        f"{api}/Usage/Records/Daily.json",
                        {"Category": category, "StartDate": day, "IncludeSubaccounts": "false",
                         "PageSize": "1000"},
                    )  # fmt: skip
                return count

        return sum(await asyncio.gather(*(one(sid) for sid in accounts)))


async def _puller(env: dict[str, str], tenants: Path, concurrency: int) -> int:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            data_dir=Path(data),
            kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            twilio_account_sid=env["VOICEPULSE_TWILIO_ACCOUNT_SID"],
            twilio_auth_token=env["VOICEPULSE_TWILIO_AUTH_TOKEN"],
            twilio_api_base_url=env["VOICEPULSE_TWILIO_API_BASE_URL"],
            twilio_insights_base_url=env["VOICEPULSE_TWILIO_INSIGHTS_BASE_URL"],
            pull_discover_subaccounts=True,
            pull_concurrency=concurrency,
            pull_usage_categories=CATEGORIES,
            pull_metrics_port=None,
        )
        namespace = f"bench{time.monotonic_ns()}."
        puller = await pull_once(settings, None, namespace=namespace)
        assert puller.failing() == [], puller.failing()
        published = puller.metrics.published
        return int(sum(published.labels(r)._value.get() for r in ("calls", "insights", "usage")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subaccounts", type=int, default=20)
    parser.add_argument("--calls", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--port", type=int, default=18199)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tenants = Path(scratch) / "tenants.toml"
        fake = _start_fake(args.port, args.subaccounts, args.calls, tenants)
        try:
            env = _read_exports(fake)
            from ingest.tenants import load_tenants

            accounts = list(load_tenants(tenants))
            results: dict[str, list[float]] = {"baseline": [], "puller": []}
            for _ in range(args.rounds):
                for name in ("baseline", "puller"):
                    started = time.perf_counter()
                    if name == "baseline":
                        records = asyncio.run(_baseline(env, accounts, args.concurrency))
                    else:
                        records = asyncio.run(_puller(env, tenants, args.concurrency))
                    elapsed = time.perf_counter() - started
                    results[name].append(records / elapsed)
                    print(f"{name:9} {records:7d} records in {elapsed:6.2f} s: "
                          f"{records / elapsed:8.0f} records/s")  # fmt: skip
        finally:
            fake.send_signal(signal.SIGINT)
            fake.wait(30)
    best = {name: max(rates) for name, rates in results.items()}
    bus = "Kafka" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "in-process bus"
    print(f"best of {args.rounds}: baseline {best['baseline']:.0f} records/s, "
          f"puller ({bus}) {best['puller']:.0f} records/s, "
          f"ratio {best['puller'] / best['baseline']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
