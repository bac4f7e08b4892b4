"""Minute counts: duplicates and disorder never change a count."""

import itertools

from processors.engine import EngineConfig, Shard
from voicepulse.envelope import Envelope

SUB = "AC" + "1" * 32


def _event(
    call: str,
    seq: int,
    status: str,
    duration: int | None = None,
    direction: str = "outbound-api",
    minute: int = 5,
) -> Envelope:
    return Envelope(
        id=f"{call}:{seq}",
        type="call-status",
        account_sid=SUB,
        source="test",
        fields={
            "call_sid": call,
            "call_status": status,
            "direction": direction,
            "sequence_number": seq,
            "timestamp": f"2026-11-26T10:{minute:02d}:{seq:02d}+00:00",
            "call_duration": duration,
        },
    )


ANSWERED = [
    _event("CA1", 0, "initiated"),
    _event("CA1", 1, "ringing"),
    _event("CA1", 2, "in-progress"),
    _event("CA1", 3, "completed", 42),
]
BUSY = [_event("CA2", 0, "initiated"), _event("CA2", 1, "ringing"), _event("CA2", 2, "busy", 0)]
INBOUND = [
    _event("CA3", 0, "ringing", direction="inbound"),
    _event("CA3", 1, "in-progress", direction="inbound"),
    _event("CA3", 2, "completed", 3, direction="inbound"),
]


def _counts(events: list[Envelope]) -> dict[tuple[str, str, str], tuple[object, object]]:
    shard = Shard(EngineConfig())
    for event in events:
        shard.apply(event)
    _, changed, _ = shard.take_changes()
    rows = dict(changed)
    return {
        (k[0], k[1], str(row["window_start"])): (row["attempts"], row["answered"])
        for k, row in rows.items()
    }


EXPECTED = {
    (SUB, "outbound", "2026-11-26T10:05:00+00:00"): (2, 1),
    (SUB, "inbound", "2026-11-26T10:05:00+00:00"): (1, 1),
}


def test_counts_in_order() -> None:
    assert _counts(ANSWERED + BUSY + INBOUND) == EXPECTED


def test_any_order_and_duplicates_give_the_same_counts() -> None:
    events = ANSWERED + BUSY + INBOUND
    for permutation in itertools.islice(itertools.permutations(events), 0, 5000, 97):
        assert _counts(list(permutation) + list(permutation[:4])) == EXPECTED


def test_late_ringing_after_completed_changes_nothing() -> None:
    shard = Shard(EngineConfig())
    for e in [ANSWERED[3], ANSWERED[1]]:
        shard.apply(e)
    shard.take_changes()
    shard.apply(_event("CA1", 1, "ringing"))
    assert shard.take_changes()[:2] == ([], [])
    assert shard.calls["CA1"].fact()["status"] == "completed"


def test_late_in_progress_marks_the_counted_call_answered() -> None:
    shard = Shard(EngineConfig())
    shard.apply(_event("CA9", 3, "completed", 0))
    _, ((key, _),), _ = shard.take_changes()
    assert shard.row(key)["answered"] == 0
    shard.apply(_event("CA9", 2, "in-progress"))
    _, changed, _ = shard.take_changes()
    assert key in dict(changed)
    assert shard.row(key)["answered"] == 1


def test_a_call_with_many_events_still_counts_each_once() -> None:
    # Past a handful of envelope ids a call keeps them in a set instead of a tuple.
    ringing = [_event("CA7", seq, "ringing") for seq in range(1, 30)]
    events = [_event("CA7", 0, "initiated"), *ringing, _event("CA7", 30, "completed", 5)]
    shard = Shard(EngineConfig())
    for event in events + events[::-1]:
        shard.apply(event)
    calls, changed, _ = shard.take_changes()
    ((_, row),) = changed
    assert (row["attempts"], row["answered"], row["calls_created"]) == (1, 1, 1)
    assert [call.version for call in calls] == [1]
    assert isinstance(shard.calls["CA7"].seen, set)


def test_a_window_evicted_with_its_row_unsent_sends_it_and_no_late_row() -> None:
    config = EngineConfig(grace_s=120, horizon_s=600)
    shard = Shard(config)
    shard.apply(ANSWERED[0])
    shard.take_changes()
    shard.apply(ANSWERED[3])  # changes the window again: its row is not sent yet
    start = shard.calls["CA1"].first_callback[2] // 60 * 60  # type: ignore[index]
    shard.advance(start + 60 + 120 + 600)  # closed, then evicted before the turn ends
    shard.apply(_event("CA2", 0, "initiated"))  # late for the evicted window
    _, rows, _ = shard.take_changes()
    # The evicted window's last row still goes out; the late event rebuilds no row from
    # nothing (it would replace that one downstream) and is counted on the shard instead.
    assert [row["late_events"] for key, row in rows if key[2] == start] == [0]
    assert shard.forgotten_late == 1
