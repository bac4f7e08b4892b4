"""The fake Twilio's HTTP surface: the Api v2010 and Insights v1 endpoints VoicePulse reads.

Served from a :class:`FakeState`. Every request needs HTTP Basic auth with an account SID and
its auth token, or an API key SID and its secret; credentials of the parent read every
subaccount, those of a subaccount only that subaccount. Errors have Twilio's JSON shape
(``code``, ``message``, ``more_info``, ``status``). Injected faults (:class:`FaultPlan`) answer
429 with ``Retry-After`` or 503 before the request is served.
"""

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.fake_twilio.paging import paginate
from simulator.fake_twilio.params import BadParameter, api_date, insights_time
from simulator.fake_twilio.resources import (
    API,
    VOICE_CATEGORIES,
    account_json,
    call_json,
    summary_json,
    usage_records,
)
from simulator.fake_twilio.state import FakeCall, FakeState

__all__ = ["create_fake_app"]

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
_SUMMARY_STATES = {
    "completed": {"complete"},
    "partial": {"partial"},
    "started": {"partial", "complete"},
    "all": {"partial", "complete"},
    "complete": {"complete"},
}


class TwilioError(Exception):
    """Answered as Twilio answers errors."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TwilioError)
    body = {
        "code": exc.code,
        "message": exc.message,
        "more_info": f"https://www.twilio.com/docs/errors/{exc.code}",
        "status": exc.status,
    }
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _bad_parameter(request: Request, exc: Exception) -> Response:
    return _error_response(request, TwilioError(400, 20001, str(exc)))


class _Endpoints:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    # -- access ---------------------------------------------------------------------------

    def principal(self, request: Request) -> tuple[str, bool]:
        """The account the credentials act for, and whether they were its auth token."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise _unauthenticated()
        try:
            user, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _unauthenticated() from exc
        account = self.state.account(user)
        if account is not None and hmac.compare_digest(account.auth_token, secret):
            return account.sid, True
        key = self.state.api_keys.get(user)
        if key is not None and hmac.compare_digest(key[0], secret):
            return key[1], False
        raise _unauthenticated()

    def readable(self, request: Request, account_sid: str, route: str) -> tuple[str, bool]:
        """Authenticate, check access to ``account_sid``, tally, then inject faults."""
        principal, with_token = self.principal(request)
        if self.state.account(account_sid) is None:
            raise TwilioError(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        if not self.state.owns(principal, account_sid):
            raise TwilioError(403, 20003, "Permission denied for this account")
        self.state.requests[route] += 1
        self.state.requests[f"{route}:{account_sid}"] += 1
        for name, value in request.query_params.multi_items():
            self.state.queries[f"{route}?{name}={value}"] += 1
        url, moment = str(request.url), time.monotonic()
        limited = self.state.limited_at.pop(url, None)
        if limited is not None:
            self.state.retry_gaps.append(moment - limited)
        fault = self.state.faults.draw(account_sid)
        if fault == 429:
            self.state.limited_at[url] = moment
            retry = str(self.state.faults.retry_after_s)
            raise TwilioError(429, 20429, "Too Many Requests", {"Retry-After": retry})
        if fault is not None:
            raise TwilioError(fault, 20500, "Service Unavailable")
        return principal, with_token

    # -- Api v2010 ------------------------------------------------------------------------

    async def accounts(self, request: Request) -> Response:
        principal, with_token = self.principal(request)
        self.readable(request, principal, "accounts")
        visible = [a for a in self.state.accounts() if self.state.owns(principal, a.sid)]
        paged = paginate(request, visible, lambda a: a.sid)
        body = paged.v2010(
            f"{API}/Accounts.json", "accounts", lambda a: account_json(a, with_token=with_token)
        )
        return JSONResponse(body)

    async def account(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        _, with_token = self.readable(request, sid, "account")
        account = self.state.account(sid)
        assert account is not None
        return JSONResponse(account_json(account, with_token=with_token))

    async def calls(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        self.readable(request, sid, "calls")
        now = self.state.clock.now()
        query = request.query_params
        after = _date(query.get("StartTime>"), "StartTime>")
        before = _date(query.get("StartTime<"), "StartTime<")
        on = _date(query.get("StartTime"), "StartTime")
        chosen = []
        for call in self.state.calls_by_account.get(sid, []):
            day = call.start.date()
            if (after and day < after) or (before and day >= before) or (on and day != on):
                continue
            phase = call.phase(now)
            if phase.visible:
                chosen.append((call, phase))
        paged = paginate(request, chosen, lambda item: item[0].sid)
        self.state.served["calls"] += len(paged.items)
        path = f"{API}/Accounts/{sid}/Calls.json"
        return JSONResponse(paged.v2010(path, "calls", lambda item: call_json(*item, now)))

    async def call(self, request: Request) -> Response:
        sid, call_sid = request.path_params["sid"], request.path_params["call_sid"]
        self.readable(request, sid, "call")
        now = self.state.clock.now()
        call = self.state.calls_by_sid.get(call_sid)
        phase = call.phase(now) if call is not None else None
        if call is None or call.account_sid != sid or phase is None or not phase.visible:
            raise TwilioError(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        return JSONResponse(call_json(call, phase, now))

    async def usage_daily(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        self.readable(request, sid, "usage")
        now = self.state.clock.now()
        query = request.query_params
        today = now.date()
        start = _date(query.get("StartDate"), "StartDate") or today - timedelta(days=30)
        end = min(_date(query.get("EndDate"), "EndDate") or today, today)
        category = query.get("Category")
        categories = [category] if category else list(VOICE_CATEGORIES)
        categories = [c for c in categories if c in VOICE_CATEGORIES]
        include = query.get("IncludeSubaccounts", "true").lower() != "false"
        owners = [sid]
        if include:
            owners += [a.sid for a in self.state.subaccounts.values() if a.owner_sid == sid]
        calls = [(c, c.phase(now)) for o in owners for c in self.state.calls_by_account.get(o, [])]
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        records = usage_records(sid, calls, categories, days, now)
        paged = paginate(request, records, lambda r: f"{r['category']}:{r['start_date']}")
        path = f"{API}/Accounts/{sid}/Usage/Records/Daily.json"
        return JSONResponse(paged.v2010(path, "usage_records", lambda r: r))

    # -- Insights v1 ----------------------------------------------------------------------

    async def summaries(self, request: Request) -> Response:
        query = request.query_params
        principal, _ = self.principal(request)
        target = query.get("Subaccount") or principal
        self.readable(request, target, "summaries")
        self._insights_enabled(target)
        now = self.state.clock.now()
        start = insights_time(query.get("StartTime", "4h"), "StartTime", now)
        end = insights_time(query.get("EndTime", "0m"), "EndTime", now)
        wanted = _summary_states(query.get("ProcessingState", "all"))
        chosen = []
        for call in self.state.calls_by_account.get(target, []):
            if start <= call.start <= end:
                state = call.phase(now).summary
                if state in wanted:
                    chosen.append((call, state))
        paged = paginate(request, chosen, lambda item: item[0].sid)
        self.state.served["summaries"] += len(paged.items)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            paged.insights(
                f"{base}/v1/Voice/Summaries",
                "call_summaries",
                lambda item: summary_json(item[0], item[1], _summary_url(base, item[0])),
            )
        )

    async def summary(self, request: Request) -> Response:
        call = self.state.calls_by_sid.get(request.path_params["call_sid"])
        principal, _ = self.principal(request)
        if call is None or not self.state.owns(principal, call.account_sid):
            raise TwilioError(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        self.readable(request, call.account_sid, "summary")
        self._insights_enabled(call.account_sid)
        state = call.phase(self.state.clock.now()).summary
        wanted = _summary_states(request.query_params.get("ProcessingState", "all"))
        if state is None or state not in wanted:
            raise TwilioError(404, 20404, f"No summary for {call.sid} yet")
        base = str(request.base_url).rstrip("/")
        return JSONResponse(summary_json(call, state, _summary_url(base, call)))

    def _insights_enabled(self, account_sid: str) -> None:
        account = self.state.account(account_sid)
        if account is not None and not account.insights_enabled:
            raise TwilioError(
                403,
                20403,
                "Voice Insights Advanced Features are not enabled for this account",
            )


def _unauthenticated() -> TwilioError:
    return TwilioError(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _date(value: str | None, name: str) -> date | None:
    return api_date(value, name) if value else None


def _summary_states(value: str) -> set[str]:
    try:
        return _SUMMARY_STATES[value]
    except KeyError:
        raise BadParameter(
            f"ProcessingState must be completed, partial or all: {value!r}"
        ) from None


def _summary_url(base: str, call: FakeCall) -> str:
    return f"{base}/v1/Voice/{call.sid}/Summary"


def create_fake_app(state: FakeState) -> Starlette:
    """The fake Twilio as an ASGI app over ``state`` (serve it on loopback with uvicorn)."""
    endpoints = _Endpoints(state)
    routes = [
        Route(f"{API}/Accounts.json", endpoints.accounts),
        Route(f"{API}/Accounts/{{sid}}.json", endpoints.account),
        Route(f"{API}/Accounts/{{sid}}/Calls.json", endpoints.calls),
        Route(f"{API}/Accounts/{{sid}}/Calls/{{call_sid}}.json", endpoints.call),
        Route(f"{API}/Accounts/{{sid}}/Usage/Records/Daily.json", endpoints.usage_daily),
        Route("/v1/Voice/Summaries", endpoints.summaries),
        Route("/v1/Voice/{call_sid}/Summary", endpoints.summary),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Response]] = {
        TwilioError: _error_response,
        BadParameter: _bad_parameter,
    }
    return Starlette(routes=routes, exception_handlers=handlers)
