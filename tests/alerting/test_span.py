"""The running sums of a span (:class:`alerting.span.Rollup`) measure what the plain rollup
of the span's rows (``processors.windows.merge_rows``) measures, as rows enter and leave."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.rules import METRICS
from alerting.span import Rollup, measure
from tests.alerting.rows import T0, row

PLAIN = [
    m for m in METRICS if m not in ("debugger_errors_per_minute", "outbound_attempts_per_hour")
]

minutes = st.builds(
    lambda attempts, answered, short, talk, froms, created, queue, rejected, limit: {
        "attempts": attempts,
        "answered": min(answered, attempts),
        "short": short,
        "talk_s": talk,
        "froms": froms,
        "created": created,
        "queue_ms": queue,
        "rejected": rejected,
        "cps_limit": limit,
    },
    st.integers(0, 12),
    st.integers(0, 12),
    st.integers(0, 4),
    st.integers(1, 200),
    st.integers(1, 5),
    st.integers(0, 60),
    st.one_of(st.none(), st.integers(0, 20_000)),
    st.integers(0, 2),
    st.sampled_from([0.5, 1.0, 2.0]),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.none(), minutes), min_size=1, max_size=40),
    st.sampled_from([60, 300, 900]),
    st.sampled_from([0.5, 0.9, 1.0]),
)
def test_running_sums_measure_what_the_merged_rows_measure(
    plan: list[dict[str, Any] | None], span: int, level: float
) -> None:
    rows = {T0 + 60 * m: row(m, **kw) for m, kw in enumerate(plan) if kw is not None}
    rollup = Rollup(span, {level})
    plain_levels = Rollup(span)  # without the level: counted from the rows each time
    for tick in range(T0 + 60, T0 + 60 * (len(plan) + 1), 60):
        rollup.move(rows, tick)
        plain_levels.move(rows, tick)
        inside = [r for start, r in sorted(rows.items()) if tick - span <= start < tick]
        for metric in PLAIN:
            fast, plain = rollup.measure(metric, level), measure(metric, inside, span, level)
            assert fast == plain, (metric, tick)
            assert rollup.calls(metric, level) == plain[1], (metric, tick)
            assert plain_levels.measure(metric, level) == plain, (metric, tick)
