"""The processor's fast path for status callbacks against the plain one, its oracle.

``Processor.feed`` decodes a status callback's JSON straight into a
:class:`~processors.calls.Callback`; the plain way decodes the envelope to a dict
(:func:`~processors.processor.decode`) and applies it with :meth:`Shard.apply_doc`. For any
bytes, both must give the same facts, rows, rejections and call state.
"""

from typing import Any

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from processors import vocabulary as vocab
from processors.calls import Callback, CallState
from processors.engine import EngineConfig
from processors.processor import Output, Processor, decode
from processors.state import encode_call
from voicepulse.errors import BadMessage
from voicepulse.types import Record

CONFIG = EngineConfig(
    grace_s=120, call_timeout_s=600, horizon_s=900, clock=lambda: 1_795_687_800.5
)  # the wall clock at 2026-11-26T10:10:00.5: events after it are from the future
SUBS = ("AC" + "1" * 32, "AC" + "2" * 32)

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)


def _mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = _SCALARS) -> Any:
    """``good`` seven times in eight, else ``odd``."""
    return st.tuples(st.integers(0, 7), good, odd).map(lambda t: t[2] if t[0] == 7 else t[1])


_SECONDS = st.one_of(st.integers(0, 1200), st.sampled_from([300, 330, 331]))
"""Seconds after 10:00: any, or a few that meet (an event stamped just inside the tolerance
after its receipt at 10:05:00, or just outside it)."""
_TIMES = st.one_of(
    _SECONDS.map(lambda s: f"2026-11-26T10:{s // 60:02d}:{s % 60:02d}+00:00"),
    st.integers(0, 59).map(lambda s: f"Thu, 26 Nov 2026 10:07:{s:02d} +0000"),
)
_ODD_TIMES = st.one_of(
    st.sampled_from(["2100-01-01T00:00:00+00:00", "", "not a time", "2026-11-26"]), _SCALARS
)
_RECEIVED = st.tuples(_SECONDS, st.integers(0, 999_999)).map(
    lambda t: f"2026-11-26T10:{t[0] // 60:02d}:{t[0] % 60:02d}.{t[1]:06d}+00:00"
)
"""The receiver's form of ``received_at`` (to the microsecond)."""
_ODD_RECEIVED = st.one_of(
    st.sampled_from(  # near misses of the receiver's form
        [
            "2126-11-26T10:05:00.000001+00:00",
            "2026-11-26 10:05:00.000001+00:00",
            "2026-13-26T10:05:00.000001+00:00",
            "2026-11-26T10:05:00.00000x+00:00",
            "2026-11-26T10:05:00.000001+01:00",
            "2026-11-26T10:05:00,000001+00:00",
            "2026-11-26T10:05:00x000001+00:00",
            "2026-11-26T10:05:00.0000001+00:00",
        ]
    ),
    _TIMES,
    _ODD_TIMES,
)
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "call_sid": _mostly(st.sampled_from(["CA1", "CA2", "CA3"])),
    "call_status": _mostly(
        st.sampled_from([*vocab.OPEN_STATUSES, *sorted(vocab.TERMINAL_STATUSES), "bogus"])
    ),
    "direction": _mostly(st.sampled_from(["outbound-api", "inbound", "outbound-dial"])),
    "from": _mostly(st.sampled_from(["+14155550100", "+14155550101"])),
    "to": _SCALARS,
    "sequence_number": _mostly(st.integers(-1, 6)),
    "timestamp": _mostly(_TIMES, _ODD_TIMES),
    "received_at": _mostly(_RECEIVED, _ODD_RECEIVED),
    "call_duration": _mostly(st.integers(0, 90), st.sampled_from(["0", "12", "x"]) | _SCALARS),
    "sip_response_code": _mostly(st.sampled_from([200, 486, 503, "503"])),
    "stir_verstat": _mostly(st.sampled_from(["TN-Validation-Passed-A", "TN-Validation-Failed"])),
    "parent_call_sid": _SCALARS,
    "parent_account_sid": _mostly(st.just("AC" + "f" * 32)),
}


@st.composite
def _envelope(draw: st.DrawFn) -> bytes:
    """A call-status envelope, mostly well formed, any field possibly odd or missing."""
    doc: dict[str, Any] = {
        "id": draw(_mostly(st.text("ab:0123", min_size=1, max_size=6))),
        "type": draw(_mostly(st.just("call-status"), st.sampled_from(["call-resource", ""]))),
        "account_sid": draw(_mostly(st.sampled_from(SUBS))),
        "schema": 1,
        "source": "ingest",
        "raw": {"CallSid": "CA1"},
    }
    for name, values in _FIELDS.items():
        if draw(st.booleans()) or name in ("call_sid", "call_status", "timestamp"):
            doc[name] = draw(values)
    return orjson.dumps(doc)


def _fast(values: list[bytes]) -> tuple[Output, Processor]:
    processor = Processor(CONFIG)
    out = Output()
    processor.feed([Record("in", 0, i, None, v) for i, v in enumerate(values)], out)
    return processor.drain(out), processor


def _plain(values: list[bytes]) -> tuple[Output, Processor]:
    processor = Processor(CONFIG)
    shard = processor.shard(0)
    out = Output()
    for i, value in enumerate(values):
        try:
            shard.apply_doc(decode(value))
        except BadMessage as exc:
            out.rejected.append((Record("in", 0, i, None, value), str(exc)))
    return processor.drain(out), processor


def _seen(out: Output, processor: Processor) -> tuple[Any, ...]:
    shard = processor.shard(0)
    return (
        [(e.id, dict(e.fields)) for e in out.facts],
        [(e.id, dict(e.fields)) for e in out.rows],
        [(record.offset, reason) for record, reason in out.rejected],
        {sid: encode_call(call) for sid, call in shard.calls.items()},
        shard.stream_time,
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(_envelope(), max_size=12))
def test_fed_callbacks_equal_decoded_and_applied_ones(values: list[bytes]) -> None:
    assert _seen(*_fast(values)) == _seen(*_plain(values))


# -- CallState.callback, the fast fold of one status callback, against CallState.merge --------

_IDS = st.sampled_from(["a", "b", "c", "d", "e", "f"])  # few: duplicates are common
_EVENT_AT = st.one_of(st.none(), st.integers(1_795_687_200, 1_795_687_500))
_CALLBACK_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "parent_account_sid": st.one_of(st.just("AC" + "f" * 32), _SCALARS),
    "call_status": st.one_of(
        st.sampled_from([*vocab.OPEN_STATUSES, *sorted(vocab.TERMINAL_STATUSES), "bogus", ""]),
        _SCALARS,
    ),
    "direction": _FIELDS["direction"],
    "from": _FIELDS["from"],
    "to": _FIELDS["to"],
    "sequence_number": _FIELDS["sequence_number"],
    "call_duration": _FIELDS["call_duration"],
    "sip_response_code": _FIELDS["sip_response_code"],
    "stir_verstat": _FIELDS["stir_verstat"],
    "parent_call_sid": _FIELDS["parent_call_sid"],
}
_OTHER_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "call-resource": {
        "status": st.sampled_from(["in-progress", "completed", "busy", "no_answer", None]),
        "duration_s": st.one_of(st.none(), st.integers(0, 90)),
        "queue_time_ms": st.one_of(st.none(), st.integers(0, 900)),
        "cost": st.sampled_from([None, "", "-0.0085", "x"]),
        "end_time": st.sampled_from([None, "2026-11-26T10:04:00+00:00"]),
        "date_created": st.sampled_from([None, "2026-11-26T10:00:01+00:00", "bad"]),
        "direction": _FIELDS["direction"],
        "from": _FIELDS["from"],
    },
    "insights-summary": {
        "processing_state": st.sampled_from(["partial", "complete", None]),
        "call_state": st.sampled_from(["completed", "answered", "noanswer", "ringing", None]),
        "answered_by": st.sampled_from([None, "", "unknown", "human"]),
        "duration_s": st.one_of(st.none(), st.integers(0, 90)),
        "connect_duration_s": st.one_of(st.none(), st.integers(0, 90)),
        "queue_time_ms": st.one_of(st.none(), st.integers(0, 900)),
        "created_time": st.sampled_from([None, "2026-11-26T10:00:02+00:00"]),
    },
    "debugger-event": {"error_code": st.sampled_from(["32001", "32012", "11200", None])},
}


@st.composite
def _event(draw: st.DrawFn) -> tuple[dict[str, Any], int | None]:
    """A status callback (mostly) or another event of the same call, as a decoded envelope
    with the event time the shard gave it; any callback field may be odd or missing."""
    kind = draw(st.sampled_from(["call-status"] * 6 + [*_OTHER_FIELDS]))
    doc: dict[str, Any] = {"id": draw(_IDS), "type": kind, "account_sid": SUBS[0]}
    fields = _CALLBACK_FIELDS if kind == "call-status" else _OTHER_FIELDS[kind]
    for name, values in fields.items():
        if draw(st.booleans()) or name == "call_status":
            doc[name] = draw(values)
    return doc, draw(_EVENT_AT)


@st.composite
def _start(draw: st.DrawFn) -> CallState:
    """A new call, or one restored from a changelog written before other sources could end a
    call (its terminal callback kept in ``terminal`` only)."""
    call = CallState("CA1", SUBS[0])
    if draw(st.booleans()):
        call.terminal = (draw(st.integers(-1, 6)), draw(_IDS), draw(st.sampled_from(["busy"])))
        call.terminal_at = draw(_EVENT_AT)
        call.terminal_fields = {
            "call_duration": draw(st.one_of(st.none(), st.integers(0, 90))),
            "sip_response_code": draw(st.sampled_from([None, 200, 503])),
        }
        call.seen = (call.terminal[1],)
    return call


_decode_callback = msgspec.json.Decoder(Callback).decode


@settings(max_examples=500, deadline=None)
@given(_start(), st.lists(_event(), max_size=14))
def test_callback_fold_equals_merge(
    start: CallState, events: list[tuple[dict[str, Any], int | None]]
) -> None:
    """Any sequence of a call's events (duplicates, disorder, every status, odd and missing
    fields): folding its callbacks with :meth:`CallState.callback` answers and leaves the same
    state as :meth:`CallState.merge`, the plain definition."""
    fast, plain = msgspec.structs.replace(start), msgspec.structs.replace(start)
    for doc, event_at in events:
        expected = plain.merge(doc, event_at)
        if doc["type"] == "call-status":
            got = fast.callback(_decode_callback(orjson.dumps(doc)), event_at)
        else:
            got = fast.merge(doc, event_at)
        assert got == expected
        assert msgspec.structs.asdict(fast) == msgspec.structs.asdict(plain)
