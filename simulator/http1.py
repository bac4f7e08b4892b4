"""A lean HTTP/1.1 keep-alive client for the load driver: raw, pre-built requests over
asyncio protocols, one request in flight per connection, responses parsed by httptools.

It exists because a general client (httpx) spends a few hundred microseconds per request in
Python, which caps one core near 2,000 requests/s; this one writes bytes built ahead of time
and reads the status line and body length only.

:class:`Pool` keeps ``size`` connections to one address open, reconnecting a lost one after
``RECONNECT_S``. Every request ends in exactly one call of ``on_done(token, outcome,
latency_s)``, where ``outcome`` is the status code or an error kind: ``"closed"`` (the
connection was lost before the answer: the server may or may not have acted on it),
``"timeout"`` (no answer within ``timeout_s``; the connection is closed), ``"invalid"`` (an
answer that is not HTTP/1.1).
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import cast
from urllib.parse import quote_plus

import httptools

__all__ = ["Outcome", "Pool", "form_body"]

Outcome = int | str
"""A status code, or the kind of error that ended the request."""

RECONNECT_S = 0.5

logger = logging.getLogger(__name__)


def form_body(params: Mapping[str, str]) -> bytes:
    """``urlencode(params).encode()``, faster (a property test checks they agree): the pairs
    that repeat (statuses, numbers, timestamps) are quoted once."""
    return "&".join([_pair(name, value) for name, value in params.items()]).encode()


@functools.lru_cache(maxsize=1 << 15)
def _pair(name: str, value: str) -> str:
    return f"{quote_plus(name)}={quote_plus(value)}"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; ``pool`` is told when it is idle, answered or lost."""

    def __init__(self, pool: "Pool") -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.token: object = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes, token: object) -> None:
        assert self.transport is not None
        self.token = token
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.end("invalid")

    def on_message_complete(self) -> None:
        self.end(self._parser.get_status_code(), keep=True)

    def end(self, outcome: Outcome, *, keep: bool = False) -> None:
        """The in-flight request (if any) ends with ``outcome``; without ``keep`` the
        connection is closed."""
        token, self.token = self.token, None
        if token is not None:
            self._pool.done(self, token, outcome, time.perf_counter() - self.sent_at, keep)
        if not keep and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.end("closed")
        self._pool.lost(self)


class Pool:
    """``size`` keep-alive connections to ``host:port``; :meth:`send` on an idle one."""

    def __init__(
        self,
        host: str,
        port: int,
        size: int,
        on_done: Callable[[object, Outcome, float], None],
        *,
        on_idle: Callable[[], None] = lambda: None,
        timeout_s: float = 15.0,
    ) -> None:
        self._address = (host, port)
        self._size = size
        self._on_done = on_done
        self._on_idle = on_idle
        self._timeout_s = timeout_s
        self._idle: deque[_Connection] = deque()
        self._busy: set[_Connection] = set()
        self._open = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = asyncio.Event()  # set when the last open connection is lost
        self.connect_errors = 0

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    @property
    def has_idle(self) -> bool:
        return bool(self._idle)

    async def start(self) -> None:
        """Open the connections; raises ``OSError`` when not even one can be opened."""
        results = await asyncio.gather(
            *(self._connect() for _ in range(self._size)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == self._size:
            raise errors[0]
        for _ in errors:
            self._reconnect_later()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(lambda: _Connection(self), *self._address)
        self._open += 1
        self._closed.clear()
        self._idle.append(connection)

    def _reconnect_later(self) -> None:
        if not self._closing:
            task = asyncio.create_task(self._reconnect())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reconnect(self) -> None:
        while not self._closing:
            await asyncio.sleep(RECONNECT_S)
            try:
                await self._connect()
            except OSError as exc:
                self.connect_errors += 1
                logger.warning("cannot connect to %s:%d: %s", *self._address, exc)
                continue
            self._on_idle()
            return

    def send(self, request: bytes, token: object) -> bool:
        """Write ``request`` on an idle connection; False when none is idle."""
        while self._idle:
            connection = self._idle.popleft()
            if connection.transport is not None:
                self._busy.add(connection)
                connection.send(request, token)
                return True
        return False

    def done(
        self, connection: _Connection, token: object, outcome: Outcome, latency: float, keep: bool
    ) -> None:
        self._busy.discard(connection)
        if keep:
            self._idle.append(connection)
        self._on_done(token, outcome, latency)
        if keep:
            self._on_idle()

    def lost(self, connection: _Connection) -> None:
        self._open -= 1
        if self._open == 0:
            self._closed.set()
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        self._reconnect_later()

    def expire(self) -> None:
        """End the requests waiting longer than ``timeout_s`` as ``"timeout"``."""
        oldest = time.perf_counter() - self._timeout_s
        for connection in [c for c in self._busy if c.sent_at < oldest]:
            connection.end("timeout")

    async def stop(self) -> None:
        """Close every connection; requests still in flight end as ``"closed"``."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for connection in [*self._idle, *self._busy]:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()
        if self._open > 0:
            # connection_lost ends what was in flight.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), 1.0)
