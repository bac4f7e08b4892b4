"""Health rows say whether their window is closed: interim rows false, the row published when the
window closes (and every later one) true, for subaccount and ISV rows alike."""

from typing import Any

from processors.engine import EngineConfig, Shard
from processors.isv import IsvAggregator
from processors.state import changed_entries, restore_entry
from tests.processors.closing import CLOSES_AT, GRACE_S, OTHER, call_events, run
from tests.processors.sources import SUB
from voicepulse.envelope import Envelope
from voicepulse.messages import ISV_ACCOUNT


def _only(rows: list[Envelope], account: str) -> dict[str, Any]:
    (row,) = [dict(r.fields) for r in rows if r.account_sid == account]
    return row


def test_interim_rows_are_open_and_the_close_publishes_a_closed_row() -> None:
    steps = run()
    interim = _only(steps.interim, SUB)
    assert (interim["attempts"], interim["closed"]) == (1, False)
    closed = _only(steps.first_closed, SUB)
    assert closed["closed"] is True
    assert {k: v for k, v in closed.items() if k != "closed"} == {
        k: v for k, v in interim.items() if k != "closed"
    }
    assert [r.account_sid for r in steps.first_closed] == [SUB]  # the other shard is still open
    assert _only(steps.second_closed, OTHER)["closed"] is True


def test_a_late_event_publishes_the_closed_row_again_still_closed() -> None:
    late = _only(run().late, SUB)
    assert (late["attempts"], late["late_events"], late["closed"]) == (1, 2, True)


def test_the_isv_row_closes_when_the_last_subaccount_row_does() -> None:
    steps = run()
    aggregator = IsvAggregator(cps_limit=5.0)
    published = []
    for batch in (steps.interim, steps.first_closed, steps.second_closed, steps.late):
        changed = {aggregator.add(row) for row in batch} - {None}
        rows = [aggregator.row(key) for key in changed if key]
        assert {row.account_sid for row in rows} <= {ISV_ACCOUNT}
        published.append([dict(row.fields) for row in rows])
    interim, first, second, late = published
    assert [(r["attempts"], r["closed"]) for r in interim] == [(2, False)]
    assert [(r["attempts"], r["closed"]) for r in first] == [(2, False)]
    assert [(r["attempts"], r["closed"]) for r in second] == [(2, True)]
    assert [(r["late_events"], r["closed"]) for r in late] == [(2, True)]


def test_an_isv_row_merging_a_row_without_closed_is_open() -> None:
    steps = run()
    aggregator = IsvAggregator(cps_limit=5.0)
    old = steps.second_closed[0]
    fields = {k: v for k, v in old.fields.items() if k != "closed"}  # an older processor's row
    for row in [*steps.first_closed, Envelope(**{**_envelope_args(old), "fields": fields})]:
        key = aggregator.add(row)
    assert key is not None
    assert aggregator.row(key).fields["closed"] is False


def _envelope_args(envelope: Envelope) -> dict[str, Any]:
    return {name: getattr(envelope, name) for name in envelope.__struct_fields__}


def test_a_restored_shard_keeps_its_closed_rows_closed() -> None:
    shard = Shard(EngineConfig(grace_s=GRACE_S))
    for event in call_events("CA" + "9" * 32, SUB):
        shard.apply(event)
    shard.advance(int(CLOSES_AT.timestamp()))
    _, rows, dirty = shard.take_changes()
    restored = Shard(EngineConfig(grace_s=GRACE_S))
    for key, value in changed_entries(shard, dirty, [key for key, _ in rows]):
        if key.startswith("r:") and value is not None:  # as written before rows said closed
            value = value.replace(b',"closed":true', b"")
            assert b"closed" not in value
        restore_entry(restored, key, value)
    assert [row["closed"] for row in restored.closed.values()] == [True]
