"""Tokens and sessions: made and revoked by the CLI, kept as hashes, a browser session that
is HttpOnly and SameSite, CSRF on state changes, no token in a log line, and no dashboard open
beyond loopback without a token."""

import logging
import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from dashboards.app import create_app, tokens_path
from dashboards.reader import Reader
from dashboards.stage import dashboard_stage, demo_token
from dashboards.tokens import TokenStore
from ingest.server import HttpServerStage
from tests.dashboards.conftest import Dashboard, ServerThread
from voicepulse.cli import main
from voicepulse.errors import ConfigError
from voicepulse.settings import Settings

_SID = "AC" + "1" * 32


def test_tokens_cli_prints_a_token_once_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["tokens", "create", "--tenant", _SID, "--name", "acme", *data]) == 0
    token = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(r"vpd_[A-Za-z0-9_-]{43}", token)
    assert main(["tokens", "create", "--operator", "--name", "ops", *data]) == 0
    capsys.readouterr()
    assert main(["tokens", "list", *data]) == 0
    listed = capsys.readouterr().out
    assert "acme" in listed
    assert _SID in listed
    assert "operator" in listed
    assert token not in listed
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("tokens.sqlite*"))
    assert token.encode() not in stored
    with sqlite3.connect(tmp_path / "tokens.sqlite") as db:
        (token_id,) = db.execute("SELECT id FROM tokens WHERE name = 'acme'").fetchone()
    assert main(["tokens", "revoke", token_id, *data]) == 0
    assert main(["tokens", "revoke", token_id, *data]) == 1
    store = TokenStore(tmp_path / "tokens.sqlite")
    assert store.authenticate(token) is None
    store.close()
    assert main(["tokens", "create", "--tenant", "not-a-sid", "--name", "x", *data]) == 1


def _sign_in(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/login", data={"token": token}, follow_redirects=False)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def test_browser_session_cookie_csrf_and_revocation(
    dashboard: Dashboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = TokenStore(tokens_path(dashboard.settings))
    token, info = store.create("session test", accounts=(dashboard.tenant_sid,))
    with httpx.Client(base_url=dashboard.url) as client:
        assert _sign_in(client, "vpd_wrong").status_code == 401
        signed = _sign_in(client, token)
        assert signed.status_code == 303
        assert signed.headers["location"] == "/fleet"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie
        assert token not in signed.headers["set-cookie"]
        page = client.get("/fleet")
        assert page.status_code == 200
        assert dashboard.tenant_sid in page.text
        assert token not in page.text
        assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
        assert client.get("/fleet").status_code == 200  # still signed in
        store.revoke(info.id)
        assert client.get("/fleet", follow_redirects=False).status_code == 303
        assert client.get("/api/v1/fleet").status_code == 401
    store.close()
    assert token not in caplog.text


def test_sign_out_needs_the_sessions_csrf_token(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        _sign_in(client, dashboard.tenant)
        csrf = _csrf(client.get("/fleet").text)
        evil = client.post("/logout", data={"csrf": csrf}, headers={"Origin": "http://evil.test"})
        assert evil.status_code == 403
        out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        assert client.get("/fleet", follow_redirects=False).status_code == 303


def test_sign_in_from_another_site_is_refused(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        answer = client.post(
            "/login", data={"token": dashboard.tenant}, headers={"Origin": "http://evil.test"}
        )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_no_dashboard_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dashboard_host="0.0.0.0", demo=False)
    with pytest.raises(ConfigError, match="no token"):
        dashboard_stage(settings)
    assert main(["dashboard", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 1
    store = TokenStore(tokens_path(settings))
    store.create("ops", operator=True)
    store.close()
    dashboard_stage(settings)  # now it may (not started here)
    loopback = Settings(data_dir=tmp_path / "other", demo=False)
    dashboard_stage(loopback)  # loopback: no token needed to start


def test_demo_token_is_made_when_no_other_token_exists(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, demo=True)
    first = demo_token(settings)
    second = demo_token(settings)
    assert first
    assert second
    assert first != second
    store = TokenStore(tokens_path(settings))
    assert store.authenticate(first) is None  # rotated: only the printed one works
    who = store.authenticate(second)
    assert who is not None
    assert who.operator
    store.create("real", operator=True)
    store.close()
    assert demo_token(settings) is None


def test_the_admin_token_is_an_operator_token_and_never_an_empty_one(tmp_path: Path) -> None:
    admin = "a-configured-admin-token-0123"
    store = TokenStore(tmp_path / "tokens.sqlite", admin_token=SecretStr(admin))
    who = store.authenticate(admin)
    assert who is not None
    assert who.operator
    assert store.has_live()
    assert store.authenticate("") is None
    store.close()
    empty = TokenStore(tmp_path / "tokens.sqlite", admin_token=SecretStr(""))
    assert empty.authenticate("") is None
    assert not empty.has_live()
    empty.close()
    with pytest.raises(ConfigError, match="at least"):
        TokenStore(tmp_path / "tokens.sqlite", admin_token=SecretStr("short"))


def test_the_cookie_is_secure_when_the_public_url_is_https(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, demo=False, dashboard_url="https://dash.example.com")
    store = TokenStore(tokens_path(settings))
    token, _ = store.create("ops", operator=True)
    app = create_app(settings, tokens=store, reader=Reader(settings, ttl_s=0))
    server = ServerThread(HttpServerStage("dashboard", app, "127.0.0.1", 0))
    port = server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            signed = _sign_in(client, token)
        assert signed.status_code == 303
        assert "secure" in signed.headers["set-cookie"].lower()
    finally:
        server.stop()
        store.close()
