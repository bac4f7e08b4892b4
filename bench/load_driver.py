"""``voicepulse simulate`` as a load driver against a bare Starlette handler, at increasing rates.

    .venv/bin/python -m bench.load_driver [--rates 1000,2500,5000,7500,10000] [--seconds 8]
        [--server-workers 1]

The bare handler of bench/receiver.py (parses the form, answers 204) runs on uvicorn in its own
process on loopback (``--server-workers`` uvicorn workers: with more than one the server is not
pinned and can use every core, so that it, not the driver, has room to spare). For each rate,
``voicepulse simulate --url ... --rate R --json`` runs as its own process (open loop, 64
keep-alive connections, signed callbacks from the traffic model) and its summary gives the
achieved rate, the late sends, latency p50/p99, the driver's own CPU per request, and how busy
that kept the driver's core. With two cores or more the driver is pinned to the first core
(and a one-worker server to the last), so "from one core" is what is measured.

Baseline, in the same run: the client the simulator used before (httpx.AsyncClient, 64
concurrent posters, closed loop, requests signed beforehand), as fast as it goes against the
same server: the ratio says what the lean client buys. The load average is printed before and
after: the machine is shared, so read every figure beside it.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from urllib.parse import urlencode

import httpx
import orjson

from bench.receiver import _free_port, _wait_listening
from ingest.app import STATUS_PATH
from ingest.signature import form_payload, sign
from ingest.tenants import load_tenants
from simulator import traffic
from voicepulse.settings import demo_tenants_path


def _cores() -> tuple[set[int] | None, set[int] | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[-1]}


def _drive(url: str, rate: float, seconds: float, cpus: set[int] | None) -> dict[str, object]:
    command = [
        sys.executable, "-m", "voicepulse.cli", "simulate", "--url", url, "--rate", str(rate),
        "--seconds", str(seconds), "--connections", "64", "--json", "--seed", "1",
        "--progress-every", "5",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    if cpus is not None:
        os.sched_setaffinity(process.pid, cpus)
    out, _ = process.communicate(timeout=seconds + 60)
    summary: dict[str, object] = orjson.loads(out.splitlines()[-1])
    return summary


def _signed_bodies(url: str, count: int) -> list[tuple[bytes, str]]:
    tenants = list(load_tenants(demo_tenants_path()).values())
    call = traffic.one_call(
        __import__("random").Random(1),
        traffic.SimTenant(tenants[0].account_sid, None, traffic.PROFILES[0]),
        int(time.time()),
    )
    token = tenants[0].auth_tokens[0].get_secret_value()
    made = []
    for i in range(count):
        params = traffic.callback(call, i % len(call.callbacks), traffic.rfc2822(int(time.time())))
        made.append((urlencode(params).encode(), sign(token, url, form_payload(params.items()))))
    return made


async def _httpx_rate(url: str, seconds: float) -> float:
    """Requests/s of 64 concurrent httpx posters, closed loop, pre-signed bodies."""
    bodies = _signed_bodies(url, 1000)
    done = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=15) as client:

        async def poster(offset: int) -> None:
            nonlocal done
            i = offset
            while time.monotonic() < stop:
                body, signature = bodies[i % len(bodies)]
                headers = {
                    "X-Twilio-Signature": signature,
                    "Content-Type": "application/x-www-form-urlencoded",
                }
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()
                done += 1
                i += 64

        started = time.monotonic()
        await asyncio.gather(*(poster(i) for i in range(64)))
        return done / (time.monotonic() - started)


def _httpx_baseline(url: str, seconds: float, cpus: set[int] | None) -> float:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    try:
        import uvloop

        return uvloop.run(_httpx_rate(url, seconds))
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2500,5000,7500,10000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--server-workers",
        type=int,
        default=1,
        help="uvicorn workers of the bare server (more than one: not pinned, on every core)",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    driver_cpus, server_cpus = _cores()
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    port = _free_port()
    url = f"http://127.0.0.1:{port}{STATUS_PATH}"
    server_cmd = [
        sys.executable, "-m", "uvicorn", "bench.receiver:bare_app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(args.server_workers), "--log-level", "warning",
        "--no-access-log", "--no-proxy-headers",
    ]  # fmt: skip
    server = subprocess.Popen(server_cmd)
    if server_cpus is not None and args.server_workers == 1:
        os.sched_setaffinity(server.pid, server_cpus)
    try:
        _wait_listening(port, server)
        baseline = _httpx_baseline(url, args.seconds, driver_cpus)
        print(f"baseline httpx.AsyncClient, 64 posters, closed loop: {baseline:,.0f} req/s")
        print(
            "target/s  achieved/s  ratio-to-httpx  2xx  errors  late  p50 ms  p99 ms"
            "  driver CPU us/req  driver busy"
        )
        for rate in rates:
            s = _drive(url, rate, args.seconds, driver_cpus)
            achieved = float(s["rate"])  # type: ignore[arg-type]
            cpu_us = float(s["cpu_us_per_request"])  # type: ignore[arg-type]
            print(
                f"{rate:8,.0f}  {achieved:10,.0f}  {achieved / baseline:13.2f}x  {s['ok']}"
                f"  {s['errors'] or 0}  {s['late']}  {s['p50_ms']:.1f}  {s['p99_ms']:.1f}"
                f"  {cpu_us:.0f}  {cpu_us * achieved / 1e4:.0f} %"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
