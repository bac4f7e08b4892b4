"""The alert evaluator: closed health rows in, alert state changes out; free of I/O and clocks.

An alert is one (rule, account, direction group). A series is one (account, direction group):
its closed rows, its hourly baseline counters and the state of its alerts.

Semantics (event time only):

- Only rows with ``closed`` true count. A series is judged at each minute boundary ``T`` (a
  tick) from its first closed window's end to its latest one's, every minute, gaps included;
  at tick ``T`` a rule sees the series' rows whose windows start in ``[T - span, T)``. A row
  that arrives for a minute already judged changes nothing (a replay, a duplicate, a closed
  row sent again for a late event), so the history is a function of each series' closed rows
  in window order: a replay from the start gives the same history.
- A rule is broken at a tick when the span holds at least ``min_calls`` (and at least one)
  calls and the metric compares true against the threshold (for baseline rules, the larger
  of the threshold and ``baseline_factor`` x the baseline). Otherwise it is clear.
- States: inactive -> pending (broken, ``for`` not yet reached; straight to firing when
  ``for`` is 0) -> firing (``starts_at`` is that tick) -> resolved (clear for
  ``keep_firing_for``) -> inactive. A pending alert that clears goes back to inactive. Each
  change is one :class:`voicepulse.messages.AlertChange`, at the tick it happened.
- Baselines (``baseline = "week"``): the rate in the same clock hour a week before the tick;
  when the series is younger than that, the mean rate over its whole hours in the
  ``baseline_fallback`` before the span; none when it has no whole hour before the span.

A series whose account sends nothing more keeps its state until its next closed row (nothing
judges it in between).
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, Literal

from alerting.rules import BASELINE_METRICS, Rule, RuleSet
from alerting.span import BASELINE_UNIT_S, KEPT_FIELDS, Measure, Rollup, baseline_count
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.messages import ISV_ACCOUNT, AlertChange, AlertStateName

__all__ = ["AlertState", "Evaluator", "Series", "alert_envelope", "epoch", "iso"]

WEEK_S: Final = 7 * 24 * 3600
_HOUR_S: Final = 3600
_CPS: Final = "cps_saturated_share"
_KEEP_HOURS_S: Final = WEEK_S + 2 * 24 * 3600  # a week back, plus the longest fallback

State = Literal["inactive", "pending", "firing"]
_COMPARE: Final = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@lru_cache(maxsize=4096)
def epoch(value: str) -> int:
    """Epoch seconds of an ISO 8601 time with an offset."""
    return int(datetime.fromisoformat(value).timestamp())


@lru_cache(maxsize=4096)
def iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


@dataclass(slots=True)
class AlertState:
    """One alert that is not inactive: pending since ``since``, or firing since ``since``."""

    state: State
    since: int
    clear_since: int | None = None


@dataclass(slots=True)
class Series:
    """The state of one (account, direction group)."""

    account_sid: str
    group: str
    last_tick: int = 0  # the end of the last judged span; 0 before the first closed row
    first_minute: int = 0  # the start of the series' first closed window
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # window start -> row
    counts: dict[int, dict[str, int]] = field(default_factory=dict)  # window start -> baseline
    hours: dict[int, dict[str, int]] = field(default_factory=dict)  # hour -> baseline counts
    alerts: dict[str, AlertState] = field(default_factory=dict)
    # Derived from the above (rebuilt after a restore), never written to the changelog:
    rollups: dict[int, Rollup] = field(default_factory=dict)  # span -> its running sums
    # The entries changed since the changelog last took them: ("r" | "c" | "h", start).
    dirty: set[tuple[str, int]] = field(default_factory=set)
    baselines: dict[str, tuple[tuple[int, int], float | None]] = field(default_factory=dict)


class Evaluator:
    """Applies closed rows to series and returns the alert changes they cause."""

    def __init__(
        self,
        rules: RuleSet,
        tenant_names: Mapping[str, str] | None = None,
        *,
        changelog: bool = False,
    ) -> None:
        self.rules = rules
        self.series: dict[tuple[str, str], Series] = {}
        self.touched: set[tuple[str, str]] = set()
        """With ``changelog``: the series changed since :meth:`take_touched`."""
        self._changelog = changelog
        self._names = dict(tenant_names or {})
        plain = [r.span for r in rules.rules.values() if r.metric not in BASELINE_METRICS]
        based = [r.span for r in rules.rules.values() if r.metric in BASELINE_METRICS]
        self._row_span = max(plain, default=60)  # whole rows kept this long
        self._count_span = max(based, default=60)  # baseline counts kept this long
        self._row_spans = sorted(set(plain))
        self._count_spans = sorted(set(based))
        self._baselines = sorted({r.metric for r in rules.rules.values()} & BASELINE_METRICS)
        self._applicable: dict[tuple[str, str], list[Rule]] = {}
        self._plans: dict[tuple[str, str], list[tuple[Rule, bool, int]]] = {}

    def add(self, account_sid: str, row: Mapping[str, Any]) -> list[Envelope]:
        """Apply one health row; the alert changes it causes, in tick order.

        Rows not closed, and closed rows for a minute the series has judged, change nothing.
        A closed row without the fields the rules read raises :class:`BadMessage` (before
        anything changed)."""
        if row.get("closed") is not True:
            return []
        try:
            kept = {name: row[name] for name in KEPT_FIELDS}
        except KeyError:
            missing = [name for name in KEPT_FIELDS if name not in row]
            raise BadMessage(f"a closed health row without {', '.join(missing)}") from None
        group = str(row["direction_group"])
        try:
            start = epoch(str(row["window_start"]))
        except ValueError as exc:
            raise BadMessage(f"a health row with a bad window_start: {exc}") from exc
        key = (account_sid, group)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(account_sid, group, first_minute=start)
        elif start + 60 <= series.last_tick:
            return []
        if self._changelog:
            self.touched.add(key)
        changes: list[Envelope] = []
        tick = series.last_tick + 60 if series.last_tick else start + 60
        while tick <= start:
            changes.extend(self._tick(series, tick))
            tick = self._next_tick(series, tick, start)
        series.rows[start] = kept
        if self._changelog:
            series.dirty.add(("r", start))
        self._count_baselines(series, start, row)
        changes.extend(self._tick(series, start + 60))
        return changes

    def take_touched(self) -> list[Series]:
        """The series changed since the last call (with ``changelog``), in a stable order."""
        touched, self.touched = self.touched, set()
        return [self.series[key] for key in sorted(touched) if key in self.series]

    def drop(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget these series (their partition moved to another process)."""
        for key in keys:
            self.series.pop(key, None)
            self.touched.discard(key)

    # -- ticks -------------------------------------------------------------------------------

    def _next_tick(self, series: Series, tick: int, upto: int) -> int:
        """The next tick to judge in a gap before the row of minute ``upto``.

        While every alert of the series is inactive, a tick whose spans hold the same rows as
        the one before (and, for baseline rules, the same baseline hour) judges the same, so
        changes nothing: the next tick judged is the first where a row leaves a span or a
        baseline hour turns, or ``upto``. Past the gap when the spans are empty."""
        if series.alerts:
            return tick + 60
        if not series.rows and not series.counts:
            return upto + 60
        due = upto
        for span in self._row_spans:
            due = min([due, *(s + span + 60 for s in series.rows if s + span + 60 > tick)])
        for span in self._count_spans:
            due = min([due, *(s + span + 60 for s in series.counts if s + span + 60 > tick)])
            for offset in (60, span):  # the ticks where a baseline rule's hours turn
                due = min(due, tick + ((offset - tick) % _HOUR_S or _HOUR_S))
        return max(due, tick + 60)

    def _tick(self, series: Series, tick: int) -> list[Envelope]:
        series.last_tick = tick
        changes = []
        for rollup in self._rollups(series).values():
            rollup.move(series.rows, tick)
        rollups = series.rollups
        alerts = series.alerts
        for rule, based, floor in self._plan(series):
            if based:
                measured = _rate(series.counts, rule, tick)
            else:
                rollup = rollups[rule.span]
                if rule.name not in alerts and rollup.calls(rule.metric, rule.level) < floor:
                    continue  # not judged, and nothing to clear (the metric is not needed)
                measured = rollup.measure(rule.metric, rule.level)
            change = self._judge(series, rule, measured, tick)
            if change is not None:
                changes.append(change)
        dirty = series.dirty if self._changelog else None
        _prune(series.rows, tick - self._row_span, dirty, "r")
        _prune(series.counts, tick - self._count_span, dirty, "c")
        return changes

    def _rollups(self, series: Series) -> dict[int, Rollup]:
        if not series.rollups:
            rules = [r for r in self._rules_for(series) if r.metric not in BASELINE_METRICS]
            series.rollups = {
                span: Rollup(span, {r.level for r in rules if r.span == span and r.metric == _CPS})
                for span in sorted({r.span for r in rules})
            }
        return series.rollups

    def _plan(self, series: Series) -> list[tuple[Rule, bool, int]]:
        """The series' rules, each with whether it is a baseline rule and the fewest calls it
        is judged on."""
        key = (series.account_sid, series.group)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = [
                (rule, rule.metric in BASELINE_METRICS, max(rule.min_calls, 1))
                for rule in self._rules_for(series)
            ]
        return plan

    def _rules_for(self, series: Series) -> list[Rule]:
        key = (series.account_sid, series.group)
        rules = self._applicable.get(key)
        if rules is None:
            rules = []
            for rule in self.rules.rules.values():
                if rule.direction_group != series.group:
                    continue
                if not rule.applies_to(series.account_sid, ISV_ACCOUNT):
                    continue
                applied = rule.for_account(series.account_sid)
                if applied is not None:
                    rules.append(applied)
            self._applicable[key] = rules
        return rules

    def _judge(self, series: Series, rule: Rule, measured: Measure, tick: int) -> Envelope | None:
        value, calls = measured
        alert = series.alerts.get(rule.name)
        if alert is None and (value is None or calls < max(rule.min_calls, 1)):
            return None  # not judged, and nothing to clear: no change (the common case)
        threshold, baseline = self._threshold(series, rule, tick)
        broken = (
            threshold is not None
            and value is not None
            and calls >= max(rule.min_calls, 1)
            and _COMPARE[rule.comparison](value, threshold)
        )
        new = _step(alert, broken, tick, rule)
        if new is None:
            return None
        previous: AlertStateName = alert.state if alert is not None else "inactive"
        state, next_alert = new
        if next_alert is None:
            series.alerts.pop(rule.name, None)
        else:
            series.alerts[rule.name] = next_alert
        started = next_alert.since if next_alert is not None else alert.since if alert else tick
        return alert_envelope(
            series.account_sid,
            rule,
            state=state,
            previous=previous,
            tick=tick,
            starts_at=started,
            measured=measured,
            threshold=threshold if threshold is not None else rule.threshold,
            baseline=baseline,
            tenant=self._names.get(series.account_sid),
        )

    # -- baselines ---------------------------------------------------------------------------

    def _count_baselines(self, series: Series, start: int, row: Mapping[str, Any]) -> None:
        if not self._baselines:
            return
        hour = start - start % _HOUR_S
        counts = series.hours.get(hour)
        minute: dict[str, int] = {}
        for metric in self._baselines:
            count = baseline_count(metric, row)
            if count:
                minute[metric] = count
                if counts is None:
                    counts = series.hours[hour] = {}
                counts[metric] = counts.get(metric, 0) + count
        dirty = series.dirty if self._changelog else None
        if minute:
            series.counts[start] = minute
            if dirty is not None:
                dirty.update((("c", start), ("h", hour)))
        _prune(series.hours, start - _KEEP_HOURS_S, dirty, "h")

    def _threshold(
        self, series: Series, rule: Rule, tick: int
    ) -> tuple[float | None, float | None]:
        """The threshold the rule compares against at this tick, and the baseline (a rate in
        the metric's unit) when the rule has one; no threshold when a required baseline is
        missing."""
        if rule.baseline == "none":
            return rule.threshold, None
        per_second = _cached_baseline_rate(series, rule, tick)
        if per_second is None:
            return (None if rule.baseline_required else rule.threshold), None
        baseline = per_second * BASELINE_UNIT_S[rule.metric]
        return max(rule.threshold, rule.baseline_factor * baseline), baseline


def _prune(
    by_start: dict[int, Any], horizon: int, dirty: set[tuple[str, int]] | None, kind: str
) -> None:
    """Drop the entries before ``horizon`` (noted in ``dirty`` for the changelog)."""
    if by_start and min(by_start) < horizon:
        for start in [start for start in by_start if start < horizon]:
            del by_start[start]
            if dirty is not None:
                dirty.add((kind, start))


def _rate(counts: Mapping[int, Mapping[str, int]], rule: Rule, tick: int) -> Measure:
    """A baseline metric over the span: events per minute or per hour, and their number."""
    since = tick - rule.span
    total = sum(c.get(rule.metric, 0) for start, c in counts.items() if start >= since)
    return total * BASELINE_UNIT_S[rule.metric] / rule.span, total


def _cached_baseline_rate(series: Series, rule: Rule, tick: int) -> float | None:
    """:func:`_baseline_rate`, computed once per hour of ticks (it changes by the hour)."""
    hours = ((tick - 1) // _HOUR_S, (tick - rule.span) // _HOUR_S)
    cached = series.baselines.get(rule.name)
    if cached is not None and cached[0] == hours:
        return cached[1]
    rate = _baseline_rate(series, rule, tick)
    series.baselines[rule.name] = (hours, rate)
    return rate


def _baseline_rate(series: Series, rule: Rule, tick: int) -> float | None:
    """Events per second: the same hour a week earlier, else the fallback moving average."""
    first_hour = math.ceil(series.first_minute / _HOUR_S) * _HOUR_S  # the first whole hour
    week_hour = (tick - 1 - WEEK_S) // _HOUR_S * _HOUR_S
    if week_hour >= first_hour:
        return series.hours.get(week_hour, {}).get(rule.metric, 0) / _HOUR_S
    end = (tick - rule.span) // _HOUR_S * _HOUR_S  # whole hours ending before the span
    begin = max(first_hour, end - rule.baseline_fallback)
    if end <= begin:
        return None
    total = sum(
        counts.get(rule.metric, 0) for hour, counts in series.hours.items() if begin <= hour < end
    )
    return total / (end - begin)


def _step(
    alert: AlertState | None, broken: bool, tick: int, rule: Rule
) -> tuple[AlertStateName, AlertState | None] | None:
    """The state machine: the change to emit and the alert's next state, or None (no change)."""
    if alert is None:
        if not broken:
            return None
        if rule.for_ == 0:
            return "firing", AlertState("firing", tick)
        return "pending", AlertState("pending", tick)
    if alert.state == "pending":
        if not broken:
            return "inactive", None
        if tick - alert.since >= rule.for_:
            return "firing", AlertState("firing", tick)
        return None
    if broken:
        alert.clear_since = None
        return None
    if alert.clear_since is None:
        alert.clear_since = tick
    if tick - alert.clear_since >= rule.keep_firing_for:
        return "resolved", None
    return None


def alert_envelope(
    account_sid: str,
    rule: Rule,
    *,
    state: AlertStateName,
    previous: AlertStateName,
    tick: int,
    starts_at: int,
    measured: Measure,
    threshold: float,
    baseline: float | None,
    tenant: str | None,
) -> Envelope:
    """One ``voicepulse.alerts`` envelope; id ``account_sid:rule:direction_group:changed_at``
    (the notifiers' idempotency key)."""
    changed_at = iso(tick)
    fields: AlertChange = {
        "rule": rule.name,
        "state": state,
        "changed_at": changed_at,
        "previous_state": previous,
        "starts_at": iso(starts_at),
        "severity": rule.severity,
        "direction_group": rule.direction_group,
        "tenant": tenant,
        "metric": rule.metric,
        "comparison": rule.comparison,
        "value": measured[0],
        "threshold": threshold,
        "baseline": baseline,
        "calls": measured[1],
        "min_calls": rule.min_calls,
        "span_s": rule.span,
        "window_start": iso(tick - rule.span),
        "window_end": changed_at,
        "message": _message(account_sid, rule, state, measured, threshold, tenant),
    }
    return Envelope(
        id=f"{account_sid}:{rule.name}:{rule.direction_group}:{changed_at}",
        type="alert",
        account_sid=account_sid,
        source="alerting",
        fields=dict(fields),
    )


def _message(
    account_sid: str,
    rule: Rule,
    state: AlertStateName,
    measured: Measure,
    threshold: float,
    tenant: str | None,
) -> str:
    who = f"{tenant} ({account_sid})" if tenant else account_sid
    value = "n/a" if measured[0] is None else f"{measured[0]:.4g}"
    return (
        f"{state}: {rule.name} on {who} {rule.direction_group}: {rule.metric} {value} "
        f"{rule.comparison} {threshold:.4g} over {rule.span // 60} min, {measured[1]} calls"
    )
