"""The alert stage inside the pipeline on the in-process bus: simulated traffic through the
processors to alert changes on ``voicepulse.alerts`` and in the warehouse's ``alerts`` table;
the CLI prints the default rules and refuses a bad rules file."""

from pathlib import Path
from typing import Any

import pytest

from alerting import default_rules_text
from tests.alerting.traffic_rows import publish_low_asr_traffic
from tests.conftest import SettingsFactory
from tests.helpers import eventually
from voicepulse import topics
from voicepulse.bus import InProcessBus
from voicepulse.cli import main
from voicepulse.envelope import Envelope
from voicepulse.pipeline import Role, build_pipeline
from warehouse.lake import open_lake


async def test_low_asr_traffic_reaches_the_alerts_table(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(processor_wall_clock_lag_s=None)
    pipeline = build_pipeline(settings, {Role.PROCESS, Role.ALERT, Role.SINK})
    bus = pipeline.bus
    assert isinstance(bus, InProcessBus)
    await pipeline.start()
    try:
        account = await publish_low_asr_traffic(bus)
        reader = open_lake(settings, read_only=True)
        try:

            async def alerts() -> list[tuple[Any, ...]]:
                return reader.sql(
                    "SELECT account_sid, rule, state, value < threshold, "
                    "json_extract(detail, '$.calls')::INT >= 20 FROM alerts"
                ).fetchall()

            rows = await eventually(alerts, lambda rows: bool(rows), timeout_s=60)
        finally:
            reader.close()
    finally:
        await pipeline.stop()
    changes = [Envelope.from_json(r.value) for r in bus.records(topics.ALERTS)]
    assert (account, "asr_low", "firing", True, True) in rows
    assert {(c.account_sid, c.fields["rule"]) for c in changes} >= {(account, "asr_low")}


def test_print_default_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alert", "--print-default-rules"]) == 0
    assert capsys.readouterr().out == default_rules_text()


def test_a_bad_rules_file_stops_the_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.asr_low]\nthreshold = 'low'\n")
    assert main(["alert", "--rules-file", str(rules), "--data-dir", str(tmp_path)]) == 1
    assert "rule asr_low: threshold" in caplog.text


def test_the_fast_row_filter_agrees_with_decoding_whole() -> None:
    """closed_row (a three-field peek, then a plain JSON decode) against decode_row."""
    from alerting.stage import closed_row, decode_row
    from tests.alerting.rows import row
    from voicepulse.errors import BadMessage
    from voicepulse.types import Record

    def plain(record: Record) -> tuple[str, dict[str, Any]] | str | None:
        try:
            envelope = decode_row(record)
        except BadMessage as exc:
            return str(exc)
        if envelope.fields.get("closed") is not True:
            return None
        return envelope.account_sid, {k: envelope.fields[k] for k in ("window_start", "answered")}

    def fast(record: Record) -> tuple[str, dict[str, Any]] | str | None:
        try:
            found = closed_row(record)
        except BadMessage as exc:
            return str(exc)
        if found is None:
            return None
        return found.account_sid, {k: found.fields[k] for k in ("window_start", "answered")}

    def health(fields: dict[str, Any], account: str = "AC1", kind: str = "health-minute") -> bytes:
        return Envelope(id="x", type=kind, account_sid=account, source="t", fields=fields).to_json()

    closed, interim = row(0, attempts=3), row(1, attempts=2, closed=False)
    values = [
        health(closed),
        health(interim),
        health({k: v for k, v in closed.items() if k != "closed"}),
        health({k: v for k, v in closed.items() if k != "window_start"}),
        health(closed, kind="call-fact"),
        health(dict(closed, closed="yes")),
        b"not json",
        b"[1, 2]",
        b'{"type": "health-minute", "closed": true}',
    ]
    for value in values:
        record = Record(topics.HEALTH, 0, 0, b"AC1", value)
        assert fast(record) == plain(record), value[:80]
