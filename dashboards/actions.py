"""What operators may change from the dashboard: silences of alerts, made and expired.

Silences live in the alerting's own store (``alerting.silences``, ``<data_dir>/silences.sqlite``),
which the notifiers read: a silence made here is obeyed by every notifier at its next alert.
Tenants get 404 on every route here. Browser forms carry the session's CSRF token; the JSON
routes take a bearer token (or a session with ``X-CSRF-Token``).
"""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from alerting.silences import Silence, SilenceError, SilenceStore, parse_duration
from dashboards.app import context
from dashboards.auth import Session, csrf_ok, same_origin
from dashboards.queries import json_value
from dashboards.tokens import Principal
from ingest.form import parse_form

__all__ = ["routes", "silence_json", "silences_of"]

_MAX_BODY = 4096


def silence_json(silence: Silence) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": silence.id,
        "account_sid": silence.account_sid,
        "rule": silence.rule,
        "direction_group": silence.direction_group,
        "starts_at": json_value(silence.starts_at),
        "ends_at": json_value(silence.ends_at),
        "comment": silence.comment,
        "created_by": silence.created_by,
        "state": silence.state(now),
    }


def store_of(request: Request) -> SilenceStore:
    return context(request).silences


def _operator(request: Request) -> tuple[Principal, Session | None]:
    who, session = context(request).who(request)
    if who is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(401, "sign in or send Authorization: Bearer <token>")
        raise HTTPException(303, headers={"Location": "/login"})
    if not who.operator:
        raise HTTPException(404, "not found")
    return who, session


def silences_of(request: Request, *, include_expired: bool) -> list[dict[str, Any]]:
    return [silence_json(s) for s in store_of(request).silences(include_expired=include_expired)]


def _create(store: SilenceStore, who: Principal, fields: dict[str, Any]) -> Silence:
    try:
        span = parse_duration(str(fields.get("duration") or "2h"))
        return store.create(
            ends_at=datetime.now(UTC) + span,
            comment=str(fields.get("comment") or "silenced from the dashboard"),
            created_by=who.name,
            account_sid=fields.get("account_sid") or None,
            rule=fields.get("rule") or None,
            direction_group=fields.get("direction_group") or None,
        )
    except SilenceError as exc:
        raise HTTPException(400, str(exc)) from exc


def _expire(store: SilenceStore, silence_id: str) -> Silence:
    try:
        return store.expire(silence_id)
    except SilenceError as exc:
        raise HTTPException(404, "not found") from exc


async def _form(request: Request, session: Session | None) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise HTTPException(413, "form too large")
    fields = dict(parse_form(body))
    if not same_origin(request) or not csrf_ok(session, fields.get("csrf", "")):
        raise HTTPException(403, "missing or wrong CSRF token")
    return fields


def _back(message: str) -> Response:
    return RedirectResponse("/alerts?" + urlencode({"done": message}), status_code=303)


async def _silence_form(request: Request) -> Response:
    who, session = _operator(request)
    silence = _create(store_of(request), who, await _form(request, session))
    return _back(f"silenced until {json_value(silence.ends_at)} ({silence.id})")


async def _expire_form(request: Request) -> Response:
    _, session = _operator(request)
    fields = await _form(request, session)
    silence = _expire(store_of(request), fields.get("id", ""))
    return _back(f"silence {silence.id} expired")


async def _json_body(request: Request, session: Session | None) -> dict[str, Any]:
    if session is not None and not csrf_ok(session, request.headers.get("x-csrf-token", "")):
        raise HTTPException(403, "missing or wrong X-CSRF-Token")
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise HTTPException(413, "body too large")
    try:
        fields = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, "the body must be a JSON object") from exc
    if not isinstance(fields, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return fields


async def _list(request: Request) -> Response:
    _operator(request)
    include = request.query_params.get("state", "current") == "all"
    return JSONResponse({"items": silences_of(request, include_expired=include)})


async def _create_json(request: Request) -> Response:
    who, session = _operator(request)
    silence = _create(store_of(request), who, await _json_body(request, session))
    return JSONResponse(silence_json(silence), status_code=201)


async def _expire_json(request: Request) -> Response:
    _, session = _operator(request)
    await _json_body(request, session)
    silence = _expire(store_of(request), request.path_params["silence_id"])
    return JSONResponse(silence_json(silence))


def routes() -> list[BaseRoute]:
    return [
        Route("/alerts/silence", _silence_form, methods=["POST"]),
        Route("/alerts/expire", _expire_form, methods=["POST"]),
        Route("/api/v1/silences", _list, methods=["GET"]),
        Route("/api/v1/silences", _create_json, methods=["POST"]),
        Route("/api/v1/silences/{silence_id}/expire", _expire_json, methods=["POST"]),
    ]
