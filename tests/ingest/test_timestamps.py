"""Signed callbacks with odd Timestamps: kept (204), flagged in the envelope, counted, and
logged at most once a minute per subaccount; over real HTTP, the bus in-process."""

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from ingest.app import STATUS_PATH
from ingest.timestamps import timestamp_flag
from tests.conftest import SettingsFactory
from tests.helpers import signed_headers
from tests.ingest.support import (
    OTHER,
    OTHER_TOKEN,
    STATUS,
    SUB,
    SUB_TOKEN,
    Running,
    registry,
    serving,
)
from voicepulse import topics


@pytest.fixture
async def running(settings_factory: SettingsFactory) -> AsyncIterator[Running]:
    async with serving(settings_factory(), registry()) as running:
        yield running


async def _post(client: httpx.AsyncClient, url: str, token: str, **params: str) -> int:
    data = {**STATUS, **params}
    response = await client.post(url, data=data, headers=signed_headers(token, url, data))
    return response.status_code


async def test_odd_timestamps_are_kept_flagged_counted_and_logged_once_a_minute(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    url = running.url(STATUS_PATH)
    now = datetime.now(UTC)
    stamps = {
        "1": "Fri, 01 Jan 2100 00:00:00 GMT",  # the year 2100: no clock skew explains it
        "2": format_datetime(now + timedelta(seconds=120)),  # a clock two minutes ahead
        "3": format_datetime(now),
        "4": format_datetime(now + timedelta(seconds=600)),
        "5": "Thu, 01 Jan 1970 00:00:00 GMT",  # a zeroed clock
    }
    with caplog.at_level(logging.WARNING, logger="ingest.timestamps"):
        async with httpx.AsyncClient() as client:
            codes = [
                await _post(client, url, SUB_TOKEN, SequenceNumber=seq, Timestamp=stamp)
                for seq, stamp in stamps.items()
            ]
            codes.append(
                await _post(client, url, OTHER_TOKEN, AccountSid=OTHER, Timestamp=stamps["1"])
            )
            metrics = (await client.get(running.url("/metrics"))).text
    assert codes == [204] * 6
    flags = {
        e.account_sid + ":" + e.id: e.fields["flags"] for e in running.published(topics.CALL_STATUS)
    }
    call = STATUS["CallSid"]
    assert flags == {
        f"{SUB}:{call}:1": ["timestamp_implausible"],
        f"{SUB}:{call}:2": ["timestamp_in_future"],
        f"{SUB}:{call}:3": [],
        f"{SUB}:{call}:4": ["timestamp_in_future"],
        f"{SUB}:{call}:5": ["timestamp_implausible"],
        f"{OTHER}:{call}:3": ["timestamp_implausible"],
    }
    counted = 'voicepulse_ingest_odd_timestamps_total{flag="%s",route="status"} %s'
    assert counted % ("timestamp_in_future", "2.0") in metrics
    assert counted % ("timestamp_implausible", "3.0") in metrics
    # One line per subaccount within the minute, the first event of each.
    lines = [r.getMessage() for r in caplog.records if r.name == "ingest.timestamps"]
    assert len(lines) == 2
    assert SUB in lines[0]
    assert "timestamp_implausible" in lines[0]
    assert OTHER in lines[1]


def test_the_flags_bounds() -> None:
    received = 1_796_400_000
    assert timestamp_flag(received + 30, received, 30) is None
    assert timestamp_flag(received + 31, received, 30) == "timestamp_in_future"
    assert timestamp_flag(received + 86_400, received, 30) == "timestamp_in_future"
    assert timestamp_flag(received + 86_401, received, 30) == "timestamp_implausible"
    assert timestamp_flag(received - 30 * 86_400, received, 30) is None  # old is not odd here
    assert timestamp_flag(1_199_145_599, received, 30) == "timestamp_implausible"
