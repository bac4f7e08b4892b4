"""The JSON API on real uvicorn over loopback, against a lake filled by the real sink: every
answer is checked against the OpenAPI document the app serves."""

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pyarrow.parquet as pq
import pytest

from alerting.silences import SilenceStore
from tests.dashboards.conftest import Dashboard
from tests.dashboards.lakedata import call_sids
from warehouse.export import export_billing
from warehouse.lake import open_lake


def _check(answer: httpx.Response, path: str, doc: dict[str, Any], method: str = "get") -> Any:
    """The answer's JSON, after validating it against the document's schema for ``path``."""
    content = doc["paths"][path][method]["responses"][str(answer.status_code)]["content"]
    schema = {**content["application/json"]["schema"], "components": doc["components"]}
    body = answer.json()
    jsonschema.Draft202012Validator(schema).validate(body)
    return body


@pytest.fixture(scope="module")
def doc(dashboard: Dashboard) -> dict[str, Any]:
    with dashboard.client(None) as client:
        answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    jsonschema.Draft202012Validator.check_schema(
        {**document["components"]["schemas"]["FleetPage"], "components": document["components"]}
    )
    return document


def _get(dashboard: Dashboard, url: str, token: str | None = None) -> httpx.Response:
    with dashboard.client(token or dashboard.operator) as client:
        return client.get(url)


SUB = "/api/v1/subaccounts/{account_sid}"


def test_fleet_shows_every_demo_subaccount_with_todays_health(
    dashboard: Dashboard, doc: dict[str, Any]
) -> None:
    body = _check(_get(dashboard, "/api/v1/fleet"), "/api/v1/fleet", doc)
    rows = {r["account_sid"]: r for r in body["items"]}
    assert set(rows) == set(dashboard.tenants)
    assert body["total"] == len(dashboard.tenants)
    assert body["next_offset"] is None
    healthy, low_asr, short = (rows[sid] for sid in list(dashboard.tenants)[:3])
    assert healthy["asr"] > 0.9
    assert healthy["health"]["asr"] == "ok"
    assert low_asr["asr"] < 0.5
    assert low_asr["health"]["asr"] == "bad"
    assert short["short_call_ratio"] > 0.5
    assert short["health"]["short_calls"] == "bad"
    assert low_asr["open_alerts"] == 1
    assert short["open_alerts"] == 0
    assert healthy["cost_month"] == "0.112000"
    assert healthy["currency"] == "USD"
    assert healthy["calls_today"] > 0
    assert sum(healthy["sparkline"]) > 0
    assert healthy["queue_time_p95_ms"] == pytest.approx(2 * 1.0202**300 / 2.0202, rel=0.01)


def test_fleet_sorts_filters_and_pages(dashboard: Dashboard, doc: dict[str, Any]) -> None:
    body = _check(_get(dashboard, "/api/v1/fleet?sort=asr&order=asc&limit=2"), "/api/v1/fleet", doc)
    asrs = [r["asr"] for r in body["items"]]
    assert asrs == sorted(asrs)
    assert body["next_offset"] == 2
    assert len(asrs) == 2
    second = _check(
        _get(dashboard, "/api/v1/fleet?sort=asr&order=asc&limit=2&offset=2"), "/api/v1/fleet", doc
    )
    assert {r["account_sid"] for r in second["items"]}.isdisjoint(
        {r["account_sid"] for r in body["items"]}
    )
    found = _check(_get(dashboard, "/api/v1/fleet?q=northwind"), "/api/v1/fleet", doc)
    assert [r["name"] for r in found["items"]] == ["Northwind Collections (low ASR)"]
    assert _get(dashboard, "/api/v1/fleet?sort=nonsense").status_code == 400
    assert _get(dashboard, "/api/v1/fleet?limit=0").status_code == 400


@pytest.mark.parametrize(
    ("range_name", "periods", "unit"),
    [("1h", 60, "minute"), ("24h", 24, "hour"), ("7d", 168, "hour"), ("30d", 30, "day")],
)
def test_series_has_every_period_of_the_range_with_its_rollup(
    dashboard: Dashboard, doc: dict[str, Any], range_name: str, periods: int, unit: str
) -> None:
    sid = dashboard.tenant_sid
    answer = _get(dashboard, f"/api/v1/subaccounts/{sid}/series?range={range_name}")
    body = _check(answer, SUB + "/series", doc)
    assert body["unit"] == unit
    assert len(body["periods"]) == periods
    outbound = body["groups"]["outbound"]
    assert len(outbound) == periods
    attempts = [p["attempts"] for p in outbound if p["attempts"] is not None]
    assert attempts
    assert all(a > 0 for a in attempts)
    assert any(p["queue_time_p95_ms"] for p in outbound)
    inbound = [p for p in body["groups"]["inbound"] if p["attestation"]]
    assert inbound
    assert inbound[-1]["attestation"]["A"] >= 2


def test_calls_come_newest_first_with_their_callbacks(
    dashboard: Dashboard, doc: dict[str, Any]
) -> None:
    sid = dashboard.tenant_sid
    body = _check(_get(dashboard, f"/api/v1/subaccounts/{sid}/calls"), SUB + "/calls", doc)
    assert [c["call_sid"] for c in body["items"]] == call_sids(0)
    first = body["items"][0]
    assert [e["call_status"] for e in first["callbacks"]] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert first["cost"] == "0.028000"
    assert first["pdd_ms"] == 900
    page = _check(
        _get(dashboard, f"/api/v1/subaccounts/{sid}/calls?limit=3&offset=3"), SUB + "/calls", doc
    )
    assert [c["call_sid"] for c in page["items"]] == call_sids(0)[3:]


def test_alerts_open_and_history(dashboard: Dashboard, doc: dict[str, Any]) -> None:
    opened = _check(_get(dashboard, "/api/v1/alerts"), "/api/v1/alerts", doc)
    assert [(a["rule"], a["state"]) for a in opened["items"]] == [("asr_low", "firing")]
    history = _check(_get(dashboard, "/api/v1/alerts?state=all"), "/api/v1/alerts", doc)
    assert len(history["items"]) == 3
    short = list(dashboard.tenants)[2]
    mine = _check(
        _get(dashboard, f"/api/v1/subaccounts/{short}/alerts?state=all"), SUB + "/alerts", doc
    )
    assert [a["state"] for a in mine["items"]] == ["resolved", "firing"]


def test_isv_rows_and_top_users(dashboard: Dashboard, doc: dict[str, Any]) -> None:
    body = _check(_get(dashboard, "/api/v1/isv?range=1h"), "/api/v1/isv", doc)
    assert body["series"]["account_sid"] == "ISV"
    assert any(p["cps_limit"] == 10.0 for p in body["series"]["groups"]["outbound"])
    assert {t["account_sid"] for t in body["top"]} == set(dashboard.tenants)
    assert sum(t["share"] for t in body["top"]) == pytest.approx(1.0)
    advice = {r["account_sid"]: r for r in body["recommendations"]}
    assert set(advice) == {"ISV", *dashboard.tenants}
    assert body["recommendations"][0]["account_sid"] == "ISV"
    assert all(r["recommended_cps"] == 1 for r in advice.values() if r["account_sid"] != "ISV")


def test_billing_per_subaccount_parent_and_reconciliation(
    dashboard: Dashboard, doc: dict[str, Any]
) -> None:
    body = _check(_get(dashboard, "/api/v1/billing"), "/api/v1/billing", doc)
    subaccounts = [t for t in body["totals"] if t["scope"] == "subaccount"]
    parents = [t for t in body["totals"] if t["scope"] == "parent"]
    assert len(subaccounts) == len(dashboard.tenants)
    assert all(t["cost"] == "0.112000" for t in subaccounts)
    assert sum(Decimal(p["cost"]) for p in parents) == Decimal("0.112") * len(dashboard.tenants)
    status = {d["account_sid"]: d["status"] for d in body["reconciliation"] if d["flagged"]}
    assert status.pop(dashboard.tenant_sid) == "mismatch"  # 8 minutes billed, Twilio says 5
    assert set(status.values()) == {"no_usage_record"}
    tenant = _check(_get(dashboard, "/api/v1/billing", dashboard.tenant), "/api/v1/billing", doc)
    assert {t["account_sid"] for t in tenant["totals"]} == {dashboard.tenant_sid}
    assert {t["scope"] for t in tenant["totals"]} == {"subaccount"}
    assert _get(dashboard, "/api/v1/billing?month=2026-13").status_code == 400


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_billing_downloads_match_the_export_command(
    dashboard: Dashboard, tmp_path: Path, fmt: str
) -> None:
    month = dashboard.now.strftime("%Y-%m")
    answer = _get(dashboard, f"/billing/{dashboard.tenant_sid}/{month}.{fmt}", dashboard.tenant)
    assert answer.status_code == 200
    con = open_lake(dashboard.settings, read_only=True)
    try:
        (expected,) = export_billing(
            con,
            dashboard.now.date().replace(day=1),
            "csv" if fmt == "csv" else "parquet",
            tmp_path,
            accounts=[dashboard.tenant_sid],
            progress=False,
        )
    finally:
        con.close()
    assert f'filename="{expected.name}"' in answer.headers["content-disposition"]
    for wrong in (f"/billing/ISV/{month}.{fmt}", f"/billing/{dashboard.tenant_sid}/{month}.txt"):
        assert _get(dashboard, wrong).status_code == 404
    if fmt == "csv":
        assert answer.content == expected.read_bytes()
    else:
        served = tmp_path / "served.parquet"
        served.write_bytes(answer.content)
        assert pq.read_table(served).equals(pq.read_table(expected))


def test_unknown_or_missing_token_is_401_and_pages_redirect(
    dashboard: Dashboard, doc: dict[str, Any]
) -> None:
    for token in (None, "vpd_not-a-token", "Bearer"):
        with dashboard.client(None) as client:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = client.get("/api/v1/fleet", headers=headers)
            assert answer.status_code == 401
            _check(answer, "/api/v1/fleet", doc)
            page = client.get("/fleet", headers=headers)
            assert page.status_code == 303
            assert page.headers["location"] == "/login"


def test_security_headers_on_every_answer(dashboard: Dashboard) -> None:
    with dashboard.client(dashboard.operator) as client:
        answers = [
            client.get(path)
            for path in (
                "/fleet",
                "/login",
                "/api/v1/fleet",
                "/api/v1/openapi.json",
                "/static/style.css",
                "/no/such/page",
                "/api/v1/subaccounts/AC00000000000000000000000000000000/nothing",
            )
        ]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"


def test_operators_silence_and_expire_alerts_in_the_alerting_store(
    dashboard: Dashboard, doc: dict[str, Any]
) -> None:
    low_asr = list(dashboard.tenants)[1]
    alert = {"account_sid": low_asr, "rule": "asr_low", "direction_group": "outbound"}
    store = SilenceStore.in_data_dir(dashboard.settings.data_dir)
    with dashboard.client(dashboard.operator) as client:
        made = client.post(
            "/api/v1/silences", json={**alert, "duration": "30m", "comment": "carrier work"}
        )
        assert made.status_code == 201
        silence = _check(made, "/api/v1/silences", doc, "post")
        assert silence["state"] == "active"
        assert silence["created_by"] == "ops"
        assert store.matches(alert)
        listed = _check(client.get("/api/v1/silences"), "/api/v1/silences", doc)
        assert silence["id"] in [s["id"] for s in listed["items"]]
        expired = client.post(f"/api/v1/silences/{silence['id']}/expire")
        assert (
            _check(expired, "/api/v1/silences/{silence_id}/expire", doc, "post")["state"]
            == "expired"
        )
        assert not store.matches(alert)
        bad = client.post("/api/v1/silences", json={"account_sid": "nope"})
        assert _check(bad, "/api/v1/silences", doc, "post")["error"]
        assert client.post("/api/v1/silences/nope/expire").status_code == 404
    with dashboard.client(dashboard.tenant) as client:
        assert client.get("/api/v1/silences").status_code == 404
        assert client.post("/api/v1/silences", json=alert).status_code == 404


def test_the_alerts_page_silences_with_its_csrf_token(dashboard: Dashboard) -> None:
    low_asr = list(dashboard.tenants)[1]
    store = SilenceStore.in_data_dir(dashboard.settings.data_dir)
    form = {"account_sid": low_asr, "rule": "asr_low", "direction_group": "outbound"}
    with httpx.Client(base_url=dashboard.url, follow_redirects=True) as client:
        client.post("/login", data={"token": dashboard.operator})
        page = client.get("/alerts")
        assert 'action="/alerts/silence"' in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        assert client.post("/alerts/silence", data=form).status_code == 403
        assert not store.matches(form)
        done = client.post(
            "/alerts/silence", data={**form, "csrf": csrf.group(1), "duration": "1h"}
        )
        assert done.status_code == 200
        assert "silenced until" in done.text
        (silence,) = store.matching(form)
        assert f'value="{silence.id}"' in done.text
        client.post("/alerts/expire", data={"id": silence.id, "csrf": csrf.group(1)})
        assert not store.matches(form)
