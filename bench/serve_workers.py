"""``voicepulse serve --workers 2`` against ``--workers 1``, driven by ``voicepulse simulate``.

    .venv/bin/python -m bench.serve_workers [--rate 8000] [--seconds 10] [--rounds 2]

Each round starts ``voicepulse serve --workers 1``, then ``--workers 2`` (Kafka at
``KAFKA_BOOTSTRAP_SERVERS``, else a broker started here; a topic namespace per server), and
drives each with the load driver (``voicepulse simulate --url ... --rate R --json``: open loop,
64 keep-alive connections, signed callbacks from the traffic model) for the same time at the
same offered rate, above what one worker takes. Nothing is pinned: the workers, the driver and
the broker share the machine's cores. It prints each run's achieved rate, 2xx, errors and
latency, the ratio of the two-worker 2xx rate to the one-worker one, and checks that each
server's topic holds at least as many records as it answered 2xx and that SIGTERM stopped it
with exit code 0. The load average is printed before and after.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from typing import Any

from bench.load_driver import _drive
from bench.receiver import _count_on_topic, _free_port, _kafka, _wait_listening
from ingest.app import STATUS_PATH
from voicepulse.settings import demo_tenants_path


def _run(workers: int, bootstrap: str, data: str, rate: float, seconds: float) -> dict[str, Any]:
    """One server with ``workers``, driven at ``rate``; the driver's summary."""
    port = _free_port()
    namespace = f"bench{uuid.uuid4().hex[:6]}."
    env = dict(os.environ, VOICEPULSE_KAFKA_NAMESPACE=namespace, VOICEPULSE_LOG_LEVEL="WARNING")
    command = [
        sys.executable, "-m", "voicepulse.cli", "serve", "--port", str(port),
        "--data-dir", f"{data}/{namespace}", "--tenants-file", str(demo_tenants_path()),
        "--kafka-bootstrap-servers", bootstrap, "--workers", str(workers),
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_listening(port, server)
        summary: dict[str, Any] = _drive(
            f"http://127.0.0.1:{port}{STATUS_PATH}", rate, seconds, None
        )
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=90)
    assert code == 0, f"serve --workers {workers} exited with {code} on SIGTERM"
    on_topic = asyncio.run(_count_on_topic(bootstrap, namespace))
    assert on_topic >= summary["ok"], f"{on_topic} records on the topic for {summary['ok']} 2xx"
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=8000.0, help="offered callbacks/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rates: dict[int, list[float]] = defaultdict(list)
    with _kafka() as bootstrap, tempfile.TemporaryDirectory() as data:
        print("workers  2xx/s  2xx  errors  p50 ms  p99 ms")
        for _ in range(args.rounds):
            for workers in (1, 2):
                s = _run(workers, bootstrap, data, args.rate, args.seconds)
                ok_rate = s["ok"] / s["elapsed_s"]
                rates[workers].append(ok_rate)
                print(
                    f"{workers:7d}  {ok_rate:7,.0f}  {s['ok']:,}  {sum(s['errors'].values())}"
                    f"  {s['p50_ms'] or 0:.1f}  {s['p99_ms'] or 0:.1f}"
                )
    one, two = (sum(rates[w]) / len(rates[w]) for w in (1, 2))
    print(f"offered {args.rate:,.0f}/s for {args.seconds:.0f} s, {args.rounds} rounds")
    print(f"mean 2xx/s: 1 worker {one:,.0f}, 2 workers {two:,.0f}, ratio {two / one:.2f}x")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
