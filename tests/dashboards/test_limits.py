"""The fleet's traffic lights judge by the alert rules: the defaults, or a rules file."""

from pathlib import Path

from alerting import default_rules, load_rules
from dashboards.app import create_app
from dashboards.queries import HealthLimits, lights
from voicepulse.settings import Settings

_RULES = """
[rules.asr_low]
threshold = 0.5
min_calls = 5

[rules.acd_low]
enabled = false

[rules.queue_time_high]
threshold = 8000.0

[rules.cps_saturated]
level = 0.8
"""


def _row(**values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "calls_today": 10,
        "asr": 0.6,
        "acd_s": 25.0,
        "short_call_ratio": 0.05,
        "queue_time_p95_ms": 6000.0,
        "cps_utilisation": 0.85,
    }
    return row | values


def test_the_default_rules_give_the_default_lights() -> None:
    assert HealthLimits.from_rules(default_rules()) == HealthLimits()


def test_a_rules_file_moves_the_lights(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(_RULES, encoding="utf-8")
    limits = HealthLimits.from_rules(load_rules(path))
    assert limits == HealthLimits(
        asr_min=0.5,
        acd_min_s=30.0,  # its rule is off: the default
        queue_time_p95_max_ms=8000.0,
        cps_utilisation_max=0.8,
        min_calls=5,
    )
    # Ten calls: too few to judge by the defaults (20), enough by the file (5).
    assert set(lights(_row(), HealthLimits()).values()) == {"none", "ok"}
    assert lights(_row(), limits) == {
        "asr": "ok",
        "acd": "bad",
        "short_calls": "ok",
        "queue_time": "ok",
        "cps": "bad",
    }
    settings = Settings(data_dir=tmp_path / "data", demo=False, alert_rules_file=path)
    app = create_app(settings)
    assert app.state.ctx.limits == limits
