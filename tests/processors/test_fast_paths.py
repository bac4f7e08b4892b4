"""The processor's fast path for status callbacks against the plain one, its oracle.

``Processor.feed`` decodes a status callback's JSON straight into a
:class:`~processors.calls.Callback`; the plain way decodes the envelope to a dict
(:func:`~processors.processor.decode`) and applies it with :meth:`Shard.apply_doc`. For any
bytes, both must give the same facts, rows, rejections and call state.
"""

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from processors import vocabulary as vocab
from processors.engine import EngineConfig
from processors.processor import Output, Processor, decode
from processors.state import encode_call
from voicepulse.errors import BadMessage
from voicepulse.types import Record

CONFIG = EngineConfig(grace_s=120, call_timeout_s=600, horizon_s=900)
SUBS = ("AC" + "1" * 32, "AC" + "2" * 32)

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
_TIMES = st.one_of(
    st.integers(0, 1200).map(lambda s: f"2026-11-26T10:{s // 60:02d}:{s % 60:02d}+00:00"),
    st.integers(0, 59).map(lambda s: f"Thu, 26 Nov 2026 10:07:{s:02d} +0000"),
    st.sampled_from(["2100-01-01T00:00:00+00:00", "", "not a time", "2026-11-26"]),
    _SCALARS,
)
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "call_sid": st.one_of(st.sampled_from(["CA1", "CA2", "CA3"]), _SCALARS),
    "call_status": st.one_of(
        st.sampled_from([*vocab.OPEN_STATUSES, *sorted(vocab.TERMINAL_STATUSES), "bogus"]),
        _SCALARS,
    ),
    "direction": st.one_of(st.sampled_from(["outbound-api", "inbound", "outbound-dial"]), _SCALARS),
    "from": st.one_of(st.sampled_from(["+14155550100", "+14155550101"]), _SCALARS),
    "to": _SCALARS,
    "sequence_number": st.one_of(st.integers(-1, 6), _SCALARS),
    "timestamp": _TIMES,
    "received_at": _TIMES,
    "call_duration": st.one_of(st.integers(0, 90), st.sampled_from(["0", "12", "x"]), _SCALARS),
    "sip_response_code": st.one_of(st.sampled_from([200, 486, 503, "503"]), _SCALARS),
    "stir_verstat": st.one_of(
        st.sampled_from(["TN-Validation-Passed-A", "TN-Validation-Failed"]), _SCALARS
    ),
    "parent_call_sid": _SCALARS,
    "parent_account_sid": st.one_of(st.just("AC" + "f" * 32), _SCALARS),
}


@st.composite
def _envelope(draw: st.DrawFn) -> bytes:
    """A call-status envelope, mostly well formed, any field possibly odd or missing."""
    doc: dict[str, Any] = {
        "id": draw(st.one_of(st.text("ab:0123", min_size=1, max_size=6), _SCALARS)),
        "type": draw(st.sampled_from(["call-status", "call-status", "call-resource", ""])),
        "account_sid": draw(st.one_of(st.sampled_from(SUBS), _SCALARS)),
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
