"""The evaluator's state as changelog entries, and back.

Per series (``ACCOUNT|GROUP``), keys and values (JSON):

- ``s|ACCOUNT|GROUP``: the last tick judged, the first minute, the alerts that are not
  inactive (``rule -> [state, since, clear_since]``);
- ``r|ACCOUNT|GROUP|START``: a closed row kept for the spans (tombstone once it left them);
- ``c|ACCOUNT|GROUP|START``: a minute's baseline counts (tombstone once it left the spans);
- ``h|ACCOUNT|GROUP|HOUR``: an hour's baseline counts (tombstone after eight days).

Only what changed since the last turn is written (:attr:`Series.dirty`), so a turn writes
about one row per series it judged, not its whole span. The running sums of the spans are not
written: they are rebuilt from the rows at the next tick.
"""

from typing import Any

import orjson

from alerting.evaluator import AlertState, Evaluator, Series

__all__ = ["restore_entry", "series_entries"]


def series_entries(series: Series) -> list[tuple[bytes, bytes | None]]:
    """The changelog entries of what changed in ``series``; clears what it took."""
    base = f"{series.account_sid}|{series.group}"
    stores: dict[str, dict[int, Any]] = {"r": series.rows, "c": series.counts, "h": series.hours}
    entries: list[tuple[bytes, bytes | None]] = []
    for kind, start in sorted(series.dirty):
        value = stores[kind].get(start)
        entries.append(
            (f"{kind}|{base}|{start}".encode(), None if value is None else orjson.dumps(value))
        )
    series.dirty.clear()
    meta = {
        "last_tick": series.last_tick,
        "first_minute": series.first_minute,
        "alerts": {
            rule: [alert.state, alert.since, alert.clear_since]
            for rule, alert in sorted(series.alerts.items())
        },
    }
    entries.append((f"s|{base}".encode(), orjson.dumps(meta)))
    return entries


def restore_entry(evaluator: Evaluator, key: bytes, value: bytes | None) -> tuple[str, str]:
    """Apply one changelog entry (in the order written); the series it belongs to."""
    kind, account, group, *rest = key.decode().split("|")
    series = evaluator.series.get((account, group))
    if series is None:
        series = evaluator.series[(account, group)] = Series(account, group)
    if kind == "s":
        assert value is not None
        meta = orjson.loads(value)
        series.last_tick = meta["last_tick"]
        series.first_minute = meta["first_minute"]
        series.alerts = {
            rule: AlertState(state, since, clear_since)
            for rule, (state, since, clear_since) in meta["alerts"].items()
        }
        series.rollups = {}
        series.baselines = {}
        return account, group
    start = int(rest[0])
    store: dict[int, Any] = {"r": series.rows, "c": series.counts, "h": series.hours}[kind]
    if value is None:
        store.pop(start, None)
    else:
        store[start] = orjson.loads(value)
    return account, group
