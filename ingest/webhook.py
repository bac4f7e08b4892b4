"""Reading one Twilio webhook: content type, size, parameters, tenant, signature.

The checks run in this order, and the first that fails decides the answer: 415 wrong content
type, 413 body over the limit (read no further), 400 malformed body or no AccountSid, 403 unknown
account, unknown shared key or bad signature. Nothing here publishes anything.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from ingest.public_url import PublicUrl
from ingest.rejection import Rejection
from ingest.signature import parse_signature_settings, verify
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant

__all__ = ["Webhook", "WebhookReader", "first", "read_body"]

FORM: Final = "application/x-www-form-urlencoded"
JSON: Final = "application/json"


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

    async def read(self, request: Request, *, parent_may_sign: bool = False) -> Webhook:
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
            body = await read_body(request, self._limit)
            params = _parse_form(body) if kind == FORM else _parse_json(body)
            signed = params if kind == FORM else None
            json_body = body if kind == JSON else None
        account_sid = first(params, "AccountSid")
        if not account_sid:
            raise Rejection(400, "missing_account_sid")
        tenant = await self._tenants.resolve(account_sid, first(params, "ParentAccountSid"))
        if tenant is None:
            raise Rejection(403, "unknown_account", account_sid)
        settings = parse_signature_settings(
            request.headers.get("x-twilio-webhooks-signature-settings")
        )
        if not settings.supported:
            raise Rejection(403, "unsupported_signature_algorithm", settings.algorithm)
        signature = request.headers.get("x-twilio-signature", "")

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


def content_type(request: Request) -> str:
    """The media type of the request, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is known to be over ``limit`` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejection(413, "body_too_large", f"{declared} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise Rejection(413, "body_too_large", f"over {limit} bytes")
    return bytes(chunks)


def first(params: Sequence[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name``, or None."""
    return next((value for key, value in params if key == name), None)


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
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
