"""A tenant token sees its own subaccount and nothing of the others: every route of the app,
tried for every other demo subaccount, answers 404 or shows none of them."""

import pytest
from starlette.routing import Mount, Route

from tests.dashboards.conftest import Dashboard

_OPERATOR_ONLY = {
    "/isv",
    "/api/v1/isv",
    "/alerts/silence",
    "/alerts/expire",
    "/api/v1/silences",
    "/api/v1/silences/{silence_id}/expire",
}


def _routes(dashboard: Dashboard) -> list[Route]:
    routes = [r for r in dashboard.routes if isinstance(r, Route)]
    assert {r.path for r in dashboard.routes if isinstance(r, Mount)} == {"/static"}
    assert len(routes) >= 15
    return routes


def _fill(path: str, account: str, dashboard: Dashboard) -> str:
    values = {
        "account_sid": account,
        "month": dashboard.now.strftime("%Y-%m"),
        "fmt": "csv",
        "silence_id": "0123456789ab",
    }
    for name in Route(path, lambda r: None).param_convertors:
        assert name in values, f"the isolation test does not know the parameter {name!r}"
        path = path.replace("{" + name + "}", values[name])
    return path


def test_every_route_hides_every_other_subaccount(dashboard: Dashboard) -> None:
    others = [sid for sid in dashboard.tenants if sid != dashboard.tenant_sid]
    names = [t.name for sid, t in dashboard.tenants.items() if sid != dashboard.tenant_sid]
    assert others
    tried = 0
    with dashboard.client(dashboard.tenant) as client:
        for route in _routes(dashboard):
            methods = sorted((route.methods or {"GET"}) - {"HEAD"})
            if "account_sid" in route.param_convertors:
                for other in [*others, "ISV", "AC" + "0" * 32]:
                    url = _fill(route.path, other, dashboard)
                    for method in methods:
                        answer = client.request(method, url, data={"csrf": "x"})
                        assert answer.status_code == 404, (method, url, answer.status_code)
                        tried += 1
                continue
            url = _fill(route.path, dashboard.tenant_sid, dashboard)
            for method in methods:
                answer = client.request(method, url, follow_redirects=False, data={"csrf": "x"})
                tried += 1
                if route.path in _OPERATOR_ONLY:
                    assert answer.status_code == 404, url
                    continue
                assert answer.status_code < 500, (method, url)
                for other in [*others, *names]:
                    assert other not in answer.text, (method, url, other)
        own = client.get(f"/api/v1/subaccounts/{dashboard.tenant_sid}/series")
        assert own.status_code == 200
    assert tried >= 30


@pytest.mark.parametrize("path", ["/fleet", "/api/v1/fleet", "/alerts?state=all", "/billing"])
def test_a_tenant_sees_its_own_subaccount(dashboard: Dashboard, path: str) -> None:
    with dashboard.client(dashboard.tenant) as client:
        answer = client.get(path)
    assert answer.status_code == 200
    if path != "/alerts?state=all":
        assert dashboard.tenant_sid in answer.text
