"""The fast form parser against the standard library's parse_qsl, its oracle."""

from urllib.parse import parse_qsl, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.form import parse_form

# Bytes a form body is made of, with the awkward ones over-represented.
_PIECES = st.sampled_from(
    [b"a", b"Z", b"0", b"=", b"&", b"+", b"%", b"%2", b"%2B", b"%2b", b"%3D", b"%26", b"%C3",
     b"%A9", b"%C3%A9", b"%00", b"%01", b"\x00", b"\x01", b"\xc3\xa9", b"\xa9", b"\xff", b" ",
     b"%zz", b"%%", b"\xe2\x82\xac", b"%E2%82", b"\n"]
)  # fmt: skip


def _oracle(body: bytes) -> list[tuple[str, str]] | type[Exception]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:
        return UnicodeDecodeError if isinstance(exc, UnicodeDecodeError) else ValueError


def _ours(body: bytes) -> list[tuple[str, str]] | type[Exception]:
    try:
        return parse_form(body)
    except ValueError as exc:
        return UnicodeDecodeError if isinstance(exc, UnicodeDecodeError) else ValueError


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=12).map(b"".join))
def test_parse_form_agrees_with_parse_qsl_on_any_bytes(body: bytes) -> None:
    assert _ours(body) == _oracle(body)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=8))
def test_parse_form_round_trips_encoded_parameters(params: list[tuple[str, str]]) -> None:
    body = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in params).encode()
    assert parse_form(body) == params


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", []),
        (b"a=", [("a", "")]),
        (b"a=b=c", [("a", "b=c")]),
        (b"To=%2B1415&To=%2B1628", [("To", "+1415"), ("To", "+1628")]),
        (b"T=Tue%2C+31+Aug+2010+20%3A36%3A29+%2B0000", [("T", "Tue, 31 Aug 2010 20:36:29 +0000")]),
    ],
)
def test_parse_form_examples(body: bytes, expected: list[tuple[str, str]]) -> None:
    assert parse_form(body) == expected


@pytest.mark.parametrize("body", [b"a", b"a=1&", b"a=1&&b=2", b"%C3=1", b"a=\xff"])
def test_parse_form_refuses_what_parse_qsl_refuses(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - parse_qsl's own error
        parse_form(body)
