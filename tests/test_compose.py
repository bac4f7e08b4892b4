"""docker-compose.yml cannot run here (no Docker engine): check it against the code instead."""

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicepulse.cli import _parser
from voicepulse.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
STAGES = {"serve", "process", "sink", "alert", "dashboard"}


def _services() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, Any] = doc["services"]
    return services


def test_one_service_per_stage_and_kafka() -> None:
    assert STAGES | {"kafka"} <= set(_services())


@pytest.mark.parametrize("name", sorted(STAGES))
def test_service_command_is_a_valid_voicepulse_command(name: str) -> None:
    command = _services()[name]["command"]
    assert command[0] == "voicepulse"
    args = _parser().parse_args(command[1:])
    assert args.command == name


@pytest.mark.parametrize("name", sorted(STAGES))
def test_service_variables_are_settings(name: str) -> None:
    environment: dict[str, str] = _services()[name]["environment"]
    fields = set(Settings.model_fields)
    for variable, value in environment.items():
        assert variable.startswith("VOICEPULSE_"), variable
        field = variable.removeprefix("VOICEPULSE_").lower()
        assert field in fields, f"{name}: {variable} is not a setting"
        # validates the value too; a list or table is JSON, as the environment gives it
        decoded = json.loads(value) if value.startswith(("[", "{")) else value
        Settings.model_validate({field: decoded})


def test_services_talk_to_the_compose_kafka() -> None:
    for name in STAGES:
        environment = _services()[name]["environment"]
        assert environment["VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_the_image_holds_every_package_the_project_installs() -> None:
    """The Dockerfile copies each top-level package that pyproject.toml installs: one left out
    installs nothing and fails only when a stage first imports it."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    packages = {pattern.rstrip("*") for pattern in find["find"]["include"]}
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
