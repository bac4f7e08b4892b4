"""The composition root of the dashboard: ``create_app(settings)`` wires tokens, sessions, the
warehouse reader, the pages and the JSON API into one Starlette app.

Access rules, in one place (:func:`visible`): an operator sees every subaccount, a tenant only
its own; anything else, including the operator-only pages, answers 404 so that a tenant does
not learn that another subaccount exists.
"""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from alerting import load_rules
from alerting.silences import SilenceStore
from dashboards.auth import Session, Sessions, principal_of
from dashboards.queries import HealthLimits
from dashboards.reader import Reader
from dashboards.security import SecurityHeaders
from dashboards.tokens import Principal, TokenStore
from voicepulse.errors import WarehouseError
from voicepulse.settings import Settings

__all__ = ["Context", "create_app", "tokens_path", "visible"]

logger = logging.getLogger(__name__)

_HERE = Path(__file__).parent


def tokens_path(settings: Settings) -> Path:
    """Where the dashboard's token hashes live: ``<data_dir>/tokens.sqlite``."""
    return settings.data_dir / "tokens.sqlite"


@dataclass
class Context:
    """What every route needs; one per app."""

    settings: Settings
    tokens: TokenStore
    reader: Reader
    silences: SilenceStore
    sessions: Sessions = field(default_factory=Sessions)
    limits: HealthLimits = field(default_factory=HealthLimits)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    templates: Environment = field(
        default_factory=lambda: Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
    )

    def now(self) -> datetime:
        """The current time as the warehouse stores it: UTC without a zone."""
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    def who(self, request: Request) -> tuple[Principal | None, Session | None]:
        return principal_of(request, self.tokens, self.sessions)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def visible(principal: Principal, account_sid: str) -> None:
    """404 unless the principal may see this subaccount (``ISV``: operators only)."""
    if not principal.may_see(account_sid):
        raise HTTPException(404, "not found")


def create_app(
    settings: Settings,
    *,
    tokens: TokenStore | None = None,
    reader: Reader | None = None,
    clock: Callable[[], datetime] | None = None,
    owns_tokens: bool = False,
) -> Starlette:
    """The dashboard app; it closes at shutdown what it opened itself (or was handed to own)."""
    from dashboards import actions, api, pages

    owned_tokens = tokens is None or owns_tokens
    store = tokens or TokenStore(tokens_path(settings), admin_token=settings.admin_token)
    ctx = Context(
        settings=settings,
        tokens=store,
        reader=reader or Reader(settings),
        silences=SilenceStore.in_data_dir(settings.data_dir),
        limits=HealthLimits.from_rules(load_rules(settings.alert_rules_file)),
    )
    if clock is not None:
        ctx.clock = clock

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await ctx.reader.aclose()
            if owned_tokens:
                store.close()

    app = Starlette(
        routes=[
            *api.routes(),
            *pages.routes(),
            *actions.routes(),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, WarehouseError: _warehouse_error},
    )
    app.state.ctx = ctx
    app.add_middleware(SecurityHeaders)
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    if exc.status_code in {401, 303} and exc.headers:
        return Response(status_code=303, headers=exc.headers)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code)


async def _warehouse_error(request: Request, exc: Exception) -> Response:
    logger.warning("%s", exc)
    text = "the warehouse cannot be read yet; is the pipeline running?"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": text}, status_code=503)
    return PlainTextResponse(text, status_code=503)
