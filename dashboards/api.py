"""The JSON API, ``/api/v1/...``: every page's data, for a bearer token or a browser session.

Lists that grow are paginated with ``limit`` and ``offset``; each page says its
``next_offset`` (``null`` on the last). The document at ``/api/v1/openapi.json`` describes
every answer (``dashboards.openapi``).
"""

from datetime import date, timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboards import queries
from dashboards.app import Context, context, visible
from dashboards.openapi import document
from dashboards.tokens import Principal

__all__ = ["FLEET_SORTS", "fleet_page", "month_of", "page_args", "range_of", "routes"]

FLEET_SORTS = (
    "name",
    "account_sid",
    "calls_today",
    "asr",
    "acd_s",
    "short_call_ratio",
    "queue_time_p95_ms",
    "cps_utilisation",
    "open_alerts",
    "cost_month",
)
_MAX_LIMIT = 1000
SETTLED = timedelta(hours=2)
"""Minute rows older than this no longer change (the processors' horizon is one hour)."""
COST_TTL_S = 60.0
RECOMMENDATION_DAYS = 7
RECOMMENDATION_TTL_S = 600.0
"""The CPS recommendation reads every busy second once per candidate CPS: a week, kept 10 min."""


def principal(request: Request) -> Principal:
    """The caller, or 401 (the API never redirects)."""
    who, _ = context(request).who(request)
    if who is None:
        raise HTTPException(401, "sign in or send Authorization: Bearer <token>")
    return who


def page_args(request: Request, default: int = 100) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", default))
        offset = int(request.query_params.get("offset", 0))
    except ValueError as exc:
        raise HTTPException(400, "limit and offset must be integers") from exc
    if not 1 <= limit <= _MAX_LIMIT or offset < 0:
        raise HTTPException(400, f"limit must be 1..{_MAX_LIMIT}, offset >= 0")
    return limit, offset


def range_of(request: Request) -> str:
    chosen = request.query_params.get("range", "24h")
    if chosen not in queries.RANGES:
        raise HTTPException(400, f"range must be one of {', '.join(queries.RANGES)}")
    return chosen


def month_of(text: str | None, today: date) -> date:
    """``YYYY-MM`` as its first day; None: this month."""
    if text is None:
        return today.replace(day=1)
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise HTTPException(400, "month must look like 2026-10") from exc


def _paged(items: list[Any], limit: int, offset: int, total: int | None = None) -> JSONResponse:
    more = len(items) == limit if total is None else offset + limit < total
    body: dict[str, Any] = {
        "items": items,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }
    if total is not None:
        body["total"] = total
    return JSONResponse(body)


async def fleet_page(
    request: Request, who: Principal, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The fleet filtered (``q``: name or SID contains), sorted (``sort``, ``order``), paged."""
    ctx = context(request)
    accounts = None if who.operator else who.accounts
    rows = await ctx.reader.latest(("fleet", accounts), lambda: fleet_rows(ctx, accounts))
    needle = request.query_params.get("q", "").strip().lower()
    if needle:
        rows = [
            r for r in rows if needle in r["name"].lower() or needle in r["account_sid"].lower()
        ]
    sort = request.query_params.get("sort", "name")
    if sort not in FLEET_SORTS:
        raise HTTPException(400, f"sort must be one of {', '.join(FLEET_SORTS)}")
    descending = request.query_params.get("order", "asc") == "desc"

    def key(row: dict[str, Any]) -> tuple[bool, Any]:
        value = row[sort]
        if sort == "cost_month":
            value = float(value)
        if isinstance(value, str):
            value = value.lower()
        # Missing values sort last either way.
        return (value is None) != descending, value if value is not None else 0

    ordered = sorted(rows, key=key, reverse=descending)
    for row in ordered:
        row.setdefault("health", queries.lights(row, ctx.limits))
    return ordered[offset : offset + limit], len(ordered)


async def fleet_rows(ctx: Context, accounts: frozenset[str] | None) -> list[dict[str, Any]]:
    """The fleet, from a settled span (older than :data:`SETTLED`, read once per hour and
    kept) and the recent span (read again after the cache's few seconds); costs are kept
    for :data:`COST_TTL_S`."""
    now = ctx.now()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hour = now.replace(minute=0, second=0, microsecond=0)
    start = min(day, hour - timedelta(hours=23))
    settled = max(start, hour - SETTLED)
    spans = []
    if settled > start:
        spans.append(
            await ctx.reader.read(
                ("fleet-span", accounts, start, settled),
                lambda cur: queries.fleet_span(cur, start, settled, day, accounts),
                ttl_s=SETTLED.total_seconds() + 3600,
            )
        )
    spans.append(
        await ctx.reader.read(
            ("fleet-span", accounts, settled, None),
            lambda cur: queries.fleet_span(cur, settled, None, day, accounts),
        )
    )
    known = await ctx.reader.read(
        ("tenants", accounts), lambda cur: queries.known_tenants(cur, accounts)
    )
    month = day.date().replace(day=1)
    costs = await ctx.reader.read(
        ("costs", accounts, month),
        lambda cur: queries.month_costs(cur, month, accounts),
        ttl_s=max(ctx.reader.ttl_s, COST_TTL_S) if ctx.reader.ttl_s else 0,
    )
    alerts = await ctx.reader.read(
        ("open-alerts", accounts), lambda cur: queries.open_alert_counts(cur, accounts)
    )
    return queries.fleet(known, spans, costs, alerts, now)


async def _fleet(request: Request) -> Response:
    who = principal(request)
    limit, offset = page_args(request)
    rows, total = await fleet_page(request, who, limit, offset)
    return _paged(rows, limit, offset, total)


async def _series(request: Request) -> Response:
    who = principal(request)
    account = request.path_params["account_sid"]
    visible(who, account)
    return JSONResponse(await series_of(request, account))


async def series_of(request: Request, account: str) -> dict[str, Any]:
    ctx = context(request)
    chosen = range_of(request)
    now = ctx.now()
    return await ctx.reader.read(
        ("series", account, chosen, now.replace(second=0, microsecond=0)),
        lambda cur: queries.series(cur, account, chosen, now),
    )


async def _calls(request: Request) -> Response:
    who = principal(request)
    account = request.path_params["account_sid"]
    visible(who, account)
    limit, offset = page_args(request, default=50)
    rows = await context(request).reader.read(
        ("calls", account, limit, offset),
        lambda cur: queries.calls(cur, account, limit, offset),
    )
    return _paged(rows, limit, offset)


async def alerts_of(
    request: Request, accounts: frozenset[str] | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    state = request.query_params.get("state", "open")
    if state not in {"open", "all"}:
        raise HTTPException(400, "state must be open or all")
    return await context(request).reader.read(
        ("alerts", accounts, state, limit, offset),
        lambda cur: queries.alerts(
            cur, accounts, open_only=state == "open", limit=limit, offset=offset
        ),
    )


async def _alerts(request: Request) -> Response:
    who = principal(request)
    limit, offset = page_args(request)
    accounts = None if who.operator else who.accounts
    return _paged(await alerts_of(request, accounts, limit, offset), limit, offset)


async def _account_alerts(request: Request) -> Response:
    who = principal(request)
    account = request.path_params["account_sid"]
    visible(who, account)
    limit, offset = page_args(request)
    return _paged(await alerts_of(request, frozenset({account}), limit, offset), limit, offset)


async def billing_of(request: Request, who: Principal) -> dict[str, Any]:
    ctx = context(request)
    month = month_of(request.query_params.get("month"), ctx.now().date())
    accounts = None if who.operator else who.accounts
    return await ctx.reader.read(
        ("billing", accounts, month),
        lambda cur: queries.billing(cur, month, accounts, parent=who.operator),
    )


async def _billing(request: Request) -> Response:
    return JSONResponse(await billing_of(request, principal(request)))


async def isv_of(request: Request) -> dict[str, Any]:
    ctx = context(request)
    chosen = range_of(request)
    now = ctx.now()
    top = await ctx.reader.read(
        ("isv-top", chosen, now.replace(second=0, microsecond=0)),
        lambda cur: queries.isv_top(cur, chosen, now),
    )
    advice = await ctx.reader.read(
        ("cps-recommendation", RECOMMENDATION_DAYS),
        lambda cur: queries.cps_recommendations(cur, RECOMMENDATION_DAYS),
        ttl_s=RECOMMENDATION_TTL_S if ctx.reader.ttl_s else 0,
    )
    return {"series": await series_of(request, "ISV"), "top": top, "recommendations": advice}


async def _isv(request: Request) -> Response:
    visible(principal(request), "ISV")
    return JSONResponse(await isv_of(request))


async def _openapi(request: Request) -> Response:
    return JSONResponse(document())


def routes() -> list[BaseRoute]:
    prefix = "/api/v1"
    sub = prefix + "/subaccounts/{account_sid}"
    return [
        Route(prefix + "/openapi.json", _openapi),
        Route(prefix + "/fleet", _fleet),
        Route(sub + "/series", _series),
        Route(sub + "/calls", _calls),
        Route(sub + "/alerts", _account_alerts),
        Route(prefix + "/isv", _isv),
        Route(prefix + "/billing", _billing),
        Route(prefix + "/alerts", _alerts),
    ]
