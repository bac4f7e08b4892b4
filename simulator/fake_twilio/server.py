"""The fake Twilio on loopback: real HTTP through uvicorn, in the caller's event loop."""

import contextlib
from collections.abc import AsyncIterator

from ingest.server import HttpServerStage
from simulator.fake_twilio.app import create_fake_app
from simulator.fake_twilio.state import FakeState

__all__ = ["serve_fake_twilio"]


@contextlib.asynccontextmanager
async def serve_fake_twilio(
    state: FakeState, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``state`` until the block ends; yields the base URL (``http://host:port``)."""
    async with HttpServerStage("fake-twilio", create_fake_app(state), host, port) as server:
        yield f"http://{host}:{server.port}"
