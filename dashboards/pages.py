"""The HTML pages: server-rendered, charts drawn on the server as SVG, usable without script.

A browser signs in once by posting a token to ``/login``; the session cookie then carries it.
Every form that changes something carries the session's CSRF token.
"""

import logging
import re
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboards import api, queries
from dashboards.actions import silences_of
from dashboards.app import context, visible
from dashboards.auth import COOKIE, Session, csrf_ok, same_origin
from dashboards.charts import Series, line_chart, sparkline
from dashboards.tokens import Principal
from ingest.form import parse_form
from warehouse.export import Format, export_billing

__all__ = ["routes"]

logger = logging.getLogger(__name__)

_FLEET_COLUMNS = (
    ("name", "Subaccount"),
    ("calls_today", "Calls today"),
    ("asr", "ASR"),
    ("acd_s", "ACD"),
    ("short_call_ratio", "Short calls"),
    ("queue_time_p95_ms", "QueueTime p95"),
    ("cps_utilisation", "CPS use"),
    ("open_alerts", "Open alerts"),
    ("cost_month", "Cost this month"),
)
_PAGE = 100
_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_MAX_FORM = 4096


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f} %"


def _num(value: float | int | None, digits: int = 1, unit: str = "") -> str:
    return "" if value is None else f"{value:,.{digits}f}{unit}"


def _page_principal(request: Request) -> tuple[Principal, Session | None]:
    who, session = context(request).who(request)
    if who is None:
        raise HTTPException(303, headers={"Location": "/login"})
    return who, session


def _render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    env = context(request).templates
    env.filters.setdefault("pct", _pct)
    env.filters.setdefault("num", _num)
    html = env.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status)


def _base(request: Request, who: Principal, session: Session | None, nav: str) -> dict[str, Any]:
    return {"who": who, "csrf": session.csrf if session else "", "nav": nav}


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise HTTPException(413, "form too large")
    return dict(parse_form(body))


async def _login_form(request: Request) -> Response:
    return _render(request, "login.html", who=None)


async def _login(request: Request) -> Response:
    if not same_origin(request):
        raise HTTPException(403, "cross-site sign-in refused")
    ctx = context(request)
    token = (await _form(request)).get("token", "").strip()
    who = ctx.tokens.authenticate(token)
    if who is None:
        logger.info(
            "dashboard sign-in refused from %s", request.client.host if request.client else "?"
        )
        return _render(
            request, "login.html", status=401, who=None, error="Unknown or revoked token."
        )
    session_id, _ = ctx.sessions.open(who.token_id)
    logger.info("dashboard sign-in: token %s (%s)", who.token_id, who.name)
    response = RedirectResponse("/fleet", status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        # Behind a TLS proxy the request arrives over HTTP: the public URL says HTTPS.
        secure=request.url.scheme == "https"
        or (ctx.settings.dashboard_url or "").startswith("https://"),
        path="/",
    )
    return response


async def _logout(request: Request) -> Response:
    _, session = _page_principal(request)
    _check_csrf(request, session, await _form(request))
    context(request).sessions.close(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _check_csrf(request: Request, session: Session | None, form: dict[str, str]) -> None:
    """State changes from a browser need the session's CSRF token and a same-origin request;
    a bearer-token client (no cookies, no ambient authority) needs neither."""
    if session is None and request.headers.get("authorization"):
        return
    if not same_origin(request) or not csrf_ok(session, form.get("csrf", "")):
        raise HTTPException(403, "missing or wrong CSRF token")


async def _home(request: Request) -> Response:
    return RedirectResponse("/fleet", status_code=303)


async def _fleet(request: Request) -> Response:
    who, session = _page_principal(request)
    try:
        page = max(0, int(request.query_params.get("page", 0)))
    except ValueError as exc:
        raise HTTPException(400, "page must be a number") from exc
    rows, total = await api.fleet_page(request, who, _PAGE, page * _PAGE)
    q = request.query_params.get("q", "")
    sort = request.query_params.get("sort", "name")
    order = request.query_params.get("order", "asc")

    def url(**changes: Any) -> str:
        params = {"q": q, "sort": sort, "order": order, "page": page, **changes}
        return "/fleet?" + urlencode({k: v for k, v in params.items() if v not in ("", 0)})

    def sort_url(key: str) -> str:
        flipped = "asc" if key == sort and order == "desc" else "desc"
        return url(
            sort=key, order=flipped if key == sort else ("asc" if key == "name" else "desc"), page=0
        )

    return _render(
        request,
        "fleet.html",
        **_base(request, who, session, "fleet"),
        rows=rows,
        total=total,
        q=q,
        sort=sort,
        order=order,
        columns=_FLEET_COLUMNS,
        sort_url=sort_url,
        spark=lambda values: sparkline([float(v) for v in values]),
        first=page * _PAGE + 1 if rows else 0,
        last=page * _PAGE + len(rows),
        prev_url=url(page=page - 1) if page > 0 else None,
        next_url=url(page=page + 1) if (page + 1) * _PAGE < total else None,
    )


def _times(data: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(p.removesuffix("Z")) for p in data["periods"]]


def _charts(data: dict[str, Any], group: str, cps_title: str) -> list[str]:
    times = _times(data)
    points = data["groups"].get(group) or [{} for _ in times]

    def col(name: str) -> list[float | None]:
        return [p.get(name) for p in points]

    limit = next((v for v in col("cps_limit") if v is not None), None)
    return [
        line_chart(
            "Attempts and answered",
            times,
            [Series("attempts", col("attempts")), Series("answered", col("answered"))],
        ),
        line_chart(
            "ASR and NER",
            times,
            [Series("ASR", col("asr")), Series("NER", col("ner"))],
            limit=0.7,
            limit_label="ASR 70 %",
        ),
        line_chart(
            "ACD (s)", times, [Series("ACD", col("acd_s"))], limit=30, limit_label="30 s", unit=" s"
        ),
        line_chart(
            "Short-call ratio",
            times,
            [Series("short calls", col("short_call_ratio"))],
            limit=0.1,
            limit_label="10 %",
        ),
        line_chart(
            "QueueTime p50 / p95 (ms)",
            times,
            [Series("p50", col("queue_time_p50_ms")), Series("p95", col("queue_time_p95_ms"))],
            limit=5000,
            limit_label="5 s",
        ),
        line_chart(
            cps_title,
            times,
            [Series("CPS peak", col("cps_peak"))],
            limit=limit,
            limit_label="CPS limit",
        ),
        line_chart(
            "Trunk CPS rejections", times, [Series("rejections", col("trunk_cps_rejections"))]
        ),
        line_chart(
            "Caller-ID concentration (top number's share)",
            times,
            [Series("top share", col("caller_id_top_share"))],
            limit=0.5,
            limit_label="50 %",
        ),
    ]


def _mix(data: dict[str, Any], group: str | None, column: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for name, points in data["groups"].items():
        if group is not None and name != group:
            continue
        for point in points:
            total.update(point.get(column) or {})
    return total


async def _subaccount(request: Request) -> Response:
    who, session = _page_principal(request)
    ctx = context(request)
    account = request.path_params["account_sid"]
    visible(who, account)
    data = await api.series_of(request, account)
    group = request.query_params.get("dir", "outbound")
    if group not in {"outbound", "inbound"}:
        raise HTTPException(400, "dir must be outbound or inbound")
    try:
        offset = max(0, int(request.query_params.get("calls", 0)))
    except ValueError as exc:
        raise HTTPException(400, "calls must be a number") from exc
    calls = await ctx.reader.read(
        ("calls", account, 50, offset), lambda cur: queries.calls(cur, account, 50, offset)
    )
    alerts = await ctx.reader.read(
        ("alerts", frozenset({account}), "all", 20, 0),
        lambda cur: queries.alerts(cur, frozenset({account}), open_only=False, limit=20, offset=0),
    )
    names = await ctx.reader.read(("names",), queries.tenant_names)
    attestation = _mix(data, "inbound", "attestation")
    seen = sum(attestation.values())
    points = data["groups"].get(group) or []
    return _render(
        request,
        "subaccount.html",
        **_base(request, who, session, "fleet"),
        account_sid=account,
        name=names.get(account, account),
        base=f"/subaccounts/{account}",
        ranges=list(queries.RANGES),
        range=data["range"],
        unit=data["unit"],
        periods=data["periods"],
        directions=("outbound", "inbound"),
        dir=group,
        charts=_charts(data, group, "Calls per second (peak) against the CPS limit"),
        debugger=sorted(_mix(data, None, "debugger_errors").items()),
        attestation=[(k, n, n / seen if seen else None) for k, n in sorted(attestation.items())],
        table=list(zip(data["periods"], points, strict=False)),
        alerts=alerts,
        show_account=False,
        actions=False,
        names=names,
        calls=calls,
        calls_next=offset + 50 if len(calls) == 50 else None,
    )


async def _isv(request: Request) -> Response:
    who, session = _page_principal(request)
    visible(who, "ISV")
    data = await api.isv_of(request)
    series = data["series"]
    times = _times(series)
    points = series["groups"].get("outbound") or [{} for _ in times]
    limit = next((p.get("cps_limit") for p in points if p.get("cps_limit") is not None), None)
    charts = [
        line_chart(
            "ISV calls per second (peak) against what it bought",
            times,
            [Series("CPS peak", [p.get("cps_peak") for p in points])],
            limit=limit,
            limit_label="ISV CPS limit",
        ),
        line_chart(
            "Calls created", times, [Series("calls", [p.get("calls_created") for p in points])]
        ),
        line_chart(
            "Trunk CPS rejections",
            times,
            [Series("rejections", [p.get("trunk_cps_rejections") for p in points])],
        ),
    ]
    return _render(
        request,
        "isv.html",
        **_base(request, who, session, "isv"),
        ranges=list(queries.RANGES),
        range=series["range"],
        charts=charts,
        top=data["top"],
        recommendations=data["recommendations"],
    )


async def _billing(request: Request) -> Response:
    who, session = _page_principal(request)
    data = await api.billing_of(request, who)
    names = await context(request).reader.read(("names",), queries.tenant_names)
    return _render(
        request,
        "billing.html",
        **_base(request, who, session, "billing"),
        names=names,
        **data,
    )


async def _billing_download(request: Request) -> Response:
    """The month's billing of one subaccount, the file ``voicepulse export billing`` writes."""
    who, _ = _page_principal(request)
    account = request.path_params["account_sid"]
    visible(who, account)
    fmt: Format = "csv" if request.path_params["fmt"] == "csv" else "parquet"
    if request.path_params["fmt"] != fmt or not _SID.match(account):
        raise HTTPException(404, "not found")
    month = api.month_of(request.path_params["month"], context(request).now().date())
    out = Path(tempfile.mkdtemp(prefix="voicepulse-billing-"))
    try:
        written = await context(request).reader.run(
            lambda cur: export_billing(cur, month, fmt, out, accounts=[account], progress=False)
        )
    except BaseException:
        _remove(out)
        raise
    if not written:
        _remove(out)
        raise HTTPException(404, "no billing for that month")
    media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    return FileResponse(
        written[0],
        media_type=media,
        filename=written[0].name,
        background=BackgroundTask(_remove, out),
    )


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


async def _alerts(request: Request) -> Response:
    who, session = _page_principal(request)
    try:
        page = max(0, int(request.query_params.get("page", 0)))
    except ValueError as exc:
        raise HTTPException(400, "page must be a number") from exc
    accounts = None if who.operator else who.accounts
    rows = await api.alerts_of(request, accounts, _PAGE, page * _PAGE)
    state = request.query_params.get("state", "open")
    names = await context(request).reader.read(("names",), queries.tenant_names)
    return _render(
        request,
        "alerts.html",
        **_base(request, who, session, "alerts"),
        alerts=rows,
        state=state,
        names=names,
        show_account=True,
        actions=who.operator and state == "open",
        silences=silences_of(request, include_expired=False) if who.operator else [],
        message=request.query_params.get("done"),
        next_url=f"/alerts?{urlencode({'state': state, 'page': page + 1})}"
        if len(rows) == _PAGE
        else None,
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/", _home),
        Route("/login", _login_form, methods=["GET"]),
        Route("/login", _login, methods=["POST"]),
        Route("/logout", _logout, methods=["POST"]),
        Route("/fleet", _fleet),
        Route("/subaccounts/{account_sid}", _subaccount),
        Route("/isv", _isv),
        Route("/billing", _billing),
        Route("/billing/{account_sid}/{month}.{fmt}", _billing_download),
        Route("/alerts", _alerts),
    ]
