"""Call resources (Api v2010 ``Calls.json``) from the ISV's dialer into ``call-resource``
envelopes.

The normalisation is the pollers' (:func:`ingest.pollers.envelopes.call_envelope`), so that a
Call resource reads the same whether the dialer forwarded it or a poller fetched it, and the
same resource JSON gets the same dedupe id; only ``origin`` and ``source`` say where it came
from.
"""

from collections.abc import Mapping
from typing import Any, Final, Literal

from msgspec.structs import replace

from ingest.pollers.envelopes import call_envelope
from voicepulse.envelope import Envelope

__all__ = ["DIALER_SOURCE", "call_resource_envelope"]

DIALER_SOURCE: Final = "dialer"


def call_resource_envelope(
    resource: Mapping[str, Any], *, parent_account_sid: str | None
) -> Envelope:
    """The envelope for one Call resource (``sid`` and ``account_sid`` present) from the dialer."""
    envelope = call_envelope(dict(resource), parent_account_sid)
    origin: Literal["dialer"] = "dialer"
    return replace(envelope, source=DIALER_SOURCE, fields={**envelope.fields, "origin": origin})
