"""The fake Twilio answers as Twilio does: checked against Twilio's OpenAPI specs, over real HTTP.

Every body the pollers read is validated against the spec's schema (strictly: every property
present, nothing extra, formats checked), and the query parameters the pollers send are ones the
spec declares. Paging, filters, auth, simulated time and faults are checked on their own.
"""

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.tenants import load_tenants
from simulator.fake_twilio import FakeState, generate_state, serve_fake_twilio
from tests.helpers import free_port
from tests.simulator.oai import API_V2010, INSIGHTS_V1, query_parameters, response_validator

API = "/2010-04-01"


@pytest.fixture
def state() -> FakeState:
    return generate_state(subaccounts=3, calls=240, days=2, recent_share=0.2, seed=5)


@pytest.fixture
async def client(state: FakeState) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_fake_twilio(state) as base,
        httpx.AsyncClient(base_url=base, auth=(state.parent.sid, state.parent.auth_token)) as c,
    ):
        yield c


def _sub(state: FakeState, index: int = 0) -> str:
    return list(state.subaccounts)[index]


async def _get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await client.get(url, params=params or None)
    assert response.status_code == 200, response.text
    return response.json()


def _valid(spec: str, path: str, body: Any) -> None:
    errors = sorted(response_validator(spec, path).iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


async def test_calls_list_and_fetch_match_the_spec(
    client: httpx.AsyncClient, state: FakeState
) -> None:
    sub = _sub(state)
    first = await _get(client, f"{API}/Accounts/{sub}/Calls.json", PageSize=20)
    _valid(API_V2010, "/2010-04-01/Accounts/{AccountSid}/Calls.json", first)
    second = await _get(client, first["next_page_uri"])
    _valid(API_V2010, "/2010-04-01/Accounts/{AccountSid}/Calls.json", second)
    assert second["previous_page_uri"]
    one = await _get(client, first["calls"][0]["uri"])
    _valid(API_V2010, "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", one)
    statuses = {c["status"] for c in first["calls"] + second["calls"]}
    assert statuses <= {"queued", "ringing", "in-progress", "completed", "busy", "failed",
                        "no-answer", "canceled"}  # fmt: skip


async def test_accounts_and_usage_match_the_spec(
    client: httpx.AsyncClient, state: FakeState
) -> None:
    accounts = await _get(client, f"{API}/Accounts.json")
    _valid(API_V2010, "/2010-04-01/Accounts.json", accounts)
    assert {a["sid"] for a in accounts["accounts"]} == {state.parent.sid, *state.subaccounts}
    account = await _get(client, f"{API}/Accounts/{_sub(state)}.json")
    _valid(API_V2010, "/2010-04-01/Accounts/{Sid}.json", account)
    usage = await _get(
        client,
        f"{API}/Accounts/{_sub(state)}/Usage/Records/Daily.json",
        Category="calls",
        StartDate=(state.clock.now() - timedelta(days=3)).date().isoformat(),
        IncludeSubaccounts="false",
    )
    _valid(API_V2010, "/2010-04-01/Accounts/{AccountSid}/Usage/Records/Daily.json", usage)
    assert [r["start_date"] for r in usage["usage_records"]] == sorted(
        r["start_date"] for r in usage["usage_records"]
    )
    assert sum(int(r["count"]) for r in usage["usage_records"]) > 0


async def test_insights_match_the_spec_and_page_by_absolute_urls(
    client: httpx.AsyncClient, state: FakeState
) -> None:
    path = "/v1/Voice/Summaries"
    first = await _get(
        client, path, Subaccount=_sub(state), StartTime="3d", ProcessingState="all", PageSize=25
    )
    _valid(INSIGHTS_V1, path, first)
    next_url = first["meta"]["next_page_url"]
    assert next_url.startswith(str(client.base_url))  # absolute, back at the fake
    second = await _get(client, next_url)
    _valid(INSIGHTS_V1, path, second)
    sid = first["call_summaries"][0]["call_sid"]
    one = await _get(client, f"/v1/Voice/{sid}/Summary")
    _valid(INSIGHTS_V1, "/v1/Voice/{CallSid}/Summary", one)
    seen = {s["call_sid"] for s in first["call_summaries"] + second["call_summaries"]}
    assert len(seen) == 50


async def test_the_validator_catches_drift(client: httpx.AsyncClient, state: FakeState) -> None:
    path = "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"
    call = next(iter(state.calls_by_sid.values()))
    good = await _get(client, f"{API}/Accounts/{call.account_sid}/Calls/{call.sid}.json")
    validator = response_validator(API_V2010, path)
    assert not list(validator.iter_errors(good))
    for drift in (
        {"status": "initiated"},  # not in the Call resource's vocabulary
        {"start_time": "2026-11-26T10:00:00Z"},  # ISO, where Api v2010 writes RFC 2822
        {"duration": 12},  # a number, where Twilio sends a string
        {"surprise": "x"},  # a property the spec does not name
    ):
        assert list(validator.iter_errors({**good, **drift})), drift
    missing = {k: v for k, v in good.items() if k != "queue_time"}
    assert list(validator.iter_errors(missing))


def test_the_parameters_the_pollers_send_are_in_the_spec() -> None:
    calls = query_parameters(API_V2010, "/2010-04-01/Accounts/{AccountSid}/Calls.json")
    assert {"StartTime>", "StartTime<", "PageSize", "Page", "PageToken"} <= calls
    usage = query_parameters(
        API_V2010, "/2010-04-01/Accounts/{AccountSid}/Usage/Records/Daily.json"
    )
    assert {"Category", "StartDate", "EndDate", "IncludeSubaccounts", "PageSize"} <= usage
    summaries = query_parameters(INSIGHTS_V1, "/v1/Voice/Summaries")
    assert {"Subaccount", "StartTime", "EndTime", "ProcessingState", "PageSize"} <= summaries


async def test_every_call_once_across_pages_and_date_filters(
    client: httpx.AsyncClient, state: FakeState
) -> None:
    sub = _sub(state)
    today = state.clock.now().date()
    seen: list[str] = []
    body = await _get(client, f"{API}/Accounts/{sub}/Calls.json", PageSize=7)
    while True:
        seen += [c["sid"] for c in body["calls"]]
        if body["next_page_uri"] is None:
            break
        body = await _get(client, body["next_page_uri"])
    assert sorted(seen) == sorted(c.sid for c in state.calls_by_account[sub])
    todays = await _get(
        client, f"{API}/Accounts/{sub}/Calls.json", PageSize=1000, **{"StartTime>": f"{today}"}
    )
    expected = {c.sid for c in state.calls_by_account[sub] if c.start.date() >= today}
    assert {c["sid"] for c in todays["calls"]} == expected


async def test_prices_appear_late_and_summaries_complete_over_time(
    client: httpx.AsyncClient, state: FakeState
) -> None:
    recent = min(
        (c for c in state.calls_by_sid.values() if c.end <= state.clock.now()),
        key=lambda c: state.clock.now() - c.end,
    )
    url = f"{API}/Accounts/{recent.account_sid}/Calls/{recent.sid}.json"
    before = await _get(client, url)
    assert before["price"] is None
    state.clock.advance(timedelta(minutes=2))
    partial = await _get(client, f"/v1/Voice/{recent.sid}/Summary")
    assert partial["processing_state"] == "partial"
    state.clock.advance(timedelta(minutes=40))
    after = await _get(client, url)
    assert str(after["price"]).startswith("-")
    complete = await _get(client, f"/v1/Voice/{recent.sid}/Summary")
    assert complete["processing_state"] == "complete"


async def test_auth_is_checked(state: FakeState) -> None:
    sub, other = _sub(state, 0), _sub(state, 1)
    key_sid, (secret, _) = next(iter(state.api_keys.items()))
    async with serve_fake_twilio(state) as base, httpx.AsyncClient(base_url=base) as c:
        calls = f"{API}/Accounts/{sub}/Calls.json"
        assert (await c.get(calls)).status_code == 401
        assert (await c.get(calls, auth=(state.parent.sid, "wrong"))).status_code == 401
        assert (await c.get(calls, auth=(key_sid, secret))).status_code == 200
        token = state.subaccounts[sub].auth_token
        assert (await c.get(calls, auth=(sub, token))).status_code == 200
        sibling = await c.get(f"{API}/Accounts/{other}/Calls.json", auth=(sub, token))
        assert sibling.status_code == 403
        parent = (state.parent.sid, state.parent.auth_token)
        with_token = (await c.get(f"{API}/Accounts/{sub}.json", auth=parent)).json()
        assert with_token["auth_token"] == token
        with_key = (await c.get(f"{API}/Accounts/{sub}.json", auth=(key_sid, secret))).json()
        assert with_key["auth_token"] is None


async def test_faults_and_refusals(client: httpx.AsyncClient, state: FakeState) -> None:
    sub = _sub(state)
    too_big = await client.get("/v1/Voice/Summaries", params={"PageSize": 1001})
    assert too_big.status_code == 400
    assert too_big.json()["code"] == 20001
    state.set_insights(sub, enabled=False)
    refused = await client.get("/v1/Voice/Summaries", params={"Subaccount": sub})
    assert refused.status_code == 403
    state.faults.rate_429 = 1.0
    limited = await client.get(f"{API}/Accounts/{sub}/Calls.json")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    state.faults.rate_429, state.faults.rate_5xx = 0.0, 1.0
    assert (await client.get(f"{API}/Accounts/{sub}/Calls.json")).status_code == 503


async def test_usage_rolls_subaccounts_in_unless_told_not_to(
    client: httpx.AsyncClient, state: FakeState
) -> None:
    path = f"{API}/Accounts/{state.parent.sid}/Usage/Records/Daily.json"
    since = (state.clock.now() - timedelta(days=3)).date().isoformat()
    rolled = await _get(client, path, Category="calls", StartDate=since)
    own = await _get(client, path, Category="calls", StartDate=since, IncludeSubaccounts="false")
    total = len(state.calls_by_sid)
    ended = sum(int(r["count"]) for r in rolled["usage_records"])
    assert 0 < ended <= total
    assert sum(int(r["count"]) for r in own["usage_records"]) == 0  # the parent made no calls


async def test_the_fake_twilio_command_serves_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    tenants = tmp_path / "tenants.toml"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicepulse.cli", "fake-twilio", "--port", str(port),
        "--subaccounts", "3", "--calls", "30", "--tenants-out", str(tenants),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        while "VOICEPULSE_TWILIO_INSIGHTS_BASE_URL" not in lines:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "fake-twilio exited early"
            if "export " in line:
                name, _, value = line.strip().removeprefix("export ").partition("=")
                lines[name] = value
        base = lines["VOICEPULSE_TWILIO_API_BASE_URL"]
        auth = (lines["VOICEPULSE_TWILIO_ACCOUNT_SID"], lines["VOICEPULSE_TWILIO_AUTH_TOKEN"])
        async with httpx.AsyncClient(base_url=base, auth=auth) as c:
            accounts = (await c.get(f"{API}/Accounts.json")).json()["accounts"]
        assert len(accounts) == 4
        assert len(load_tenants(tenants)) == 3
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0


async def test_usage_of_the_calls_category_follows_from_the_call_resources(
    client: httpx.AsyncClient, state: FakeState
) -> None:
    """Per subaccount and day, ``calls``' count, minutes and price are what the subaccount's own
    Call resources say: its ended calls created that day, each call's duration rounded up to
    the minute, the prices rated so far. So a day whose calls are all rated reconciles."""
    state.clock.freeze()
    since = (state.clock.now() - timedelta(days=3)).date()
    for sub in state.subaccounts:
        listed = await _get(client, f"{API}/Accounts/{sub}/Calls.json", PageSize=1000)
        assert listed["next_page_uri"] is None
        expected: dict[str, list[Decimal]] = {}
        for call in listed["calls"]:
            if call["end_time"] is None:
                continue  # not ended: no usage yet
            day = parsedate_to_datetime(call["date_created"]).date().isoformat()
            tally = expected.setdefault(day, [Decimal(0)] * 3)
            tally[0] += 1
            tally[1] += -(-int(call["duration"]) // 60)
            tally[2] -= Decimal(call["price"] or 0)
        usage = await _get(
            client,
            f"{API}/Accounts/{sub}/Usage/Records/Daily.json",
            Category="calls",
            StartDate=since.isoformat(),
            IncludeSubaccounts="false",
        )
        records = usage["usage_records"]
        got = {
            r["start_date"]: [Decimal(r["count"]), Decimal(r["usage"]), Decimal(str(r["price"]))]
            for r in records
            if r["count"] != "0"
        }
        assert got == expected, sub
        assert sum(int(r["count"]) for r in records) == sum(int(e[0]) for e in expected.values())
