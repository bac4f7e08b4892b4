"""A Rejection travels like any exception: it takes notes and passes through context managers."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ingest.rejection import Rejection


@contextmanager
def _passing_through() -> Iterator[None]:
    yield


def test_a_rejection_takes_a_note() -> None:
    rejection = Rejection(403, "bad_signature", "AC123")
    rejection.add_note("while serving /twilio/status")
    assert rejection.__notes__ == ["while serving /twilio/status"]


def test_a_rejection_passes_through_a_context_manager_unchanged() -> None:
    with pytest.raises(Rejection) as caught, _passing_through():
        raise Rejection(413, "body_too_large", "over 65536 bytes")
    assert (caught.value.status, caught.value.reason) == (413, "body_too_large")
    assert caught.value.detail == "over 65536 bytes"
