"""Signed status callbacks against the receiver (durable Kafka ack) and a bare Starlette handler.

    .venv/bin/python -m bench.receiver [--seconds 5] [--rounds 2] [--connections 64] [--pin]

Both servers run as their own process with one uvicorn worker on loopback:

- receiver: ``voicepulse serve`` as shipped: signature check, envelope, 2xx only after Kafka
  acknowledged the event (acks=all, idempotent producer);
- baseline: a Starlette handler that only parses the form (with the same parser) and answers
  204;
- for diagnosis, the same receiver on the in-process bus (no Kafka): what the receiver's own
  work costs, apart from waiting for Kafka's acknowledgement.

One load generator (an asyncio HTTP/1.1 client on uvloop, keep-alive, ``--connections``
connections, each sending its next request as soon as the last one is answered) sends the same
signed callbacks to both, alternating rounds, and reports requests/s, p50 and p99 latency for
each and the ratio of their throughputs. Afterwards it checks that every request the receiver
answered 2xx is on the topic. It also times the signature check alone against the twilio SDK,
and the CPU time per request of both apps called as ASGI apps in a loop (no HTTP, no Kafka:
the receiver on the in-process bus), and prints the load average before and after.

Kafka: ``KAFKA_BOOTSTRAP_SERVERS``, else a broker started here with scripts/kafka/kafka.

``--pin`` gives each server a core of its own (the last one) and keeps the load generator and
the broker started here on the others, as in production, where the broker runs elsewhere:
without it the broker's share of the work runs on the receiver's core, which the bare handler
never pays.
"""

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.app import STATUS_PATH
from ingest.signature import form_payload, sign, verify
from ingest.tenants import Tenant, load_tenants
from voicepulse.settings import demo_tenants_path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "scripts" / "kafka" / "kafka"


async def _bare_handler(request: Request) -> Response:
    # The same form parser the receiver uses (starlette's request.form() needs python-multipart).
    parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=True)
    return Response(status_code=204)


bare_app = Starlette(routes=[Route(STATUS_PATH, _bare_handler, methods=["POST"])])


def _callback(tenant: Tenant, call: str, sequence: int) -> dict[str, str]:
    return {
        "AccountSid": tenant.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call,
        "CallStatus": "completed",
        "CallDuration": "42",
        "Called": "+16285550100",
        "Caller": "+14155550100",
        "CallbackSource": "call-progress-events",
        "Direction": "outbound-api",
        "From": "+14155550100",
        "FromCountry": "US",
        "SequenceNumber": str(sequence),
        "Timestamp": "Thu, 26 Nov 2026 10:05:00 +0000",
        "To": "+16285550100",
        "ToCountry": "US",
    }


def requests_for(port: int, tenants: list[Tenant], count: int) -> list[bytes]:
    """``count`` distinct signed callbacks as raw HTTP/1.1 requests to ``port``."""
    url = f"http://127.0.0.1:{port}{STATUS_PATH}"
    rng = random.Random(port)
    made = []
    for i in range(count):
        tenant = rng.choice(tenants)
        params = _callback(tenant, f"CA{uuid.UUID(int=rng.getrandbits(128)).hex}", i % 7)
        token = tenant.auth_tokens[0].get_secret_value()
        signature = sign(token, url, form_payload(params.items()))
        body = urlencode(params).encode()
        head = (
            f"POST {STATUS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n\r\n"
        )
        made.append(head.encode() + body)
    return made


class _Connection(asyncio.Protocol):
    """One keep-alive connection that sends a request whenever the last one is answered."""

    def __init__(self, load: "_Load") -> None:
        self._load = load
        self._buffer = b""
        self._sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        if self._load.stopping or self.transport is None:
            return
        self._sent = time.perf_counter()
        self.transport.write(self._load.next_request())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            self._load.done(int(head[9:12]), time.perf_counter() - self._sent)
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        self._load.lost += 1


@dataclass
class _Load:
    requests: list[bytes]
    measuring: bool = False
    stopping: bool = False
    lost: int = 0
    index: int = 0

    def __post_init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    def next_request(self) -> bytes:
        self.index += 1
        return self.requests[self.index % len(self.requests)]

    def done(self, status: int, latency: float) -> None:
        if self.measuring:
            self.latencies.append(latency)
            self.statuses[status] = self.statuses.get(status, 0) + 1


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    sent: int


async def run_load(port: int, requests: list[bytes], connections: int, seconds: float) -> Result:
    """Drive ``port`` with ``connections`` connections: 1 s of warm-up, then ``seconds``."""
    loop = asyncio.get_running_loop()
    load = _Load(requests)
    transports = []
    for _ in range(connections):
        transport, _ = await loop.create_connection(lambda: _Connection(load), "127.0.0.1", port)
        transports.append(transport)
    await asyncio.sleep(1.0)
    load.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    load.measuring = False
    elapsed = time.perf_counter() - started
    load.stopping = True
    await asyncio.sleep(0.5)
    for transport in transports:
        transport.close()
    quantiles = statistics.quantiles(load.latencies, n=100)
    return Result(
        len(load.latencies) / elapsed,
        quantiles[49] * 1000,
        quantiles[98] * 1000,
        dict(load.statuses),
        load.index,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after 60 s")


@contextlib.contextmanager
def _kafka() -> Iterator[str]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    state = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    try:
        started = subprocess.run(
            [str(KAFKA_SCRIPT), "start", str(state)], capture_output=True, text=True, check=True
        )
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "stop", str(state)], check=False)
        shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def _server(
    command: list[str], port: int, env: dict[str, str], cpus: set[int] | None
) -> Iterator[None]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    if cpus is not None:
        # Before the server starts any thread: its threads inherit the affinity.
        os.sched_setaffinity(process.pid, cpus)
    try:
        _wait_listening(port, process)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def _pin() -> set[int]:
    """Keep this process (the load generator) and what it starts from now on off the last
    core, and return that core, for the servers."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least two cores")
    os.sched_setaffinity(0, set(cpus[:-1]))
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        print("--pin: the broker at KAFKA_BOOTSTRAP_SERVERS runs wherever it was started")
    print(f"pinned: servers on core {cpus[-1]}, load generator and broker on {cpus[:-1]}")
    return {cpus[-1]}


def signature_cost() -> tuple[float, float]:
    """Microseconds per check of one signed callback: ours, and the twilio SDK's validate."""
    from twilio.request_validator import RequestValidator

    tenant = next(iter(load_tenants(demo_tenants_path()).values()))
    token = tenant.auth_tokens[0].get_secret_value()
    url = "https://voice.example.com" + STATUS_PATH
    params = _callback(tenant, "CA" + "a" * 32, 3)
    pairs = list(params.items())
    signature = sign(token, url, form_payload(pairs))
    secrets = tenant.secrets
    validator = RequestValidator(token)
    assert verify(url, pairs, signature, secrets)
    assert validator.validate(url, params, signature)
    n = 20_000
    ours = min(timeit.repeat(lambda: verify(url, pairs, signature, secrets), number=n, repeat=3))
    sdk = min(
        timeit.repeat(lambda: validator.validate(url, params, signature), number=n // 10, repeat=3)
    )
    return ours / n * 1e6, sdk / (n // 10) * 1e6


def asgi_cost(count: int = 3000) -> tuple[float, float]:
    """CPU microseconds per signed callback, the apps called directly (best of 5 loops):
    the bare handler, and the receiver on the in-process bus."""
    import uvloop

    return uvloop.run(_asgi_cost(count))


async def _asgi_cost(count: int) -> tuple[float, float]:
    from ingest.app import create_app, tenant_source
    from voicepulse.bus import InProcessBus
    from voicepulse.settings import Settings

    tenants = list(load_tenants(demo_tenants_path()).values())
    requests = [_asgi_request(raw) for raw in requests_for(8000, tenants, count)]
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data), tenants_file=demo_tenants_path())
        bus = InProcessBus()
        await bus.start()
        receiver = create_app(settings, bus, tenant_source(settings))
        async with _lifespan(receiver):
            costs = [await _per_request(app, requests) for app in (bare_app, receiver)]
        await bus.stop()
    return costs[0], costs[1]


def _asgi_request(raw: bytes) -> tuple[dict[str, object], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = [
        (name.strip().lower().encode(), value.strip().encode())
        for name, _, value in (line.partition(":") for line in lines)
    ]
    scope: dict[str, object] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": STATUS_PATH, "raw_path": STATUS_PATH.encode(),
        "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    return scope, body


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, messages.get, answers.put))  # type: ignore[arg-type]
    await messages.put({"type": "lifespan.startup"})
    assert (await answers.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await messages.put({"type": "lifespan.shutdown"})
        await task


async def _per_request(app: Starlette, requests: list[tuple[dict[str, object], bytes]]) -> float:
    statuses: list[int] = []

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(cast(int, message["status"]))

    async def one(scope: dict[str, object], body: bytes) -> None:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        await app(dict(scope), receive, send)  # type: ignore[arg-type]

    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for scope, body in requests:
            await one(scope, body)
        best = min(best, time.process_time() - started)
    assert set(statuses) == {204}, statuses
    return best / len(requests) * 1e6


async def _count_on_topic(bootstrap: str, namespace: str) -> int:
    """Records on the namespace's status topic (the sum of its partitions' end offsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    topic = f"{namespace}twilio.call-status"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def _report(name: str, results: list[Result]) -> Result:
    total = sum(r.requests_per_s for r in results) / len(results)
    p50 = statistics.median(r.p50_ms for r in results)
    p99 = max(r.p99_ms for r in results)
    statuses: dict[int, int] = {}
    for r in results:
        for code, n in r.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    print(f"{name:9s} {total:8.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   {statuses}")
    return Result(total, p50, p99, statuses, sum(r.sent for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--pin", action="store_true", help="servers on a core of their own (see the docstring)"
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        import uvicorn

        # The same uvicorn options as voicepulse serve (ingest.server.HttpServerStage).
        uvicorn.run(
            bare_app,
            host="127.0.0.1",
            port=args.serve_bare,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
        )
        return

    server_cpus = _pin() if args.pin else None
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ours, sdk = signature_cost()
    print(f"signature check: {ours:.1f} us (twilio SDK RequestValidator.validate: {sdk:.1f} us)")
    bare_us, receiver_us = asgi_cost()
    print(f"ASGI CPU per request: bare {bare_us:.1f} us, receiver (in-process bus) ", end="")
    print(f"{receiver_us:.1f} us")
    import uvloop

    tenants = list(load_tenants(demo_tenants_path()).values())
    bare_port, receiver_port, memory_port = _free_port(), _free_port(), _free_port()
    namespace = f"bench{uuid.uuid4().hex[:6]}."
    with _kafka() as bootstrap, tempfile.TemporaryDirectory() as data:
        env = dict(
            os.environ,
            VOICEPULSE_KAFKA_NAMESPACE=namespace,
            VOICEPULSE_LOG_LEVEL="WARNING",
        )
        receiver_cmd = [
            sys.executable, "-m", "voicepulse.cli", "serve", "--port", str(receiver_port),
            "--data-dir", data, "--tenants-file", str(demo_tenants_path()),
            "--kafka-bootstrap-servers", bootstrap,
        ]  # fmt: skip
        memory_cmd = [
            sys.executable, "-m", "voicepulse.cli", "serve", "--port", str(memory_port),
            "--data-dir", f"{data}/memory", "--tenants-file", str(demo_tenants_path()),
        ]  # fmt: skip
        bare_cmd = [sys.executable, "-m", "bench.receiver", "--serve-bare", str(bare_port)]
        runs = [
            ("bare", bare_port, requests_for(bare_port, tenants, 50_000)),
            ("receiver", receiver_port, requests_for(receiver_port, tenants, 50_000)),
            ("no-kafka", memory_port, requests_for(memory_port, tenants, 50_000)),
        ]
        results: dict[str, list[Result]] = {name: [] for name, _, _ in runs}
        with (
            _server(bare_cmd, bare_port, env, server_cpus),
            _server(receiver_cmd, receiver_port, env, server_cpus),
            _server(memory_cmd, memory_port, env, server_cpus),
        ):
            for _ in range(args.rounds):
                for name, port, reqs in runs:
                    run = run_load(port, reqs, args.connections, args.seconds)
                    results[name].append(uvloop.run(run))
            on_topic = asyncio.run(_count_on_topic(bootstrap, namespace))
        print(f"{args.connections} connections, {args.rounds} rounds of {args.seconds:.0f} s each")
        bare = _report("bare", results["bare"])
        receiver = _report("receiver", results["receiver"])
        memory = _report("no-kafka", results["no-kafka"])
        print(f"ratio     {receiver.requests_per_s / bare.requests_per_s:.2f}x", end="   ")
        print(
            f"(receiver on the in-process bus: {memory.requests_per_s / bare.requests_per_s:.2f}x)"
        )
        answered = sum(n for code, n in receiver.statuses.items() if code == 204)
        print(f"on topic  {on_topic} records for {answered} measured 2xx ({receiver.sent} sent)")
        assert on_topic >= answered, "a 2xx without its event on the topic"
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
