"""Property: the alert history of the stream equals a batch recomputation of the rules over
the ``health_minute`` rows (the latest row per window id, as the sink keeps them), for random
traffic delivered with duplicates and disorder, and health rows replayed."""

import random
from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting import Evaluator, Rule, default_rules
from alerting.evaluator import epoch, iso
from alerting.rules import BASELINE_METRICS
from alerting.span import measure
from simulator import PROFILES
from tests.alerting.traffic_rows import health_rows, profile, tenant
from voicepulse.envelope import Envelope
from voicepulse.messages import ISV_ACCOUNT

History = list[tuple[str, str, str]]  # (id, state, value as text)


def _history(changes: list[Envelope]) -> History:
    return sorted((c.id, c.fields["state"], repr(c.fields["value"])) for c in changes)


def _table(rows: list[Envelope]) -> dict[tuple[str, str, str], Envelope]:
    """health_minute: one row per id, the latest."""
    latest: dict[tuple[str, str, str], Envelope] = {}
    for row in rows:
        latest[(row.account_sid, row.fields["direction_group"], row.fields["window_start"])] = row
    return latest


def _replayed(rows: list[Envelope], rng: random.Random) -> list[Envelope]:
    """The rows as a consumer may see them: some published twice, some earlier ones again."""
    seen: list[Envelope] = []
    for row in rows:
        seen.append(row)
        if rng.random() < 0.05:
            seen.append(row)
        if seen and rng.random() < 0.03:
            seen.extend(seen[rng.randrange(len(seen)) :][:5])
    return seen


def _plain(table: dict[tuple[str, str, str], Envelope], rule: Rule) -> History:
    """The rule judged at every minute of every series from the closed rows alone, with the
    plain rollup (merge_rows) and the state machine as docs/alerting.md states it."""
    series: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for (account, group, start), row in table.items():
        wanted = group == rule.direction_group and rule.applies_to(account, ISV_ACCOUNT)
        if row.fields.get("closed") is True and wanted:
            series[(account, group)][epoch(start)] = dict(row.fields)
    history: History = []
    for (account, group), rows in series.items():
        state, clear = "inactive", 0
        for tick in range(min(rows) + 60, max(rows) + 120, 60):
            span = [r for s, r in sorted(rows.items()) if tick - rule.span <= s < tick]
            value, calls = measure(rule.metric, span, rule.span, rule.level)
            broken = (
                value is not None
                and calls >= max(rule.min_calls, 1)
                and _compare(rule.comparison, value, rule.threshold)
            )
            new = None
            if state == "inactive" and broken:
                state, new = "firing", "firing"  # every default rule has for = 0
            elif state == "firing" and broken:
                clear = 0
            elif state == "firing":
                clear = clear or tick
                if tick - clear >= rule.keep_firing_for:
                    state, clear, new = "inactive", 0, "resolved"
            if new:
                change_id = f"{account}:{rule.name}:{group}:{iso(tick)}"
                history.append((change_id, new, repr(value)))
    return sorted(history)


def _compare(comparison: str, value: float, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
    }[comparison]


@settings(max_examples=4, deadline=None)
@given(
    st.integers(0, 2**32),
    st.lists(st.integers(0, len(PROFILES) - 1), min_size=1, max_size=3),
    st.integers(0, 100),
    st.sampled_from([0.0, 0.1, 0.3]),
)
def test_the_stream_history_equals_a_batch_recomputation(
    seed: int, profiles: list[int], max_delay_s: int, duplicate_rate: float
) -> None:
    sims = [tenant(i, profile(PROFILES[p].name), rate=1.0) for i, p in enumerate(profiles)]
    rows = health_rows(
        sims,
        1200,
        seed=seed,
        max_delay_s=max_delay_s,
        duplicate_rate=duplicate_rate,
        isv_cps_limit=2.0,
    )
    rules = default_rules()
    live = Evaluator(rules)
    stream = [
        c for r in _replayed(rows, random.Random(seed)) for c in live.add(r.account_sid, r.fields)
    ]
    table = _table(rows)
    batch = Evaluator(rules)
    ordered = sorted(table.values(), key=lambda r: r.fields["window_start"])
    recomputed = [c for r in ordered for c in batch.add(r.account_sid, r.fields)]
    assert _history(stream) == _history(recomputed)
    for rule in rules.rules.values():
        if rule.metric in BASELINE_METRICS:
            continue
        mine = [h for h in _history(stream) if h[0].split(":")[1] == rule.name]
        assert mine == _plain(table, rule), rule.name
