"""The webhook receiver: Starlette routes that check, normalise and publish Twilio's callbacks.

Routes: ``/twilio/voice/status`` (POST, and GET where Twilio is configured for it),
``/twilio/debugger`` (POST), ``/v1/calls`` (POST, the ISV's dialer, bearer API key),
``/healthz``, ``/readyz``, ``/metrics``. The status callback route, the one Twilio calls for
every call event, is a plain ASGI endpoint (:class:`StatusCallbackEndpoint`): it reads the body
straight from ``receive`` and answers with two ``send`` messages, without request or response
objects.

A request is answered 2xx only after its envelope is durable (:mod:`ingest.publisher`).
Everything rejected is answered 4xx/5xx, logged once with its reason (never a token, never the
body) and counted by reason; nothing rejected reaches the bus. The app's lifespan owns the
spool, its drainer and the tenants watcher; the bus is started and stopped by its owner.
"""

import contextlib
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.calls import call_resource_envelope
from ingest.debugger import debugger_envelope
from ingest.metrics import ReceiverMetrics
from ingest.normalize import status_callback_envelope
from ingest.public_url import PublicUrl
from ingest.publisher import DurablePublisher
from ingest.rejection import Rejection
from ingest.spool import Spool, SpoolError, SpoolFull, spool_directories
from ingest.tenant_source import TenantSource
from ingest.tenants import TenantRegistry, load_tenants
from ingest.timestamps import TimestampCheck
from ingest.token_fetch import TwilioTokenFetcher
from ingest.webhook import JSON, Incoming, WebhookReader, content_type, first, read_body
from voicepulse import topics
from voicepulse.envelope import Envelope
from voicepulse.errors import BusError, ConfigError
from voicepulse.settings import Settings
from voicepulse.types import Bus

__all__ = [
    "STATUS_PATH",
    "HotRoute",
    "Receiver",
    "StatusCallbackEndpoint",
    "create_app",
    "tenant_source",
]

logger = logging.getLogger(__name__)

_DIALER_MAX_BODY = 1024 * 1024
STATUS_PATH = "/twilio/voice/status"
"""Where Twilio posts every call's status callbacks (the URL configured on each call)."""


class Receiver:
    """Turns webhook requests into durable envelopes."""

    def __init__(
        self, settings: Settings, bus: Bus, tenants: TenantSource, *, worker: int | None = None
    ) -> None:
        self._settings = settings
        self.tenants = tenants
        self.metrics = ReceiverMetrics()
        spool_dir, orphans = spool_directories(settings.spool_dir, settings.serve_workers, worker)
        self.publisher = DurablePublisher(
            bus,
            Spool(
                spool_dir,
                max_bytes=settings.spool_max_bytes,
                segment_bytes=settings.spool_segment_bytes,
                adopt=orphans,
            ),
            self.metrics,
            deadline_s=settings.kafka_publish_timeout_s,
        )
        self.public_url = PublicUrl(settings.public_base_url, settings.trusted_proxies)
        self._reader = WebhookReader(tenants, self.public_url, settings.max_body_bytes)
        self._timestamps = TimestampCheck(
            settings.event_time_tolerance_s, self.metrics.odd_timestamps
        )
        self._api_keys = [digest.encode() for digest in settings.ingest_api_key_sha256]
        # ``serve --workers``: every answer says which worker gave it (one short header).
        self._worker = {} if worker is None else {"VoicePulse-Worker": str(worker)}
        self._status_headers = [
            (name.lower().encode(), v.encode()) for name, v in self._worker.items()
        ]
        self._accepted = {
            route: self.metrics.requests.labels(route, "accepted")
            for route in ("status", "debugger", "calls")
        }

    async def start(self) -> None:
        await self.tenants.start()
        await self.publisher.start()
        self.metrics.tenants.set(len(self.tenants.registry))

    async def stop(self) -> None:
        await self.publisher.stop()
        await self.tenants.stop()

    async def status_callback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one status callback as a plain ASGI call (see the module docstring)."""
        try:
            await self._accept_status_callback(Incoming(scope), receive)
        except Rejection as rejection:
            await self._reject("status", rejection)(scope, receive, send)
            return
        self._accepted["status"].inc()
        await send({"type": "http.response.start", "status": 204, "headers": self._status_headers})
        await send({"type": "http.response.body", "body": b""})

    async def debugger(self, request: Request) -> Response:
        return await self._handle("debugger", request, self._accept_debugger_event)

    async def dialer_calls(self, request: Request) -> Response:
        return await self._handle("calls", request, self._accept_calls)

    async def _accept_status_callback(self, request: Incoming, receive: Receive) -> None:
        webhook = await self._reader.read(request, receive)
        if not first(webhook.params, "CallSid"):
            raise Rejection(400, "missing_call_sid", webhook.tenant.account_sid)
        envelope = status_callback_envelope(
            webhook.params,
            body=webhook.body or request.scope.get("query_string", b""),
            idempotency_token=request.header(b"i-twilio-idempotency-token"),
            parent_account_sid=webhook.tenant.parent_account_sid,
        )
        self._timestamps.check("status", envelope)
        await self._publish(topics.CALL_STATUS, envelope)

    async def _accept_debugger_event(self, request: Request) -> Response:
        incoming = Incoming(request.scope)
        webhook = await self._reader.read(incoming, request.receive, parent_may_sign=True)
        if not first(webhook.params, "Sid"):
            raise Rejection(400, "missing_sid", webhook.tenant.account_sid)
        envelope = debugger_envelope(
            webhook.params, parent_account_sid=webhook.tenant.parent_account_sid
        )
        self._timestamps.check("debugger", envelope)
        await self._publish(topics.DEBUGGER, envelope)
        return Response(status_code=204)

    async def _accept_calls(self, request: Request) -> Response:
        self._authorize(request)
        incoming = Incoming(request.scope)
        kind = content_type(incoming)
        if kind != JSON:
            raise Rejection(415, "unsupported_media_type", kind or "none")
        limit = max(self._settings.max_body_bytes, _DIALER_MAX_BODY)
        body = await read_body(incoming, request.receive, limit)
        envelopes = [self._call_envelope(resource) for resource in _resources(body)]
        for envelope in envelopes:
            await self._publish(topics.TWILIO_CALLS, envelope)
        return JSONResponse({"accepted": len(envelopes)}, status_code=202)

    def _authorize(self, request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Rejection(401, "missing_api_key")
        digest = hashlib.sha256(key.strip().encode()).hexdigest().encode()
        matched = False
        for known in self._api_keys:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise Rejection(403, "bad_api_key")

    def _call_envelope(self, resource: dict[str, Any]) -> Envelope:
        account_sid = resource.get("account_sid")
        if not isinstance(resource.get("sid"), str) or not resource["sid"]:
            raise Rejection(400, "missing_call_sid")
        if not isinstance(account_sid, str) or not account_sid:
            raise Rejection(400, "missing_account_sid")
        tenant = self.tenants.get(account_sid)
        if tenant is None:
            raise Rejection(403, "unknown_account", account_sid)
        return call_resource_envelope(resource, parent_account_sid=tenant.parent_account_sid)

    async def _publish(self, topic: str, envelope: Envelope) -> None:
        try:
            await self.publisher.publish(topic, envelope.key, envelope.to_json())
        except SpoolFull as exc:
            raise Rejection(503, "spool_full", str(exc)) from exc
        except (SpoolError, BusError) as exc:
            raise Rejection(503, "not_durable", str(exc)) from exc

    async def _handle(
        self, route: str, request: Request, accept: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await accept(request)
        except Rejection as rejection:
            return self._reject(route, rejection)
        self._accepted[route].inc()
        return response

    def _reject(self, route: str, rejection: Rejection) -> Response:
        self.metrics.requests.labels(route, f"rejected_{rejection.status}").inc()
        self.metrics.rejections.labels(rejection.reason).inc()
        logger.warning(
            "rejected route=%s status=%d reason=%s detail=%s",
            route,
            rejection.status,
            rejection.reason,
            rejection.detail or "-",
        )
        headers = {"WWW-Authenticate": "Bearer"} if rejection.status == 401 else {}
        return PlainTextResponse(
            rejection.reason, status_code=rejection.status, headers=headers | self._worker
        )

    async def readyz(self, request: Request) -> Response:
        if self.publisher.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse("not ready: the bus is unreachable and the spool is full", 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        self.metrics.tenants.set(len(self.tenants.registry))
        return Response(
            self.metrics.exposition(), headers=self._worker, media_type=CONTENT_TYPE_LATEST
        )


class HotRoute:
    """ASGI middleware: requests for ``path`` with one of ``methods`` go straight to ``hot_app``,
    everything else to the wrapped app. Errors still reach Starlette's outermost layer (500)."""

    def __init__(
        self, app: ASGIApp, *, path: str, methods: tuple[str, ...], hot_app: ASGIApp
    ) -> None:
        self._next = app
        self._path = path
        self._methods = methods
        self._hot = hot_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == self._path
            and scope["method"] in self._methods
        ):
            await self._hot(scope, receive, send)
        else:
            await self._next(scope, receive, send)


class StatusCallbackEndpoint:
    """The status callback route as an ASGI app (Starlette mounts an object, not a function,
    as ASGI, without wrapping it in a request and a response)."""

    def __init__(self, receiver: Receiver) -> None:
        self._serve = receiver.status_callback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(scope, receive, send)


def _resources(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection(400, "malformed_body", f"not JSON: {exc}") from exc
    items = doc if isinstance(doc, list) else [doc]
    if not items or not all(isinstance(item, dict) for item in items):
        raise Rejection(400, "malformed_body", "expected a Call resource or a list of them")
    return items


def _healthz(worker: int | None) -> Callable[[Request], Awaitable[Response]]:
    """``/healthz``; a worker of ``serve --workers`` says which one answered, and its pid."""
    headers = None if worker is None else {"VoicePulse-Worker": f"{worker}; pid={os.getpid()}"}

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok", headers=headers)

    return healthz


def tenant_source(settings: Settings, fallback: Path | None = None) -> TenantSource:
    """The live tenants registry the settings describe (``fallback``: the file to use when
    none is configured). A bad file here is a :class:`ConfigError` at start-up."""
    path = settings.tenants_file or fallback
    if path is None:
        raise ConfigError("no tenants file configured (tenants_file)")
    return TenantSource(
        load_tenants(path),
        path=path,
        shared_keys=settings.webhook_shared_keys,
        fetcher=TwilioTokenFetcher(settings.twilio_api_base_url),
        reload_interval_s=settings.tenants_reload_interval_s,
        refresh_interval_s=settings.token_refresh_interval_s,
    )


def create_app(
    settings: Settings,
    bus: Bus,
    tenants: TenantSource | Callable[[], TenantRegistry],
    *,
    worker: int | None = None,
) -> Starlette:
    """The receiver's ASGI app. The bus is started and stopped by whoever owns it. ``worker``:
    its index among the ``serve --workers`` processes (its spool is ``worker-<index>``)."""
    if not isinstance(tenants, TenantSource):
        tenants = TenantSource(tenants(), shared_keys=settings.webhook_shared_keys)
    receiver = Receiver(settings, bus, tenants, worker=worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await receiver.start()
        receiver.tenants.on_reload_error = receiver.metrics.tenants_reload_errors.inc
        try:
            yield
        finally:
            await receiver.stop()

    status = StatusCallbackEndpoint(receiver)
    app = Starlette(
        # Twilio's status callbacks skip the router (and its exception layer): the route below
        # stays for what the router adds, a 405 for other methods.
        middleware=[
            Middleware(HotRoute, path=STATUS_PATH, methods=("POST", "GET"), hot_app=status)
        ],
        routes=[
            Route(STATUS_PATH, status, methods=["POST", "GET"]),
            Route("/twilio/debugger", receiver.debugger, methods=["POST"]),
            Route("/v1/calls", receiver.dialer_calls, methods=["POST"]),
            Route("/healthz", _healthz(worker), methods=["GET"]),
            Route("/readyz", receiver.readyz, methods=["GET"]),
            Route("/metrics", receiver.metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app
