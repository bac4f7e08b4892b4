"""The rules file: defaults as DESIGN.md gives them, read back, merged, and refused clearly."""

import tomllib
from pathlib import Path

import pytest

from alerting import default_rules, default_rules_text, load_rules
from alerting.rules import parse_duration
from voicepulse.errors import ConfigError


def test_the_default_rules_are_designs_table() -> None:
    rules = default_rules().rules
    assert set(rules) == {
        "asr_low",
        "acd_low",
        "short_calls_high",
        "caller_id_repetitive",
        "attestation_low",
        "queue_time_high",
        "cps_saturated",
        "trunk_cps_rejections",
        "debugger_errors_high",
        "toll_fraud_shape",
    }
    asr = rules["asr_low"]
    assert (asr.comparison, asr.threshold, asr.span, asr.min_calls) == ("<", 0.7, 900, 20)
    assert (rules["acd_low"].comparison, rules["acd_low"].threshold) == ("<=", 30.0)
    assert rules["short_calls_high"].threshold == 0.10
    assert rules["caller_id_repetitive"].min_calls == 50
    assert rules["attestation_low"].direction_group == "inbound"
    assert rules["queue_time_high"].threshold == 5000
    assert rules["cps_saturated"].accounts == "all"
    assert rules["cps_saturated"].span == 300
    assert rules["trunk_cps_rejections"].span == 300
    assert rules["debugger_errors_high"].baseline == "week"


def test_the_printed_defaults_parse_back_to_the_same_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(default_rules_text())
    assert load_rules(path) == default_rules() == load_rules(None)
    assert tomllib.loads(default_rules_text())["rules"]["asr_low"]["for"] == "0s"


def test_a_rules_file_changes_only_what_it_gives(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[rules.asr_low]\nthreshold = 0.6\nfor = "2m"\n'
        "[rules.asr_low.overrides.AC1]\nenabled = false\n"
        "[rules.acd_low]\nenabled = false\n"
        '[rules.asr_inbound]\nmetric = "asr"\ncomparison = "<"\nthreshold = 0.5\n'
        'span = "30m"\nmin_calls = 40\ndirection_group = "inbound"\n'
    )
    rules = load_rules(path).rules
    assert rules["asr_low"].threshold == 0.6
    assert rules["asr_low"].for_ == 120
    assert rules["asr_low"].span == 900  # from the default
    assert rules["asr_low"].for_account("AC1") is None
    assert rules["asr_low"].for_account("AC2") is rules["asr_low"]
    assert not rules["acd_low"].enabled
    assert rules["asr_inbound"].span == 1800


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[rules.asr_low]\nthreshold = 'low'\n", "rule asr_low: threshold"),
        ("[rules.asr_low]\nspan = '90s'\n", "whole minutes"),
        ("[rules.asr_low]\nspan = '2h'\n", "span must be from 1 minute to 1 hour"),
        ("[rules.asr_low]\nmetric = 'mos'\n", "rule asr_low: metric"),
        ("[rules.asr_low]\nfor = 'soon'\n", "not a duration"),
        ("[rules.asr_low]\nthresold = 0.5\n", "thresold"),
        ("[rules.new_rule]\nmetric = 'asr'\n", "rule new_rule: comparison: Field required"),
        ("[rules.asr_low.overrides.AC1]\nthreshold = 'x'\n", "overrides.AC1.threshold"),
        ("[rule.asr_low]\n", "unknown top-level key"),
        ("[rules.asr_low\n", "not TOML"),
        ("[rules.Bad-Name]\nenabled = false\n", "rule name"),
    ],
)
def test_a_bad_rules_file_is_refused_with_the_place(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"rules\.toml") as caught:
        load_rules(path)
    assert says in str(caught.value)


def test_a_missing_rules_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_rules(tmp_path / "missing.toml")


def test_durations() -> None:
    assert [parse_duration(v) for v in ("90s", "15m", "2h", "1h30m", 60, "0s")] == [
        90,
        900,
        7200,
        5400,
        60,
        0,
    ]
    for bad in ("", "15 minutes", "m", -1, True, 1.5):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
