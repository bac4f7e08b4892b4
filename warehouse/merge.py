"""Merging the facts of several processor states of one call into its ``calls`` row.

The processor forgets a call past its dedupe horizon; an event for it after that (a Call
resource with the price, a complete Insights summary: Twilio fills these in late) opens a new
state whose fact versions count from 1 again, marked with a later ``opened_at``. So a call's
facts form states, each known by its highest version, and the row is a function of that set:

- the sink keeps the highest version of each state (:mod:`warehouse.upsert`);
- :func:`fold_states`: the row, the states merged one into the next in ``opened_at`` order
  (:func:`merge_call`); ``merged`` when there is more than one.

Whatever order the facts arrive in (within a batch, across batches, replayed, duplicated, with
an earlier state's fact after a later state's), the row is the fold of the same states. The
sink keeps the states of the calls that have more than one in the ``call_states`` table.

Guarantees of the fold: the merge keeps a terminal status over a later state's ``unknown``
(closed by the processor's timeout: it never saw the terminal callback); a later state's
non-null fields fill in or update the row's (price, Insights fields, queue time); the more
complete Insights summary wins whichever state has it.

A row merged before ``call_states`` existed (migration 0015) was copied there as one state: a
newer version of its latest state replaces that copy, and what it had merged from earlier
states is then lost unless the new version carries it too.
"""

from typing import Any

__all__ = ["fold_states", "merge_call", "needs_merge"]

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

_EITHER = ("answered", "trunk_cps_rejection", "late", "timestamp_in_future")
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


def fold_states(states: list[Row]) -> Row:
    """The ``calls`` row of a call whose states (the highest fact of each) are ``states``, in
    ``opened_at`` order."""
    row = dict(states[0])
    for state in states[1:]:
        row = merge_call(row, state)
    row["merged"] = len(states) > 1
    return row
