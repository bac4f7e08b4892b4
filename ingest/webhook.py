"""Reading one Twilio webhook: content type, size, parameters, tenant, signature.

The checks run in this order, and the first that fails decides the answer: 415 wrong content
type, 413 body over the limit (read no further), 400 malformed body or no AccountSid, 403 unknown
account, unknown shared key or bad signature. Nothing here publishes anything.

It works on the raw ASGI request (:class:`Incoming` and the ``receive`` callable), so that the
hot status-callback route needs no framework objects.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson
from starlette.types import Receive, Scope

from ingest.form import parse_form
from ingest.public_url import PublicUrl
from ingest.rejection import Rejection
from ingest.signature import parse_signature_settings, verify
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant

__all__ = ["Incoming", "Webhook", "WebhookReader", "content_type", "first", "read_body"]

FORM: Final = "application/x-www-form-urlencoded"
JSON: Final = "application/json"


class Incoming:
    """One HTTP request as the receiver reads it: its ASGI scope, and its headers looked up by
    lower-case name (ASGI servers lower-case them; a repeated header gives its first value)."""

    __slots__ = ("_headers", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        # Reversed, so that the first of a repeated header is the one kept.
        self._headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    def header(self, name: bytes, default: str | None = None) -> str | None:
        value = self._headers.get(name)
        return default if value is None else value.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook whose signature checked out: its parameters, raw body and tenant."""

    params: list[tuple[str, str]]
    body: bytes
    tenant: Tenant


class WebhookReader:
    """Turns a request into a :class:`Webhook`, or raises :class:`Rejection`."""

    def __init__(self, tenants: TenantSource, public_url: PublicUrl, max_body_bytes: int) -> None:
        self._tenants = tenants
        self._public_url = public_url
        self._limit = max_body_bytes

    async def read(
        self, request: Incoming, receive: Receive, *, parent_may_sign: bool = False
    ) -> Webhook:
        """Check one request. ``parent_may_sign``: the parent's token is accepted as well
        (the debugger webhook, which the parent account configures for its subaccounts)."""
        url = self._public_url(request.scope)
        if request.method == "GET":
            body = b""
            params = _parse_form(request.scope.get("query_string", b""))
            signed: list[tuple[str, str]] | None = None
            json_body = None
        else:
            kind = content_type(request)
            if kind not in (FORM, JSON):
                raise Rejection(415, "unsupported_media_type", kind or "none")
            body = await read_body(request, receive, self._limit)
            params = _parse_form(body) if kind == FORM else _parse_json(body)
            signed = params if kind == FORM else None
            json_body = body if kind == JSON else None
        account_sid = first(params, "AccountSid")
        if not account_sid:
            raise Rejection(400, "missing_account_sid")
        tenant = self._tenants.get(account_sid) or await self._tenants.resolve(
            account_sid, first(params, "ParentAccountSid")
        )
        if tenant is None:
            raise Rejection(403, "unknown_account", account_sid)
        settings = parse_signature_settings(request.header(b"x-twilio-webhooks-signature-settings"))
        if not settings.supported:
            raise Rejection(403, "unsupported_signature_algorithm", settings.algorithm)
        signature = request.header(b"x-twilio-signature") or ""

        def check(secrets: Sequence[bytes]) -> bool:
            return verify(
                url, signed, signature, secrets, algorithm=settings.algorithm, json_body=json_body
            )

        if settings.key_id is not None:
            key = self._tenants.shared_key(settings.key_id)
            if key is None:
                raise Rejection(403, "unknown_shared_key", settings.key_id)
            if not check([key.get_secret_value().encode()]):
                raise Rejection(403, "bad_signature", account_sid)
            return Webhook(params, body, tenant)
        if check(self._secrets(tenant, parent_may_sign)):
            return Webhook(params, body, tenant)
        refreshed = await self._tenants.refresh(account_sid)
        if refreshed is not None and check(self._secrets(refreshed, parent_may_sign)):
            return Webhook(params, body, refreshed)
        raise Rejection(403, "bad_signature", account_sid)

    def _secrets(self, tenant: Tenant, parent_may_sign: bool) -> tuple[bytes, ...]:
        parent_sid = tenant.parent_account_sid
        parent = self._tenants.get(parent_sid) if parent_may_sign and parent_sid else None
        return tenant.secrets + (parent.secrets if parent is not None else ())


def content_type(request: Incoming) -> str:
    """The media type of the request, lower case, without parameters."""
    value = request.header(b"content-type") or ""
    if value == FORM:
        return FORM
    return value.split(";")[0].strip().lower()


async def read_body(request: Incoming, receive: Receive, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is known to be over ``limit`` (read no further).

    Read straight from the ASGI ``receive`` callable; a client that goes away mid-body is a
    400 (``client_disconnected``), answered to no one but counted.
    """
    declared = request.header(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejection(413, "body_too_large", f"{declared} bytes")
    message = await receive()
    if message["type"] != "http.request":
        raise Rejection(400, "client_disconnected")
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body
    chunks = bytearray(body)
    while len(chunks) <= limit and message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise Rejection(400, "client_disconnected")
        chunks += message.get("body", b"")
    if len(chunks) > limit:
        raise Rejection(413, "body_too_large", f"over {limit} bytes")
    return bytes(chunks)


def first(params: Sequence[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name``, or None."""
    return next((value for key, value in params if key == name), None)


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_form(body)
    except UnicodeDecodeError as exc:
        raise Rejection(400, "malformed_body", "not UTF-8") from exc
    except ValueError as exc:
        raise Rejection(400, "malformed_body", str(exc)[:200]) from exc


def _parse_json(body: bytes) -> list[tuple[str, str]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection(400, "malformed_body", f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise Rejection(400, "malformed_body", "not a JSON object")
    return [(str(k), v if isinstance(v, str) else orjson.dumps(v).decode()) for k, v in doc.items()]
