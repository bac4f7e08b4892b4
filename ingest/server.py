"""The receiver as a pipeline stage: uvicorn serving the app inside the pipeline's event loop."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from voicepulse.lifecycle import Lifecycle

__all__ = ["HttpServerStage", "bind_socket"]

logger = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (bound here, not by uvicorn, so that a taken port is
    an OSError for the caller instead of uvicorn's sys.exit inside a task)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the pipeline's supervisor owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServerStage(Lifecycle):
    """Serves an ASGI app on ``host:port``, or on ``sock``, a listening socket made by another
    process (``serve --workers``); :meth:`stop` finishes in-flight requests first."""

    def __init__(
        self, name: str, app: ASGIApp, host: str, port: int, *, sock: socket.socket | None = None
    ) -> None:
        self.name = name
        self._inherited = sock
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            # uvicorn would take the client address and the scheme from X-Forwarded-For/Proto
            # of any peer on 127.0.0.1; the receiver believes forwarded headers only from its
            # configured trusted proxies (ingest.public_url), and the others need none.
            proxy_headers=False,
        )
        self._server = _Server(self._config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured with port 0)."""
        if self._socket is None:
            return self._config.port
        return int(self._socket.getsockname()[1])

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        if self._task is not None:
            return
        sock = self._inherited or bind_socket(self._config.host, self._config.port)
        self._socket = sock
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"stage:{self.name}"
        )
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError(f"{self.name}: the HTTP server exited while starting")
            await asyncio.sleep(0.02)

    async def drain(self, timeout_s: float) -> None:
        return None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        try:
            await task
        finally:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
