"""The compose file's pull service: a valid command, and variables that are settings."""

from pathlib import Path
from typing import Any

import yaml

from voicepulse.cli import _parser
from voicepulse.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _pull() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]["pull"]
    return service


def test_the_pull_service_runs_voicepulse_pull() -> None:
    command = _pull()["command"]
    assert command[0] == "voicepulse"
    assert _parser().parse_args(command[1:]).command == "pull"


def test_the_pull_service_variables_are_settings() -> None:
    environment: dict[str, str] = _pull()["environment"]
    assert environment["VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    for variable, value in environment.items():
        field = variable.removeprefix("VOICEPULSE_").lower()
        assert field in Settings.model_fields, variable
        if not value.startswith("${"):  # given by the operator's shell at `up`
            Settings.model_validate({field: value})
