"""The webhook receiver: Starlette routes that check, normalise and publish Twilio's callbacks.

A request is answered 2xx only after its envelope is durable on the bus. Everything rejected is
answered 4xx, logged once with its reason (never a token, never the body) and counted by reason;
nothing rejected reaches the bus.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ingest.metrics import ReceiverMetrics
from ingest.normalize import status_callback_envelope
from ingest.signature import is_valid_signature
from ingest.tenants import TenantRegistry
from voicepulse import topics
from voicepulse.errors import BusError
from voicepulse.settings import Settings
from voicepulse.types import Bus

__all__ = ["Receiver", "create_app"]

logger = logging.getLogger(__name__)

_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Rejection(Exception):
    """A request answered 4xx/5xx; ``reason`` is the metric label and the log line."""

    status: int
    reason: str
    detail: str = ""


class Receiver:
    """Turns webhook requests into durable envelopes; owns no resources of its own."""

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        tenants: Callable[[], TenantRegistry],
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._tenants = tenants
        self.metrics = ReceiverMetrics()

    async def status_callback(self, request: Request) -> Response:
        route = "status"
        try:
            await self._accept_status_callback(request)
        except Rejection as rejection:
            return self._reject(route, rejection)
        self.metrics.requests.labels(route, "accepted").inc()
        return Response(status_code=204)

    async def _accept_status_callback(self, request: Request) -> None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != _FORM:
            raise Rejection(415, "unsupported_media_type", content_type or "none")
        body = await self._read_body(request)
        params = _parse_form(body)
        account_sid = _first(params, "AccountSid")
        if not account_sid:
            raise Rejection(400, "missing_account_sid")
        tenant = self._tenants().get(account_sid)
        if tenant is None:
            raise Rejection(403, "unknown_account", account_sid)
        signature = request.headers.get("x-twilio-signature", "")
        if not is_valid_signature(self.public_url(request), params, signature, tenant.auth_tokens):
            raise Rejection(403, "bad_signature", account_sid)
        if not _first(params, "CallSid"):
            raise Rejection(400, "missing_call_sid", account_sid)
        envelope = status_callback_envelope(
            params,
            body=body,
            idempotency_token=request.headers.get("i-twilio-idempotency-token"),
            parent_account_sid=tenant.parent_account_sid,
        )
        await self._publish(topics.CALL_STATUS, envelope.key, envelope.to_json())

    def public_url(self, request: Request) -> str:
        """The URL Twilio called: the configured public base, else the request's own."""
        scope = request.scope
        path = scope.get("raw_path") or scope["path"].encode()
        base = self._settings.public_base_url
        if base is None:
            host = request.headers.get("host", "")
            base = f"{scope['scheme']}://{host}"
        url = base + path.decode("latin-1")
        query: bytes = scope.get("query_string", b"")
        return f"{url}?{query.decode('latin-1')}" if query else url

    async def _read_body(self, request: Request) -> bytes:
        limit = self._settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Rejection(413, "body_too_large", f"{declared} bytes")
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise Rejection(413, "body_too_large", f"over {limit} bytes")
        return bytes(chunks)

    async def _publish(self, topic: str, key: bytes, value: bytes) -> None:
        started = time.perf_counter()
        try:
            await self._bus.publish(topic, key, value)
        except BusError as exc:
            raise Rejection(503, "not_durable", str(exc)) from exc
        self.metrics.publish_seconds.observe(time.perf_counter() - started)

    def _reject(self, route: str, rejection: Rejection) -> Response:
        self.metrics.requests.labels(route, f"rejected_{rejection.status}").inc()
        self.metrics.rejections.labels(rejection.reason).inc()
        logger.warning(
            "rejected %s callback: %d %s %s",
            route,
            rejection.status,
            rejection.reason,
            rejection.detail,
        )
        return PlainTextResponse(rejection.reason, status_code=rejection.status)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except UnicodeDecodeError as exc:
        raise Rejection(400, "malformed_body", "not UTF-8") from exc
    except ValueError as exc:
        raise Rejection(400, "malformed_body", str(exc)) from exc


def _first(params: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in params if key == name), None)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(settings: Settings, bus: Bus, tenants: Callable[[], TenantRegistry]) -> Starlette:
    """The receiver's ASGI app. The bus is started and stopped by whoever owns it."""
    receiver = Receiver(settings, bus, tenants)
    app = Starlette(
        routes=[
            Route("/twilio/voice/status", receiver.status_callback, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/metrics", receiver.metrics_endpoint, methods=["GET"]),
        ]
    )
    app.state.receiver = receiver
    return app
