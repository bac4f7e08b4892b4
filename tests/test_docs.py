"""The documentation ships with the code and keeps up with it.

Links between the pages resolve (files and headings), every setting and every metric has its
line in docs/operations.md, every topic in docs/architecture.md, and nothing points outside the
repository for a definition.
"""

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ingest.metrics import ReceiverMetrics
from ingest.pollers.metrics import PullMetrics
from processors import EngineConfig, Processor
from processors.metrics import ProcessorMetrics
from voicepulse import topics
from voicepulse.metrics import StageMetrics
from voicepulse.settings import Settings
from voicepulse.types import TopicPartition

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
PACKAGES = (
    "alerting",
    "dashboards",
    "ingest",
    "processors",
    "simulator",
    "voicepulse",
    "warehouse",
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_between_pages_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and anchor not in _anchors(linked)):
            broken.append(target)
    assert broken == []


def test_the_docs_pages_are_there() -> None:
    names = {page.name for page in DOCS.glob("*.md")}
    assert {
        "architecture.md",
        "metrics.md",
        "guarantees.md",
        "twilio.md",
        "operations.md",
        "warehouse.md",
    } <= names


def test_every_setting_is_in_the_configuration_reference() -> None:
    reference = (DOCS / "operations.md").read_text(encoding="utf-8")
    missing = [
        name for name in Settings.model_fields if f"VOICEPULSE_{name.upper()}`" not in reference
    ]
    assert missing == []


def _metric_names(registry: CollectorRegistry) -> set[str]:
    return {metric.name for metric in registry.collect()}


def test_every_metric_is_in_the_operations_page() -> None:
    page = (DOCS / "operations.md").read_text(encoding="utf-8")
    stages = StageMetrics()
    stages.stage("process").lag[TopicPartition(topics.CALL_STATUS, 0)] = 0
    stages.registry.register(ProcessorMetrics(Processor(EngineConfig())))
    names = _metric_names(ReceiverMetrics().registry) | _metric_names(PullMetrics().registry)
    names |= _metric_names(stages.registry)
    assert "voicepulse_stage_consumer_lag" in names
    assert "voicepulse_processor_open_calls" in names
    assert sorted(name for name in names if name not in page) == []


def test_every_topic_is_in_the_architecture_page() -> None:
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert [topic for topic in topics.ALL_TOPICS if f"`{topic}`" not in page] == []


def test_nothing_points_outside_the_repository_for_a_definition() -> None:
    outside = re.compile(r"\.\./shared/|\b(DESIGN|TWILIO)\.md\b")
    files = [*PAGES, *(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))]
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert found == []
