"""Merging the facts of several processor states of one call into its ``calls`` row.

The processor forgets a call past its dedupe horizon; an event for it after that (a Call
resource with the price, a complete Insights summary: Twilio fills these in late) opens a new
state whose fact versions count from 1 again, marked with a later ``opened_at``. Facts order by
(``opened_at``, version); a fact newer than the stored row:

- from the same state as a row that holds only that state: replaces it (the highest version
  wins, as it always did);
- from a later state, or onto a row that already merges several: is merged into it field by
  field (:func:`merge_call`), and the row is marked ``merged``.

Guarantees: an older or equal fact never changes the row (so a replay, from any offset, of
facts that came in order changes nothing); the merge keeps a terminal status over a later
state's ``unknown`` (closed by the processor's timeout: it never saw the terminal callback); a
later state's non-null fields fill in or update the row's (price, Insights fields, queue time).
Within one merged row a field that a later version of the same state leaves null keeps the
value of an earlier version (the processor never clears a field it has set, save in rare
cases such as a complete Insights summary missing a field the partial one had).
"""

from typing import Any

__all__ = ["merge_call", "needs_merge"]

Row = dict[str, Any]

_STATUS = ("status", "terminal", "closed_by_timeout")
"""Taken whole from the fact that says the most about the end of the call."""

_END = ("ended_at", "sip_response_code", "call_duration_s", "billed_minutes", "answered_at")
"""From the same fact as the status, else from the other."""

_INSIGHTS = (
    "pdd_ms",
    "call_type",
    "last_sip_response_num",
    "disconnected_by",
    "insights_state",
    "answered_by",
)
"""From the fact with the more complete Insights summary, else from the other."""

_INSIGHTS_RANK = {"complete": 2, "partial": 1}

_FILLED = (
    "parent_account_sid",
    "from_number",
    "to_number",
    "created_at",
    "queue_time_ms",
    "cost",
    "price_unit",
    "stir_verstat",
    "parent_call_sid",
    "trunk_sid",
)
"""The newer fact's value when it has one, else the stored one."""

_EITHER = ("answered", "trunk_cps_rejection", "late")
"""True when either says so."""


def needs_merge(stored: Row, incoming: Row) -> bool:
    """True when a newer ``incoming`` fact must be merged into ``stored`` rather than replace it."""
    return bool(stored["merged"]) or stored["opened_at"] != incoming["opened_at"]


def merge_call(stored: Row, incoming: Row) -> Row:
    """The row after ``incoming``, a newer fact of the call than ``stored`` (by
    (``opened_at``, version)); ``incoming`` itself when it simply replaces ``stored``."""
    if not needs_merge(stored, incoming):
        return incoming
    row = dict(incoming)
    ends = incoming if incoming["terminal"] or not stored["terminal"] else stored
    other = stored if ends is incoming else incoming
    for name in _STATUS:
        row[name] = ends[name]
    for name in _END:
        row[name] = _first(ends[name], other[name])
    summary, rest = incoming, stored
    if _INSIGHTS_RANK.get(stored["insights_state"], 0) > _INSIGHTS_RANK.get(
        incoming["insights_state"], 0
    ):
        summary, rest = stored, incoming
    for name in _INSIGHTS:
        row[name] = _first(summary[name], rest[name])
    row["tags"] = summary["tags"] or rest["tags"]
    for name in _FILLED:
        row[name] = _first(incoming[name], stored[name])
    for name in _EITHER:
        row[name] = bool(incoming[name]) or bool(stored[name])
    if not incoming["direction"]:  # a state that never learnt the direction
        row["direction"] = stored["direction"]
        row["direction_group"] = stored["direction_group"]
    if incoming["stir_verstat"] is None:
        row["attestation"] = stored["attestation"]
    row["last_event_at"] = max(stored["last_event_at"], incoming["last_event_at"])
    row["call_time"] = _first(
        row["created_at"], row["answered_at"], row["ended_at"], stored["call_time"]
    )
    row["merged"] = True
    return row


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None
