"""Settings: environment, config file, masking, validation."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from voicepulse.errors import ConfigError
from voicepulse.settings import Settings, load_settings


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEPULSE_PORT", "9123")
    monkeypatch.setenv("VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    settings = load_settings()
    assert settings.port == 9123
    assert settings.uses_kafka


def test_config_file_is_weaker_than_environment_and_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "voicepulse.toml"
    config.write_text('port = 7000\nhost = "0.0.0.0"\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("VOICEPULSE_HOST", "127.0.0.2")
    settings = load_settings(config, port=7001)
    assert (settings.port, settings.host, settings.log_level) == (7001, "127.0.0.2", "DEBUG")


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_are_masked() -> None:
    settings = Settings(twilio_auth_token="s3cret-admin")
    assert settings.masked()["twilio_auth_token"] == "**********"
    assert "s3cret-admin" not in repr(settings)
    assert "s3cret-admin" not in str(settings.masked())


def test_settings_are_frozen_and_validated() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(public_base_url="voice.example.com")


def test_embedded_default_needs_nothing() -> None:
    settings = Settings()
    assert not settings.uses_kafka
    assert settings.demo_enabled
    assert settings.catalog_path == "sqlite:data/catalog.sqlite"
