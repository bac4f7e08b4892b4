"""Fixtures for the pullers: settings aimed at a fake Twilio, and reading topics back."""

from collections import defaultdict
from pathlib import Path
from typing import Protocol

import pytest

from simulator.fake_twilio import FakeState
from tests.conftest import SettingsFactory
from voicepulse.envelope import Envelope
from voicepulse.settings import Settings


class PullSettings(Protocol):
    def __call__(self, state: FakeState, base: str, **overrides: object) -> Settings: ...


@pytest.fixture
def pull_settings(
    settings_factory: SettingsFactory, kafka_bootstrap: str, tmp_path: Path
) -> PullSettings:
    """Settings that pull from the fake at ``base`` with the parent's auth token, on Kafka,
    with short backoffs; subaccounts from the Accounts API."""

    def make(state: FakeState, base: str, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap_servers": kafka_bootstrap,
            "twilio_account_sid": state.parent.sid,
            "twilio_auth_token": state.parent.auth_token,
            "twilio_api_base_url": base,
            "twilio_insights_base_url": base,
            "pull_discover_subaccounts": True,
            "pull_metrics_port": None,
            "pull_backoff_base_s": 0.02,
            "pull_backoff_max_s": 0.2,
            "pull_failing_backoff_max_s": 2.0,
            "pull_state_file": tmp_path / "pull.sqlite",
            "tenants_file": None,
        }
        values.update(overrides)
        return settings_factory(**values)

    return make


def by_id(envelopes: list[Envelope]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for envelope in envelopes:
        counts[envelope.id] += 1
    return counts
