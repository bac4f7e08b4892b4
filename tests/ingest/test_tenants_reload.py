"""The tenants registry reloads without a restart, keeps the old one on a bad file, and never
drops a request in flight while it does."""

import asyncio
import logging
import os
import signal
from pathlib import Path

import httpx
import pytest

from ingest.app import STATUS_PATH
from ingest.tenant_source import TenantSource
from tests.conftest import SettingsFactory
from tests.helpers import eventually, signed_headers
from tests.ingest.support import STATUS, SUB, serving
from voicepulse import topics

A = "AC" + "a" * 32
B = "AC" + "b" * 32


def _tenant(sid: str, token: str, name: str = "t") -> str:
    return f'[[tenants]]\naccount_sid = "{sid}"\nname = "{name}"\nauth_token = "{token}"\n'


def _write(path: Path, text: str) -> None:
    staged = path.with_suffix(".tmp")
    staged.write_text(text)
    os.replace(staged, path)  # what editors and config managers do: never a half file


@pytest.fixture
def tenants_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.toml"
    _write(path, _tenant(A, "token-a"))
    return path


async def _has(source: TenantSource, sid: str) -> bool:
    return source.get(sid) is not None


async def test_file_change_is_picked_up(tenants_file: Path) -> None:
    source = TenantSource.from_file(tenants_file, reload_interval_s=0.05)
    await source.start()
    try:
        assert source.get(B) is None
        _write(tenants_file, _tenant(A, "token-a") + _tenant(B, "token-b"))
        await eventually(lambda: _has(source, B), bool, timeout_s=5)
        assert source.get(A) is not None
    finally:
        await source.stop()


async def test_sighup_reloads(tenants_file: Path) -> None:
    source = TenantSource.from_file(tenants_file, reload_interval_s=3600)
    await source.start()
    try:
        _write(tenants_file, _tenant(B, "token-b"))
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: _has(source, B), bool, timeout_s=5)
        assert source.get(A) is None
    finally:
        await source.stop()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[tenants]\n", "is not valid TOML"),
        (_tenant("AC123", "s3cr3t-1"), "tenants.0.account_sid: String should match pattern"),
        (
            _tenant(A, "s3cr3t-1") + _tenant(A, "s3cr3t-2"),
            f"tenants[1] ({A}): account_sid listed twice",
        ),
        (
            f'[[tenants]]\naccount_sid = "{B}"\nname = "b"\n'
            'auth_token_env = "VP_TEST_UNSET_TOKEN"\n',
            "environment variable VP_TEST_UNSET_TOKEN is not set",
        ),
    ],
)
async def test_bad_file_keeps_the_old_registry_and_says_what_is_wrong(
    tenants_file: Path, caplog: pytest.LogCaptureFixture, text: str, problem: str
) -> None:
    errors: list[int] = []
    source = TenantSource.from_file(tenants_file, on_reload_error=lambda: errors.append(1))
    _write(tenants_file, text)
    with caplog.at_level(logging.ERROR, logger="ingest.tenant_source"):
        assert not source.reload()
    assert source.get(A) is not None
    assert errors == [1]
    [record] = caplog.records
    assert str(tenants_file) in record.getMessage()
    assert problem in record.getMessage()
    assert (
        "token"
        not in record.getMessage().replace(str(tenants_file), "").replace("auth_token_env", "")
        or "VP_TEST_UNSET_TOKEN" in problem
    )


async def test_requests_in_flight_survive_reloads(
    tmp_path: Path, settings_factory: SettingsFactory
) -> None:
    path = tmp_path / "tenants.toml"
    _write(path, _tenant(SUB, "sub-token"))
    source = TenantSource.from_file(path, reload_interval_s=0.01)
    async with serving(settings_factory(), source) as running, httpx.AsyncClient() as client:
        url = running.url(STATUS_PATH)

        async def post(i: int) -> int:
            params = dict(STATUS, SequenceNumber=str(i))
            reply = await client.post(
                url, data=params, headers=signed_headers("sub-token", url, params)
            )
            return reply.status_code

        async def churn() -> None:
            for i in range(30):
                _write(path, _tenant(SUB, "sub-token", name=f"sub {i}"))
                await asyncio.sleep(0.01)

        statuses, _ = await asyncio.gather(asyncio.gather(*(post(i) for i in range(150))), churn())
        assert set(statuses) == {204}
        assert len(running.published(topics.CALL_STATUS)) == 150
        assert source.get(SUB) is not None
