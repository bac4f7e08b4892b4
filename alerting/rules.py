"""Alert rules: the built-in defaults (``default_rules.toml``) and a rules file read over them.

A rules file (``VOICEPULSE_ALERT_RULES_FILE``) holds ``[rules.NAME]`` tables. A NAME among the
defaults changes only the fields it gives; a new NAME adds a rule. Every problem is a
:class:`~voicepulse.errors.ConfigError` naming the file, the rule and the field.
"""

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from voicepulse.errors import ConfigError

__all__ = [
    "METRICS",
    "Metric",
    "Override",
    "Rule",
    "RuleSet",
    "default_rules",
    "default_rules_text",
    "load_rules",
    "parse_duration",
]

Metric = Literal[
    "asr",
    "acd_s",
    "short_call_ratio",
    "caller_id_top_share",
    "attestation_a_share",
    "queue_time_p95_ms",
    "cps_saturated_share",
    "trunk_cps_rejections",
    "debugger_errors_per_minute",
    "outbound_attempts_per_hour",
]
METRICS = get_args(Metric)
"""The metrics a rule can judge (computed in :mod:`alerting.span`)."""

BASELINE_METRICS = frozenset({"debugger_errors_per_minute", "outbound_attempts_per_hour"})

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MAX_SPAN_S = 3600


def parse_duration(value: object) -> int:
    """Seconds of ``"90s"``, ``"15m"``, ``"1h30m"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '15m'")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value and (match := _DURATION.match(value.strip())):
        hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(f"not a duration: {value!r} (write e.g. '90s', '15m', '2h')")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[int, BeforeValidator(parse_duration)]


class Override(BaseModel):
    """One subaccount's exceptions to a rule: off, or another threshold or minimum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    threshold: float | None = None
    min_calls: int | None = Field(default=None, ge=0)


class Rule(BaseModel):
    """One alert rule; see ``default_rules.toml`` for what each field means."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    description: str = ""
    metric: Metric
    comparison: Literal["<", "<=", ">", ">="]
    threshold: float
    span: Duration
    min_calls: int = Field(ge=0)
    for_: Duration = Field(default=0, alias="for")
    keep_firing_for: Duration = 0
    severity: Literal["info", "warning", "critical"] = "warning"
    direction_group: Literal["outbound", "inbound"]
    accounts: Literal["subaccounts", "isv", "all"] = "subaccounts"
    enabled: bool = True
    level: float = Field(default=0.9, gt=0)
    """cps_saturated_share: a second counts as saturated at ``level`` x the CPS limit or more."""
    baseline: Literal["none", "week"] = "none"
    baseline_factor: float = Field(default=5.0, gt=0)
    baseline_fallback: Duration = 24 * 3600
    baseline_required: bool = False
    overrides: dict[str, Override] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "Rule":
        for name in ("span", "for_", "keep_firing_for", "baseline_fallback"):
            seconds = getattr(self, name)
            if seconds % 60:
                raise ValueError(f"{name.rstrip('_')} must be whole minutes (windows are 1 min)")
        if not 60 <= self.span <= _MAX_SPAN_S:
            raise ValueError("span must be from 1 minute to 1 hour")
        if self.baseline != "none" and self.metric not in BASELINE_METRICS:
            raise ValueError(f"metric {self.metric} has no baseline")
        if self.baseline != "none" and self.comparison not in (">", ">="):
            raise ValueError("a baseline rule fires above its baseline: comparison > or >=")
        if self.baseline_required and self.baseline == "none":
            raise ValueError("baseline_required needs a baseline")
        for account in self.overrides:
            if not account:
                raise ValueError("an override needs an account SID")
        return self

    def for_account(self, account_sid: str) -> "Rule | None":
        """This rule as it applies to one account (its override merged); None when off."""
        override = self.overrides.get(account_sid)
        if override is None:
            return self if self.enabled else None
        if not override.enabled:
            return None
        changes = {
            name: value
            for name, value in (
                ("threshold", override.threshold),
                ("min_calls", override.min_calls),
            )
            if value is not None
        }
        return self.model_copy(update=changes) if changes else self

    def applies_to(self, account_sid: str, isv_account: str) -> bool:
        is_isv = account_sid == isv_account
        return self.accounts == "all" or (self.accounts == "isv") == is_isv


class RuleSet(BaseModel):
    """Every rule by name."""

    model_config = ConfigDict(frozen=True)

    rules: dict[str, Rule]

    @property
    def max_span(self) -> int:
        return max((rule.span for rule in self.rules.values()), default=60)


def default_rules_text() -> str:
    """The built-in rules as TOML (what ``voicepulse alert --print-default-rules`` prints)."""
    return resources.files("alerting").joinpath("default_rules.toml").read_text("utf-8")


def default_rules() -> RuleSet:
    return _build(_tables(tomllib.loads(default_rules_text()), "the default rules"), "defaults")


def load_rules(path: Path | None) -> RuleSet:
    """The default rules, with the rules file at ``path`` read over them (None: defaults)."""
    defaults = _tables(tomllib.loads(default_rules_text()), "the default rules")
    if path is None:
        return _build(defaults, "defaults")
    try:
        given = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"alert rules file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"alert rules file {path}: not TOML: {exc}") from exc
    merged = dict(defaults)
    for name, table in _tables(given, f"alert rules file {path}").items():
        merged[name] = _merge(merged.get(name, {}), table)
    return _build(merged, str(path))


def _tables(doc: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    extra = set(doc) - {"rules"}
    if extra:
        raise ConfigError(f"{where}: unknown top-level key(s) {sorted(extra)}; write [rules.NAME]")
    rules = doc.get("rules", {})
    if not isinstance(rules, dict) or not all(isinstance(t, dict) for t in rules.values()):
        raise ConfigError(f"{where}: every rule is a table [rules.NAME]")
    return {name: dict(table) for name, table in rules.items()}


def _merge(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **given}
    if isinstance(base.get("overrides"), dict) and isinstance(given.get("overrides"), dict):
        merged["overrides"] = {**base["overrides"], **given["overrides"]}
    return merged


def _build(tables: dict[str, dict[str, Any]], where: str) -> RuleSet:
    rules: dict[str, Rule] = {}
    for name, table in tables.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ConfigError(f"{where}: rule name {name!r}: use lower case, digits and _")
        try:
            rules[name] = Rule.model_validate({**table, "name": name})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'rule'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigError(f"{where}: rule {name}: {problems}") from exc
    return RuleSet(rules=rules)
