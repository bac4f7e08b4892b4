"""Simulated Twilio traffic: signed, Twilio-shaped status callbacks posted to a receiver.

:class:`Simulator` is an open-loop load driver. The ``i``-th callback is scheduled at
``start + i / rate`` whatever the receiver's latency; its content comes from the traffic model
of :mod:`simulator.traffic` (tenant ``i`` gets ``traffic.PROFILES[i % 6]``), each call's
callbacks in sequence order, its Timestamp the second it is scheduled for. Requests are built
and signed (our signer, proved equal to the twilio SDK's) ahead of their time, in the driver's
slack, and written raw over keep-alive connections (:mod:`simulator.http1`). A callback that
finds no idle connection waits in a backlog; one written more than ``LATE_S`` after its time is
counted late, so a driver (or receiver) that falls behind shows in every report.

:func:`write_scenario` writes a finished scenario instead: the envelopes as delivered (with
duplicates and disorder) and the ground truth of :mod:`simulator.truth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import orjson

from ingest.signature import form_payload, sign
from ingest.tenants import Tenant, TenantRegistry
from simulator import traffic
from simulator.http1 import Outcome, Pool, form_body
from simulator.load_report import LATE_S, Progress, Tally, percentile
from voicepulse.envelope import epoch_iso
from voicepulse.lifecycle import Lifecycle

__all__ = [
    "LATE_S",
    "Progress",
    "Simulator",
    "callback_rate",
    "write_scenario",
]

LOOKAHEAD_S = 2.0  # requests are built and signed up to this far ahead of their time
BUILD_BATCH = 16
TICK_S = 0.001  # the pacer wakes at most this often: at high rates a wake-up sends a few
MAX_DUE_PER_TURN = 256  # when behind, the loop turns at least this often

logger = logging.getLogger(__name__)


class _Request:
    """One prepared callback: its scheduled time, its raw bytes, what the truth says of it."""

    __slots__ = ("at", "call", "index", "raw", "second")

    def __init__(self, at: float, raw: bytes, call: traffic.SimCall, index: int, second: int):
        self.at = at
        self.raw = raw
        self.call = call
        self.index = index
        self.second = second


class Simulator(Lifecycle):
    """Posts simulated status callbacks at ``rate`` per second, open loop, until stopped, until
    ``seconds`` have passed or ``callbacks`` have been scheduled.

    ``url`` is asked for on start, so a receiver on a port chosen at start can be the target.
    ``truth``: a file that gets one JSON line per callback written, with its answer (a status
    code, or the kind of error), so that a run can be checked for exactness afterwards.
    ``progress`` is called every ``progress_every_s`` seconds with the last interval's figures.
    """

    name = "simulate"

    def __init__(
        self,
        url: Callable[[], str],
        tenants: TenantRegistry,
        *,
        rate: float,
        seconds: float | None = None,
        callbacks: int | None = None,
        connections: int = 4,
        seed: int | None = None,
        truth: Path | None = None,
        progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 5.0,
        timeout_s: float = 15.0,
        warm_up_s: int = 0,
    ) -> None:
        """``warm_up_s``: draw the model from that long before the start and send only the
        callbacks it has from the start on, so the first minutes hold calls of every length
        (without it only the calls that end fast have ended: a fresh start looks unhealthy)."""
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self._target = url
        self._tenants = list(tenants.values())
        self._tokens = {t.account_sid: t.auth_tokens[0].get_secret_value() for t in self._tenants}
        self._rate = rate
        limits = [
            n
            for n in (callbacks, None if seconds is None else int(seconds * rate))
            if n is not None
        ]
        self._total = min(limits) if limits else None
        self._connections = connections
        self._rng = random.Random(seed)
        self._truth_path = truth
        self._on_progress = progress
        self._progress_every_s = progress_every_s
        self._timeout_s = timeout_s
        self._warm_up_s = warm_up_s
        self._task: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._pool: Pool | None = None
        self._truth: IO[bytes] | None = None
        self._tally = Tally()
        self._ready: deque[_Request] = deque()  # built ahead, not due yet
        self._backlog: deque[_Request] = deque()  # due, waiting for an idle connection
        self._built = 0
        self._halted = False
        self._t0 = 0.0
        self._wall = 0.0  # wall clock minus monotonic clock
        self._last_write = 0.0
        self._quiet = asyncio.Event()  # nothing due and nothing in flight
        self._cpu0 = 0.0
        self._url = ""
        self._head = ""
        self._unsent = 0

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    @property
    def sent(self) -> int:
        """Callbacks written so far."""
        return self._tally.sent

    @property
    def ok(self) -> int:
        """Callbacks answered 2xx so far."""
        return self._tally.ok

    @property
    def failed(self) -> int:
        """Callbacks answered otherwise, or not answered."""
        return sum(self._tally.errors.values())

    async def start(self) -> None:
        if self._task is not None:
            return
        self._url = self._target()
        parts = urlsplit(self._url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: %d\r\nX-Twilio-Signature: %s\r\n\r\n"
        )
        self._pool = Pool(
            parts.hostname or "127.0.0.1",
            parts.port or 80,
            self._connections,
            self._done,
            on_idle=self._flush,
            timeout_s=self._timeout_s,
        )
        await self._pool.start()
        if self._truth_path is not None:
            self._truth = self._truth_path.open("wb")
        self._task = asyncio.create_task(self._run(), name="stage:simulate")

    async def wait(self) -> None:
        """Wait until every scheduled callback has been answered (forever without a limit)."""
        if self._task is not None:
            await self._task

    def halt(self) -> None:
        """Schedule no more callbacks; :meth:`wait` returns once those due are written and
        answered. Twice: those due and not written yet are dropped (counted as unsent)."""
        if self._halted:
            self._unsent += len(self._backlog)
            self._backlog.clear()
            if self._pool is None or not self._pool.in_flight:
                self._quiet.set()
        self._halted = True

    async def drain(self, timeout_s: float) -> None:
        return None

    async def stop(self) -> None:
        for task in (self._task, self._reporter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._reporter = None
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.stop()
        truth, self._truth = self._truth, None
        if truth is not None:
            truth.close()

    def summary(self) -> Progress:
        """The whole run so far."""
        tally = self._tally
        elapsed = max(self._last_write - self._t0, 1e-9)
        ordered = sorted(tally.latencies)
        return Progress(
            elapsed_s=round(elapsed, 3),
            target_rate=self._rate,
            rate=tally.sent / elapsed,
            sent=tally.sent,
            ok=tally.ok,
            errors=dict(tally.errors),
            late=tally.late,
            max_lag_ms=tally.max_lag * 1000,
            p50_ms=percentile(ordered, 50),
            p99_ms=percentile(ordered, 99),
            in_flight=0 if self._pool is None else self._pool.in_flight,
            backlog=len(self._backlog),
            unsent=self._unsent + len(self._backlog),
            cpu_us_per_request=(time.process_time() - self._cpu0) / tally.sent * 1e6
            if tally.sent
            else None,
        )

    async def _run(self) -> None:
        self._stream = self._callbacks()
        self._cpu0 = time.process_time()
        self._t0 = time.monotonic() + 0.2
        self._wall = time.time() - time.monotonic()
        self._build_ahead(until=self._t0 - 0.01)
        self._reporter = asyncio.create_task(self._report(), name="simulate:progress")
        try:
            await self._pace()
            await self._settle()
        finally:
            self._reporter.cancel()

    async def _pace(self) -> None:
        """Move each callback to the backlog when its time comes; build ahead in between."""
        due = 0
        while not self._halted and (self._total is None or due < self._total):
            now = time.monotonic()
            now_due = int((now - self._t0) * self._rate) + 1
            if self._total is not None:
                now_due = min(now_due, self._total)
            for _ in range(min(now_due - due, MAX_DUE_PER_TURN)):
                self._backlog.append(self._ready.popleft() if self._ready else self._build())
                due += 1
            self._flush()
            if due < now_due:  # behind: let the answers in before building more
                await asyncio.sleep(0)
                continue
            next_at = self._t0 + due / self._rate
            self._build_ahead(until=next_at - 0.001)
            await asyncio.sleep(max(next_at - time.monotonic(), TICK_S))

    async def _settle(self) -> None:
        """Wait for the backlog to be written and answered, as long as answers keep coming
        (a request ends within the timeout, answered or not, while a connection is open)."""
        assert self._pool is not None
        while self._backlog or self._pool.in_flight:
            ended = self._tally.ended
            self._quiet.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), self._timeout_s + 1.0)
            if self._tally.ended == ended:
                break
        self._unsent += len(self._backlog)  # due, never written (built ahead: not due)
        self._backlog.clear()
        self._ready.clear()

    def _build_ahead(self, until: float) -> None:
        limit = self._rate * LOOKAHEAD_S
        total = self._total
        while len(self._ready) < limit and (total is None or self._built < total):
            if time.monotonic() >= until:
                return
            batch = BUILD_BATCH if total is None else min(BUILD_BATCH, total - self._built)
            for _ in range(batch):
                self._ready.append(self._build())

    def _build(self) -> _Request:
        """The next callback of the model, stamped, signed and encoded for its time."""
        at = self._t0 + self._built / self._rate
        self._built += 1
        call, index = next(self._stream)
        second = int(at + self._wall)
        params = traffic.callback(call, index, traffic.rfc2822(second))
        signature = sign(self._tokens[call.account_sid], self._url, form_payload(params.items()))
        body = form_body(params)
        raw = (self._head % (len(body), signature)).encode() + body
        return _Request(at, raw, call, index, second)

    def _callbacks(self) -> Iterator[tuple[traffic.SimCall, int]]:
        """Every call's callbacks in the model's time order, drawn a second at a time.

        A tenant's CPS limit is raised to its share of the rate: at load rates the model's CPS
        queue would otherwise place calls minutes ahead and hold back the callbacks."""
        tenants = [
            dataclasses.replace(t, cps_limit=max(t.cps_limit, t.calls_per_second))
            for t in _sim_tenants(self._tenants, _calls_per_second(self._tenants, self._rate))
        ]
        heap: list[tuple[int, int, traffic.SimCall, int]] = []
        started = int(time.time())
        horizon = started - self._warm_up_s
        order = 0
        while True:
            while not heap or heap[0][0] >= horizon:
                for call in traffic.generate(self._rng, tenants, horizon, 1).calls:
                    if call.callbacks:
                        heapq.heappush(heap, (call.callbacks[0][2], order, call, 0))
                        order += 1
                horizon += 1
            at, _, call, index = heapq.heappop(heap)
            if at >= started:  # before the start, Twilio sent it to no one
                yield call, index
            if index + 1 < len(call.callbacks):
                heapq.heappush(heap, (call.callbacks[index + 1][2], order, call, index + 1))
                order += 1

    def _flush(self) -> None:
        """Write due callbacks on the idle connections."""
        pool = self._pool
        if pool is None:
            return
        now = time.monotonic()
        while self._backlog and pool.has_idle:
            request = self._backlog.popleft()
            if not pool.send(request.raw, request):
                self._backlog.appendleft(request)
                return
            self._last_write = now
            self._tally.written(now - request.at)

    def _done(self, token: object, outcome: Outcome, latency: float) -> None:
        assert isinstance(token, _Request)
        self._tally.answered(outcome, latency)
        if not self._backlog and self._pool is not None and not self._pool.in_flight:
            self._quiet.set()
        if self._truth is not None:
            self._truth.write(orjson.dumps(self._record(token, outcome)) + b"\n")

    def _record(self, request: _Request, outcome: Outcome) -> dict[str, object]:
        call = request.call
        seq, status, _ = call.callbacks[request.index]
        terminal = status == call.terminal and seq == call.callbacks[-1][0]
        return {
            "account_sid": call.account_sid,
            "call_sid": call.call_sid,
            "sequence": seq,
            "call_status": status,
            "direction": call.direction,
            "timestamp": request.second,
            "call_duration": call.call_duration if terminal else None,
            "sip_response_code": call.sip_code if terminal else None,
            "scheduled_at": round(request.at + self._wall, 4),
            "outcome": outcome,
        }

    async def _report(self) -> None:
        """Expire answers that take too long; report progress every ``progress_every_s``."""
        started = self._t0
        self._tally.mark = (started, 0, 0, 0, 0)
        next_report = started + self._progress_every_s
        while True:
            tick = min(1.0, self._timeout_s / 4)
            await asyncio.sleep(min(tick, max(next_report - time.monotonic(), 0.05)))
            if self._pool is not None:
                self._pool.expire()
            now = time.monotonic()
            if now >= next_report:
                next_report += self._progress_every_s
                progress = self._tally.cut(now, started, self._rate, self._pool, len(self._backlog))
                if self._on_progress is not None:
                    self._on_progress(progress)


def write_scenario(
    tenants: TenantRegistry,
    envelopes_path: Path,
    truth_path: Path,
    *,
    seconds: int,
    callbacks_per_second: float,
    seed: int | None,
    call_timeout_s: int = 4 * 3600,
    max_delay_s: int = 60,
    duplicate_rate: float = 0.1,
) -> int:
    """Write a scenario starting now: envelopes as delivered (JSON lines) and its ground
    truth (JSON); returns the number of envelopes."""
    from simulator.truth import expected_rows

    rng = random.Random(seed)
    sim = _sim_tenants(
        list(tenants.values()), _calls_per_second(list(tenants.values()), callbacks_per_second)
    )
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


def callback_rate(tenants: TenantRegistry, calls_per_second: float) -> float:
    """The rate of callbacks that ``calls_per_second`` calls of ``tenants`` send, in the long
    run (what the demo's setting in calls per second means for :class:`Simulator`)."""
    return calls_per_second * _callbacks_per_call(list(tenants.values()))


def _calls_per_second(tenants: Sequence[Tenant], callbacks_per_second: float) -> float:
    return callbacks_per_second / _callbacks_per_call(tenants)


def _callbacks_per_call(tenants: Sequence[Tenant]) -> float:
    count = len(tenants)
    return traffic.callbacks_per_call(
        tuple(traffic.PROFILES[i % len(traffic.PROFILES)] for i in range(count))
    )
