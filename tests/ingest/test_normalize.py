"""Twilio's RFC 2822 timestamps: the fast parser against email.utils, its oracle."""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.normalize import raw_params, status_callback_envelope, twilio_timestamp

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _flagged_or_parsed(value: str) -> tuple[str | None, list[str]]:
    """What the envelope says of ``value`` as a status callback's Timestamp."""
    params = [
        ("AccountSid", "AC1"),
        ("CallSid", "CA1"),
        ("CallStatus", "ringing"),
        ("Timestamp", value),
    ]
    envelope = status_callback_envelope(
        params, body=b"", idempotency_token=None, parent_account_sid=None
    )
    return envelope.fields["timestamp"], envelope.fields["flags"]


def _email_utils(value: str) -> str | None:
    from email.utils import parsedate_to_datetime

    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


@settings(max_examples=2000, deadline=None)
@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))
def test_twilio_form_parses_as_email_utils_does(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    value = moment.strftime("%a, %d %b %Y %H:%M:%S +0000")
    assert twilio_timestamp(value) == _email_utils(value) == moment.replace(tzinfo=UTC).isoformat()


_PIECES = st.sampled_from(
    [*_DAYS, *_MONTHS, ", ", " ", "1", "01", "31", "29", "30", "2010", "1999", "20", ":", "36",
     "60", "24", "99", "+0000", "-0000", "+0200", "GMT", "Feb", "Foo", "٣", "\n"]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_fast_path_never_disagrees_with_email_utils(value: str) -> None:
    fast = twilio_timestamp(value)
    assert fast is None or fast == _email_utils(value)


@given(
    st.sampled_from(_DAYS),
    st.integers(1, 31),
    st.sampled_from(_MONTHS),
    st.integers(1900, 2100),
    st.integers(0, 60),
)
def test_envelope_timestamp_matches_email_utils(
    day: str, date: int, month: str, year: int, second: int
) -> None:
    value = f"{day}, {date:02d} {month} {year} 10:05:{second:02d} +0000"
    expected = _email_utils(value)
    assert _flagged_or_parsed(value) == (
        expected,
        [] if expected is not None else ["unparsable_timestamp"],
    )


def test_other_offsets_and_forms_go_through_email_utils() -> None:
    assert twilio_timestamp("Tue, 31 Aug 2010 22:36:29 +0200") is None
    assert _flagged_or_parsed("Tue, 31 Aug 2010 22:36:29 +0200") == (
        "2010-08-31T20:36:29+00:00",
        [],
    )
    assert _flagged_or_parsed("31 Aug 2010 20:36:29 GMT")[0] == "2010-08-31T20:36:29+00:00"
    assert _flagged_or_parsed("yesterday") == (None, ["unparsable_timestamp"])
    parsed = _flagged_or_parsed("Tue, 1 Aug 2010 20:36:29 -0100")[0]
    assert parsed is not None
    assert datetime.fromisoformat(parsed) == datetime(2010, 8, 1, 21, 36, 29, tzinfo=UTC)


def test_repeated_parameters_keep_every_value() -> None:
    assert raw_params([("To", "a"), ("From", "b"), ("To", "c")]) == {"To": ["a", "c"], "From": "b"}
    assert raw_params([("To", "a"), ("From", "b")]) == {"To": "a", "From": "b"}
