"""The default rules on the simulator's traffic, through the processors' own health rows:
each rule fires on the profile that breaks it, healthy traffic raises nothing, and an alert
comes within three minutes (event time) of the traffic that breaks its rule."""

import random
from collections.abc import Sequence

import pytest

from alerting import Evaluator, default_rules
from alerting.evaluator import epoch
from processors.engine import EngineConfig
from processors.processor import Output, Processor
from simulator import Profile, Traffic, envelopes, generate
from tests.alerting.traffic_rows import START, health_rows, profile, tenant
from voicepulse.envelope import Envelope
from voicepulse.messages import ISV_ACCOUNT

WARM_UP_S = 600
"""The first minutes of simulated traffic over-represent short calls (only they have ended
yet), and a span that begins holds few calls: the tests judge from then on."""


def fired(rows: Sequence[Envelope], since: int = START + WARM_UP_S) -> set[tuple[str, str]]:
    """(account or ISV, rule) of every alert that was firing at some time after ``since``
    (it fired or resolved after it, or was still firing at the end; every row is judged)."""
    evaluator = Evaluator(default_rules())
    changes = [c for row in rows for c in evaluator.add(row.account_sid, row.fields)]
    found = {
        (c.account_sid, c.fields["rule"])
        for c in changes
        if c.fields["state"] in ("firing", "resolved") and epoch(c.fields["changed_at"]) > since
    }
    found |= {
        (series.account_sid, rule)
        for series in evaluator.series.values()
        for rule, alert in series.alerts.items()
        if alert.state == "firing"
    }
    return {("ISV" if who == ISV_ACCOUNT else "sub", rule) for who, rule in found}


def test_healthy_traffic_raises_nothing() -> None:
    healthy = profile("healthy")
    rows = health_rows([tenant(i, healthy, rate=1.0) for i in range(2)], 2400)
    assert fired(rows, since=START + WARM_UP_S + 900) == set()


@pytest.mark.parametrize(
    ("chosen", "limit", "rules"),
    [
        (profile("low-asr"), 5.0, {"asr_low", "attestation_low"}),
        (profile("short-calls"), 5.0, {"short_calls_high", "acd_low"}),
        (profile("healthy", from_pool=1, inbound_share=0.0), 5.0, {"caller_id_repetitive"}),
        (profile("cps-bursts"), 1.0, {"queue_time_high", "cps_saturated"}),
        (profile("trunk-503"), 5.0, {"trunk_cps_rejections"}),
        (profile("debugger-storm"), 5.0, {"debugger_errors_high"}),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_each_rule_fires_on_the_traffic_that_breaks_it(
    chosen: Profile, limit: float, rules: set[str]
) -> None:
    sim = tenant(1, chosen, rate=1.0, cps_limit=limit)
    rows = health_rows([sim], 1500, cps_limit=limit)
    got = {rule for who, rule in fired(rows, since=START) if who == "sub"}
    assert rules <= got


def test_cps_saturated_fires_on_the_isv_rows() -> None:
    """Three tenants each well under their own limit, together over the ISV's."""
    healthy = profile("healthy", inbound_share=0.0)
    rows = health_rows(
        [tenant(i, healthy, rate=1.5) for i in range(3)], 1200, cps_limit=5.0, isv_cps_limit=2.0
    )
    got = fired(rows)
    assert ("ISV", "cps_saturated") in got
    assert ("sub", "cps_saturated") not in got


def test_toll_fraud_shape_fires_when_outbound_volume_leaves_the_baseline() -> None:
    quiet = tenant(1, profile("healthy", inbound_share=0.0), rate=0.1)
    burst = tenant(1, profile("healthy", inbound_share=0.0), rate=2.0)
    traffic = Traffic()
    for sim, begin, seconds in ((quiet, START, 3 * 3600), (burst, START + 3 * 3600, 1800)):
        part = generate(_rng(begin), [sim], begin, seconds)
        traffic.calls += part.calls
        traffic.debugger += part.debugger
    rows = _rows_of(traffic, START + 4 * 3600)
    assert ("sub", "toll_fraud_shape") in fired(rows)
    assert ("sub", "toll_fraud_shape") not in fired([r for r in rows if _before(r, 3 * 3600)])


def test_an_alert_comes_within_three_minutes_of_the_traffic_that_breaks_it() -> None:
    """Events applied in event-time order, the processor's stream time on event time (as with
    the default grace of 120 s): the first trunk CPS rejection is alerted on by the time the
    stream reaches its time plus 180 s (window end + grace)."""
    sim = tenant(1, profile("trunk-503"), rate=1.0)
    traffic = generate(_rng(7), [sim], START, 900)
    ordered = sorted(envelopes(traffic), key=_event_time)
    rejected = min(c.callbacks[-1][2] for c in traffic.calls if c.rejected)
    processor = Processor(EngineConfig(cps_limit=lambda account: 5.0))
    evaluator = Evaluator(default_rules())
    for envelope in ordered:
        out = processor.apply_envelopes([envelope])
        changes = [c for r in out.rows for c in evaluator.add(r.account_sid, r.fields)]
        if any(c.fields["rule"] == "trunk_cps_rejections" for c in changes):
            stream_time = processor.shard(0).stream_time
            assert stream_time - rejected <= 180
            return
    pytest.fail("no trunk_cps_rejections alert")


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _event_time(envelope: Envelope) -> str:
    return str(envelope.fields.get("timestamp") or envelope.fields.get("date_created") or "")


def _before(row: Envelope, seconds: int) -> bool:
    return epoch(row.fields["window_start"]) < START + seconds


def _rows_of(traffic: Traffic, end: int) -> list[Envelope]:
    processor = Processor(EngineConfig(cps_limit=lambda account: 5.0))
    delivered = envelopes(traffic)
    rows: list[Envelope] = []
    for first in range(0, len(delivered), 500):
        rows += processor.apply_envelopes(delivered[first : first + 500]).rows
    processor.shard(0).advance(end + 5 * 3600)
    rows += processor.drain(Output()).rows
    return rows
