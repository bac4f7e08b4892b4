"""The evaluator over crafted closed rows: each default rule, and each of the rule mechanics
(minimum calls, ``for``, hysteresis, overrides), with a case that fails without it."""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from alerting import Evaluator, RuleSet, default_rules, load_rules
from tests.alerting.rows import T0, healthy, row
from voicepulse.envelope import Envelope
from voicepulse.messages import ISV_ACCOUNT

ACCOUNT = "AC" + "1" * 32


def run(
    rows: Iterable[dict[str, Any]], rules: RuleSet | None = None, account: str = ACCOUNT
) -> list[Envelope]:
    evaluator = Evaluator(rules or default_rules(), {ACCOUNT: "Acme"})
    return [change for r in rows for change in evaluator.add(account, r)]


def states(changes: list[Envelope], rule: str | None = None) -> list[tuple[str, str, int]]:
    """(rule, state, minute of changed_at after T0) of each change."""
    from alerting.evaluator import epoch

    return [
        (c.fields["rule"], c.fields["state"], (epoch(c.fields["changed_at"]) - T0) // 60)
        for c in changes
        if rule is None or c.fields["rule"] == rule
    ]


def only(rule: str, tmp_path: Path, extra: str = "", tables: str = "") -> RuleSet:
    """The default rules with only ``rule`` on, ``extra`` lines added to its table, and
    ``tables`` after them."""
    text = "".join(
        f"[rules.{name}]\nenabled = {'true' if name == rule else 'false'}\n"
        + (extra if name == rule else "")
        for name in default_rules().rules
    )
    path = tmp_path / "rules.toml"
    path.write_text(text + tables)
    return load_rules(path)


def test_healthy_traffic_raises_nothing() -> None:
    rows = [healthy(m, created=10, queue_ms=300) for m in range(120)]
    rows += [row(m, "inbound", attempts=10) for m in range(120)]
    assert run(rows) == []


@pytest.mark.parametrize(
    ("rule", "broken"),
    [
        ("asr_low", {"answered": 3}),
        ("acd_low", {"talk_s": 13}),
        ("short_calls_high", {"short": 2}),
        ("caller_id_repetitive", {"froms": 1}),
        ("queue_time_high", {"created": 10, "queue_ms": 8000}),
        ("cps_saturated", {"created": 45}),
        ("trunk_cps_rejections", {"rejected": 1}),
        ("debugger_errors_high", {"errors": 30}),
    ],
)
def test_each_outbound_rule_fires_on_traffic_that_breaks_it(
    rule: str, broken: dict[str, Any]
) -> None:
    rows = [healthy(m) for m in range(30)] + [healthy(m, **broken) for m in range(30, 60)]
    changes = run(rows)
    assert {c.fields["rule"] for c in changes} == {rule}, states(changes)
    first = changes[0].fields
    assert first["state"] == "firing"
    assert changes[0].account_sid == ACCOUNT
    assert first["tenant"] == "Acme"
    assert first["calls"] >= 1
    assert first["value"] is not None
    assert first["starts_at"] == first["changed_at"]
    # The broken traffic began at minute 30: the alert comes at the end of a broken minute,
    # once the 15-minute span holds enough of it.
    assert 31 <= states(changes)[0][2] <= 45


def test_attestation_low_fires_on_inbound_calls_mostly_not_attested_a() -> None:
    rows = [row(m, "inbound", attempts=10, attest="AB") for m in range(20)]
    rows += [row(m, "inbound", attempts=10, attest="ABCC") for m in range(20, 40)]
    assert states(run(rows))[0][:2] == ("attestation_low", "firing")


def test_toll_fraud_shape_fires_on_a_volume_far_above_the_subaccounts_baseline() -> None:
    rows = [healthy(m, attempts=2) for m in range(180)]  # 120 calls an hour for 3 hours
    rows += [healthy(m, attempts=20) for m in range(180, 230)]  # then 1,200 an hour
    changes = [c for c in run(rows) if c.fields["rule"] == "toll_fraud_shape"]
    assert [c.fields["state"] for c in changes] == ["firing"]
    assert changes[0].fields["baseline"] == pytest.approx(120.0)
    assert changes[0].fields["threshold"] == pytest.approx(480.0)


def test_toll_fraud_shape_is_silent_without_a_baseline() -> None:
    rows = [healthy(m, attempts=30) for m in range(50)]
    assert states(run(rows), "toll_fraud_shape") == []


def test_debugger_baseline_a_busy_tenants_normal_day_does_not_fire() -> None:
    """30 errors a minute every minute for days: the same hour a week earlier had as many."""
    evaluator = Evaluator(default_rules())
    changes: list[Envelope] = []
    for m in range(0, 8 * 24 * 60, 1):
        if m % 60 < 20 or m >= 7 * 24 * 60:  # rows in the first 20 minutes of each hour
            changes += evaluator.add(ACCOUNT, healthy(m, errors=30))
    late = [c for c in changes if c.fields["changed_at"] > _iso(7 * 24 * 60)]
    assert [c.fields["rule"] for c in late if c.fields["state"] == "firing"] == []
    # A new subaccount with the same errors and no history fires.
    assert states(run([healthy(m, errors=30) for m in range(20)]))[0][:2] == (
        "debugger_errors_high",
        "firing",
    )


def _iso(minute: int) -> str:
    from alerting.evaluator import iso

    return iso(T0 + 60 * minute)


def test_cps_saturated_judges_the_isv_rows() -> None:
    rows = [healthy(m, created=50, cps_limit=1.0) for m in range(10)]
    changes = run(rows, account=ISV_ACCOUNT)
    assert {c.fields["rule"] for c in changes} == {"cps_saturated"}
    assert changes[0].account_sid == ISV_ACCOUNT


def test_below_the_minimum_calls_a_rule_is_not_judged() -> None:
    # 1 call a minute, none answered: ASR 0 over 15 min, but only 15 calls (< 20).
    rows = [healthy(m, attempts=1, answered=0) for m in range(15)]
    assert states(run(rows), "asr_low") == []
    rows.append(healthy(15, attempts=5, answered=0))  # 19 calls in the span 1-15: still not
    assert states(run(rows), "asr_low") == []
    rows.append(healthy(16, attempts=5, answered=0))  # 23 calls in the span 2-16
    assert states(run(rows), "asr_low") == [("asr_low", "firing", 17)]


def test_for_holds_an_alert_pending(tmp_path: Path) -> None:
    rules = only("asr_low", tmp_path, 'for = "5m"\n')
    rows = [healthy(m, answered=0) for m in range(10)]
    assert states(run(rows, rules)) == [("asr_low", "pending", 2), ("asr_low", "firing", 7)]
    # Broken from tick 2 to tick 9: with `for` 10 min, pending, then inactive, never firing.
    rows = [healthy(m, answered=0) for m in range(3)] + [healthy(m) for m in range(3, 40)]
    longer = only("asr_low", tmp_path, 'for = "10m"\n')
    assert states(run(rows, longer)) == [("asr_low", "pending", 2), ("asr_low", "inactive", 10)]
    assert [s for _, s, _ in states(run(rows, rules))] == ["pending", "firing", "resolved"]


def test_keep_firing_for_holds_a_flapping_alert(tmp_path: Path) -> None:
    rules = only("trunk_cps_rejections", tmp_path)  # span 5 min, keep_firing_for 5 min
    flapping = [healthy(m, rejected=1 if m % 8 == 0 and m <= 32 else 0) for m in range(60)]
    assert [s for _, s, _ in states(run(flapping, rules))] == ["firing", "resolved"]
    resolved = states(run(flapping, rules))[-1][2]
    # The last rejection (minute 32) leaves the 5-minute span at tick 38; clear 5 min more.
    assert resolved == 38 + 5
    without = only("trunk_cps_rejections", tmp_path, 'keep_firing_for = "0s"\n')
    assert len(states(run(flapping, without))) == 10  # fires and resolves with every burst


def test_overrides_change_the_threshold_or_turn_a_rule_off(tmp_path: Path) -> None:
    rows = [healthy(m, answered=6) for m in range(20)]  # ASR 60 %
    assert states(run(rows), "asr_low")[0][:2] == ("asr_low", "firing")
    lower = only(
        "asr_low", tmp_path, tables=f"[rules.asr_low.overrides.{ACCOUNT}]\nthreshold = 0.5\n"
    )
    assert states(run(rows, lower)) == []
    off = only(
        "asr_low", tmp_path, tables=f"[rules.asr_low.overrides.{ACCOUNT}]\nenabled = false\n"
    )
    assert states(run(rows, off)) == []
    other = only("asr_low", tmp_path, tables="[rules.asr_low.overrides.ACother]\nenabled = false\n")
    assert states(run(rows, other))[0][:2] == ("asr_low", "firing")


def test_a_firing_alert_resolves_after_the_span_and_keep_firing_for() -> None:
    rows = [healthy(m, answered=0) for m in range(5)] + [healthy(m) for m in range(5, 60)]
    history = states(run(rows), "asr_low")
    # Broken from tick 1 (1 call... 10 calls < 20) to tick 2; clear once ASR >= 70 % again.
    assert history[0][:2] == ("asr_low", "firing")
    assert history[1][1] == "resolved"
    assert history[1][2] - history[0][2] > 10


def test_open_rows_and_replays_change_nothing() -> None:
    rows = [healthy(m, answered=0) for m in range(10)]
    first = run(rows)
    assert first
    open_rows = [healthy(m, answered=0, closed=False) for m in range(10)]
    assert run(open_rows) == []
    evaluator = Evaluator(default_rules())
    again = [c for r in rows + rows + rows[3:] for c in evaluator.add(ACCOUNT, r)]
    assert [c.id for c in again] == [c.id for c in first]


def test_a_gap_is_judged_minute_by_minute() -> None:
    rows = [healthy(m, answered=0) for m in range(5)] + [healthy(300)]
    history = states(run(rows), "asr_low")
    assert [s for _, s, _ in history] == ["firing", "resolved"]
    assert history[1][2] < 300  # resolved inside the gap, not at the next row


def test_the_change_carries_what_a_notifier_needs() -> None:
    change = run([healthy(m, answered=0) for m in range(3)])[0]
    fields = change.fields
    assert change.type == "alert"
    assert change.id == f"{ACCOUNT}:asr_low:outbound:{fields['changed_at']}"
    for name in (
        "rule",
        "state",
        "tenant",
        "severity",
        "direction_group",
        "value",
        "threshold",
        "span_s",
        "calls",
        "starts_at",
        "changed_at",
        "message",
        "window_start",
    ):
        assert fields.get(name) is not None, name
    assert "Acme" in fields["message"]
    assert "asr_low" in fields["message"]
