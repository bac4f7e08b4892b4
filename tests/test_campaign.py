"""The production campaign (bench/campaign): its verdict on made-up records, and its short
version run for real, in two runs of about two minutes: every stage its own process on a
broker of its own, three stages SIGKILLed (then the broker stopped) while the load runs, and
nothing lost or counted twice."""

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.campaign.verdict import event_id, expected_figures, judge

ROOT = Path(__file__).resolve().parents[1]


def _line(call: str, seq: int, status: str, outcome: object, **extra: Any) -> dict[str, Any]:
    return {
        "account_sid": "AC1",
        "call_sid": call,
        "sequence": seq,
        "call_status": status,
        "direction": "outbound-api",
        "timestamp": 1_800_000_000 + seq,
        "call_duration": extra.pop("duration", None),
        "scheduled_at": 1_800_000_000.0 + seq,
        "outcome": outcome,
        **extra,
    }


def _truth() -> list[dict[str, Any]]:
    return [
        _line("CA1", 0, "initiated", 204),
        _line("CA1", 1, "in-progress", 204),
        _line("CA1", 2, "completed", 204, duration=61),
        _line("CA2", 0, "initiated", 204),
        _line("CA2", 1, "busy", "closed", duration=0),  # not answered: stored or not
        _line("CA3", 0, "initiated", 503),
        _line("CA3", 1, "failed", 204, duration=0, sip_response_code=503),
    ]


def _warehouse(figures: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {account: dict(values) for account, values in figures.items()}


def test_expected_figures_follow_the_metric_definitions() -> None:
    truth = _truth()
    stored = {event_id(x) for x in truth if x["outcome"] == 204}
    figures = expected_figures(truth, stored)
    account = figures["AC1"]
    assert account["events"] == 5
    assert account["calls"] == account["attempts"] == 2  # CA2's terminal callback not stored
    assert account["answered"] == 1
    assert account["talk_seconds"] == 61
    assert account["billed_minutes"] == 2
    assert account["short_calls"] == 0
    assert account["trunk_cps_rejections"] == 1
    assert figures["ISV"]["attempts"] == 2


def test_the_verdict_holds_when_the_warehouse_equals_the_truth() -> None:
    truth = _truth()
    on_topic = Counter(event_id(x) for x in truth if x["outcome"] != 503)
    on_topic[event_id(truth[0])] += 1  # a duplicate record on the topic is the consumers' job
    actual = _warehouse(expected_figures(truth, set(on_topic)))
    verdict = judge(truth, on_topic, actual, [])
    assert verdict.ok, verdict.problems
    assert verdict.counts["not_answered_but_stored"] == 1
    assert verdict.counts["answered_503"] == 1


def test_the_verdict_fails_on_a_lost_event() -> None:
    truth = _truth()
    on_topic = Counter(event_id(x) for x in truth if x["outcome"] == 204)
    actual = _warehouse(expected_figures(truth, set(on_topic)))
    del on_topic[event_id(truth[2])]
    verdict = judge(truth, on_topic, actual, [])
    assert not verdict.ok
    assert any("answered 2xx are not on the topic" in p for p in verdict.problems)


def test_the_verdict_fails_on_a_double_count_and_a_mismatch() -> None:
    truth = _truth()
    on_topic = Counter(event_id(x) for x in truth if x["outcome"] == 204)
    actual = _warehouse(expected_figures(truth, set(on_topic)))
    actual["AC1"]["attempts"] += 1
    actual["AC1"]["billed_minutes"] -= 1
    verdict = judge(truth, on_topic, actual, ["AC1: call_events holds 1 rows twice"])
    assert not verdict.ok
    assert "AC1 attempts: warehouse 3, truth 2 (+1)" in verdict.problems
    assert "AC1 billed_minutes: warehouse 1, truth 2 (-1)" in verdict.problems
    assert "AC1: call_events holds 1 rows twice" in verdict.problems


def test_the_verdict_fails_on_an_event_stored_after_a_503_or_never_sent() -> None:
    truth = _truth()
    on_topic = Counter(event_id(x) for x in truth)
    on_topic["CA9:0"] = 1
    actual = _warehouse(expected_figures(truth, set(on_topic)))
    verdict = judge(truth, on_topic, actual, [])
    assert any("answered 503 were stored anyway" in p for p in verdict.problems)
    assert any("never sent" in p for p in verdict.problems)


def _campaign(tmp_path: Path, *options: str) -> tuple[dict[str, Any], str]:
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.campaign", "--short", *options, "--json", str(report_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    summary = done.stdout + done.stderr[-4000:]
    assert report_path.exists(), summary
    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
    report["exit_status"] = done.returncode
    return report, summary


@pytest.mark.kafka
@pytest.mark.timeout(420)
def test_the_short_campaign_loses_nothing_when_stages_are_killed(tmp_path: Path) -> None:
    report, summary = _campaign(tmp_path, "--faults", "kill", "--duration", "75")
    assert report["verdict"]["ok"], summary
    assert report["exit_status"] == 0, summary
    kills = [f for f in report["faults"] if f["kind"] == "kill" and f["at_s"] is not None]
    assert len(kills) == 3, report["faults"]
    counts = report["verdict"]["counts"]
    assert counts["answered_2xx"] > 0.9 * counts["sent"], counts
    assert report["freshness"]["rows"] >= counts["answered_2xx"]


@pytest.mark.kafka
@pytest.mark.timeout(420)
def test_the_short_campaign_loses_nothing_across_a_broker_restart(tmp_path: Path) -> None:
    report, summary = _campaign(
        tmp_path, "--faults", "broker", "--duration", "60", "--settle", "45"
    )
    assert report["verdict"]["ok"], summary
    assert report["exit_status"] == 0, summary
    assert [f["kind"] for f in report["faults"] if f["at_s"] is not None] == ["broker"]
