"""The load driver (``voicepulse simulate --url``) against the real receiver on loopback.

The receiver runs under uvicorn with the in-process bus; the driver sends at a fixed rate for a
few seconds. What it counts as 2xx must be what the receiver published, and its truth file must
name exactly the callbacks it sent, each with its answer.
"""

import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import orjson
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.app import STATUS_PATH
from ingest.server import HttpServerStage
from ingest.tenants import TenantRegistry
from simulator import Progress, Simulator
from simulator.http1 import form_body
from tests.conftest import SettingsFactory
from tests.ingest.support import Running, serving
from voicepulse import topics


def _truth(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _published_keys(running: Running) -> Counter[tuple[str, int]]:
    return Counter(
        (str(e.fields["call_sid"]), int(str(e.fields["sequence_number"])))
        for e in running.published(topics.CALL_STATUS)
    )


def _truth_keys(lines: list[dict[str, object]], ok: bool) -> Counter[tuple[str, int]]:
    return Counter(
        (str(line["call_sid"]), int(str(line["sequence"])))
        for line in lines
        if (line["outcome"] in (200, 204)) == ok
    )


async def test_a_fixed_rate_is_sent_answered_and_written_down(
    settings_factory: SettingsFactory, demo_tenants: TenantRegistry, tmp_path: Path
) -> None:
    progress: list[Progress] = []
    truth = tmp_path / "truth.jsonl"
    async with serving(settings_factory(), demo_tenants) as running:
        simulator = Simulator(
            lambda: running.url(STATUS_PATH),
            demo_tenants,
            rate=400,
            seconds=3,
            connections=16,
            seed=7,
            truth=truth,
            progress=progress.append,
            progress_every_s=1.0,
        )
        async with simulator:
            await simulator.wait()
            summary = simulator.summary()
        published = _published_keys(running)
    assert summary.sent == 1200
    assert summary.ok == 1200
    assert summary.errors == {}
    assert summary.unsent == 0
    assert summary.in_flight == 0
    assert summary.p50_ms is not None
    assert summary.p99_ms is not None
    assert 2 <= len(progress) <= 3
    assert sum(p.sent for p in progress) <= 1200
    lines = _truth(truth)
    assert len(lines) == 1200
    assert _truth_keys(lines, ok=True) == published
    assert sum(published.values()) == len(published)  # each callback once
    calls = {str(line["call_sid"]) for line in lines}
    assert len(calls) > 100  # many calls, several callbacks each, in sequence order
    for call in calls:
        sequences = [int(str(line["sequence"])) for line in lines if line["call_sid"] == call]
        assert sequences == sorted(sequences)


async def test_refused_callbacks_are_counted_by_kind_and_marked_in_the_truth(
    settings_factory: SettingsFactory, demo_tenants: TenantRegistry, tmp_path: Path
) -> None:
    """The driver signs one tenant's callbacks with a token the receiver does not know."""
    wrong = dict(demo_tenants)
    first = next(iter(wrong.values()))
    wrong[first.account_sid] = first.__class__(
        first.account_sid,
        first.name,
        first.parent_account_sid,
        first.cps_limit,
        (SecretStr("not-the-token"),),
    )
    truth = tmp_path / "truth.jsonl"
    async with serving(settings_factory(), demo_tenants) as running:
        simulator = Simulator(
            lambda: running.url(STATUS_PATH),
            TenantRegistry(wrong),
            rate=300,
            seconds=2,
            seed=3,
            truth=truth,
        )
        async with simulator:
            await simulator.wait()
            summary = simulator.summary()
        published = _published_keys(running)
    lines = _truth(truth)
    refused = [line for line in lines if line["outcome"] not in (200, 204)]
    assert refused
    assert all(line["account_sid"] == first.account_sid for line in refused)
    assert summary.errors == dict(Counter(str(line["outcome"]) for line in refused))
    assert summary.ok == sum(published.values()) == len(lines) - len(refused)
    assert _truth_keys(lines, ok=True) == published


async def test_a_driver_that_falls_behind_says_so(
    demo_tenants: TenantRegistry, tmp_path: Path
) -> None:
    """One connection to a handler that takes 50 ms cannot keep 100 callbacks/s: the sends
    are late, not dropped and not hidden."""

    async def slow(request: Request) -> Response:
        await request.body()
        await asyncio.sleep(0.05)
        return Response(status_code=204)

    app = Starlette(routes=[Route(STATUS_PATH, slow, methods=["POST"])])
    server = HttpServerStage("slow", app, "127.0.0.1", 0)
    await server.start()
    try:
        simulator = Simulator(
            lambda: f"http://127.0.0.1:{server.port}{STATUS_PATH}",
            demo_tenants,
            rate=100,
            callbacks=40,
            connections=1,
        )
        async with simulator:
            await simulator.wait()
            summary = simulator.summary()
    finally:
        await server.stop()
    assert summary.sent == summary.ok == 40
    assert summary.late >= 30
    assert summary.max_lag_ms > 200
    assert summary.rate < 25


async def test_the_command_prints_progress_and_a_json_summary(
    settings_factory: SettingsFactory, demo_tenants: TenantRegistry, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.jsonl"
    async with serving(settings_factory(), demo_tenants) as running:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicepulse.cli", "simulate",
            "--url", running.url(STATUS_PATH), "--rate", "200", "--seconds", "3",
            "--progress-every", "1", "--json", "--truth", str(truth),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        published = _published_keys(running)
    assert process.returncode == 0, (out + err).decode()
    summary = orjson.loads(out.splitlines()[-1])
    assert summary["sent"] == summary["ok"] == 600 == sum(published.values())
    assert summary["errors"] == {}
    assert summary["cpu_us_per_request"] > 0
    progress = [line for line in err.decode().splitlines() if "(target 200/s)" in line]
    assert len(progress) >= 2, err.decode()
    assert _truth_keys(_truth(truth), ok=True) == published


@given(st.dictionaries(st.text(), st.text()))
def test_form_body_is_urlencode(params: dict[str, str]) -> None:
    assert form_body(params) == urlencode(params).encode()


async def test_dropped_and_unanswered_requests_are_errors_of_their_own_kind(
    demo_tenants: TenantRegistry, tmp_path: Path
) -> None:
    """A server that answers one request, closes the connection on the next and leaves the
    third unanswered: each ends as 204, ``closed`` or ``timeout``, the driver reconnects, and
    the truth says which was which."""
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            seen += 1
            if seen % 3 == 2:
                writer.close()
                return
            if seen % 3 == 0:
                await reader.read()  # until the driver gives up and closes
                writer.close()
                return
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    truth = tmp_path / "truth.jsonl"
    simulator = Simulator(
        lambda: f"http://127.0.0.1:{port}{STATUS_PATH}",
        demo_tenants,
        rate=20,
        callbacks=9,
        connections=1,
        truth=truth,
        timeout_s=0.5,
    )
    try:
        async with simulator:
            await simulator.wait()
            summary = simulator.summary()
    finally:
        server.close()
    assert summary.sent == 9
    assert summary.ok == 3
    assert summary.errors == {"closed": 3, "timeout": 3}
    assert [line["outcome"] for line in _truth(truth)] == [204, "closed", "timeout"] * 3


async def test_ctrl_c_stops_the_command_with_its_summary(
    settings_factory: SettingsFactory, demo_tenants: TenantRegistry, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.jsonl"
    async with serving(settings_factory(), demo_tenants) as running:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicepulse.cli", "simulate",
            "--url", running.url(STATUS_PATH), "--rate", "300", "--json", "--truth", str(truth),
            "--progress-every", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        first = await asyncio.wait_for(process.stderr.readline(), 60)  # it runs: signal it
        assert b"(target 300/s)" in first, first
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        published = _published_keys(running)
    assert process.returncode == 0, (out + err).decode()
    summary = orjson.loads(out.splitlines()[-1])
    assert summary["sent"] == summary["ok"] == sum(published.values()) >= 300
    assert summary["unsent"] == 0
    assert _truth_keys(_truth(truth), ok=True) == published
