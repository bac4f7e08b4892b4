"""Which envelope type goes to which table, keyed how, and which copy of a row wins.

Each :class:`TableSpec` is the whole description of one table for the sink; the columns and
their types come from the lake itself (the migrations), so there is one definition of each.

Which row wins (the guarantees the upsert gives, whatever the order of arrival):

- ``newer`` empty: the first row stored for a key stays; duplicates are ignored.
- ``newer`` given: an incoming row replaces the stored one only when its ``newer`` columns
  compare greater (lexicographically), so an older version arriving later changes nothing.
- ``fold`` given: a key's rows come in states (``state_key``: calls, one per processor state
  of the call); the highest of each state is kept, and the row is the fold of the key's states
  (:mod:`warehouse.merge`), whatever order they came in. The states of a key that has more
  than one are kept in ``states_table``.
- ``window``: the stored row of a key is looked up only among rows whose ``window`` column lies
  within ``slack`` of the batch's own values. That is sound only if every copy of a key carries
  nearly the same value there, whatever the order of arrival; why each table's column does is
  written beside ``_CALL_SLACK`` below.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, get_type_hints

from voicepulse import topics
from voicepulse.envelope import Envelope
from voicepulse.messages import HEALTH_RATIOS, HealthWindow
from warehouse import fields as f
from warehouse.merge import fold_states

__all__ = ["BY_TYPE", "SINK_TOPICS", "TABLES", "TableSpec"]

# Where the stored copy of a key can be, relative to an incoming copy (every version of a call,
# every copy of a resource, summary or event), so that the lookup finds it.
#
# calls: the window column is ``last_event_at``, the latest time among the call's own events
# (status callback Timestamps, the Call resource's and Insights' end or creation times, debugger
# Timestamps), never a receive time. Versions are emitted once the call is finished, and from
# then on every source names the same end: the terminal callback's Timestamp and the resource's
# and summary's end_time agree to the second, and a late price or a complete summary arriving
# hours or days later carries the call's own end_time, not its arrival time; a debugger event
# about the call comes within minutes. So copies of a finished call agree within
# ``_CALL_SLACK``, with two exceptions that the lookup widens for:
# - the latest event only grows, and an earlier version's last event is never before the call's
#   creation time as a later version gives it (``call_time``: the resource's date_created, else
#   the first callback's Timestamp), so the lookup reaches back to the batch's earliest
#   ``call_time``; this covers a call that waited hours in the CPS queue (Twilio queues up to
#   24 hours), whose first version is dated by its first callback and the next by date_created;
# - a version closed by the processor's timeout (``closed_by_timeout``: no terminal callback
#   yet) has the last event before it; the terminal callback that may follow is at most
#   Twilio's 4-hour call cap later, so such a row reaches ``_TIMEOUT_SLACK`` forward.
# ``call_time`` alone would not do as the window: it moves by the queue time, and an old version
# replayed after a newer one would then miss it and be stored beside it. A fact without any
# timed event (none in practice) is looked up by its call time, which is its receive time.
# call_resources and insights_summaries: the window is Twilio's date_created / created_time,
# which never changes for a call; a copy without it (a partial dialer forward) falls back to
# start_time or its receive time, seconds from date_created for a dialer's create response.
# Events: Twilio's own Timestamp (a retry carries the same one), else the receive time, which a
# retry or a replay from the spool keeps (it is in the envelope), so copies agree exactly.
_CALL_SLACK = timedelta(hours=1)
_TIMEOUT_SLACK = timedelta(hours=6)
_RESOURCE_SLACK = timedelta(hours=6)
_EVENT_SLACK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one envelope type becomes one row of one table."""

    table: str
    envelope_type: str
    key: tuple[str, ...]
    to_row: Callable[[Envelope], dict[str, Any]]
    newer: tuple[str, ...] = ()
    window: str | None = None
    slack: timedelta = timedelta(0)
    earliest: tuple[str, ...] = ()
    """Columns of an incoming row: no stored copy's window lies before the earliest of them."""
    cut_short: str | None = None
    """A boolean column: such a row's stored copy may lie up to ``cut_short_slack`` after it."""
    cut_short_slack: timedelta = timedelta(0)
    fold: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    """Given a key's states (the highest row of each ``state_key``, in order), its row.
    ``merge_when`` is an SQL condition over the stored ``t`` and the incoming ``b`` under which
    the key has several states (so only those stored rows and states need reading); outside
    it the newer row of the one state simply replaces the stored one."""
    state_key: str | None = None
    states_table: str | None = None
    merge_when: str | None = None
    merge_reads: tuple[str, ...] = ()
    """Stored columns ``merge_when`` reads besides the key and ``newer``."""


def _header(envelope: Envelope) -> dict[str, Any]:
    return {
        "account_sid": envelope.account_sid,
        "parent_account_sid": envelope.parent_account_sid,
        "received_at": f.utc_naive(envelope.received_at),
    }


def _first_time(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if row.get(name) is not None:
            return row[name]
    return None


_NEVER = datetime(1970, 1, 1)
"""``opened_at`` of a fact from before the field existed: its state was opened before any other."""


def _call_fact(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    row = _header(envelope) | {
        "call_sid": f.required(f.text(x, "call_sid"), "call_sid"),
        "version": f.required(f.integer(x, "version"), "version"),
        "status": f.required(f.text(x, "status"), "status"),
        "terminal": f.required(f.boolean(x, "terminal"), "terminal"),
        "answered": f.required(f.boolean(x, "answered"), "answered"),
        "direction": f.text(x, "direction"),
        "direction_group": f.text(x, "direction_group"),
        "from_number": f.text(x, "from"),
        "to_number": f.text(x, "to"),
        "created_at": f.timestamp(x, "created_at"),
        "answered_at": f.timestamp(x, "answered_at"),
        "ended_at": f.timestamp(x, "ended_at"),
        "last_event_at": f.timestamp(x, "last_event_at"),
        "call_duration_s": f.integer(x, "call_duration_s"),
        "billed_minutes": f.integer(x, "billed_minutes"),
        "queue_time_ms": f.integer(x, "queue_time_ms"),
        "pdd_ms": f.integer(x, "pdd_ms"),
        "cost": f.money(x, "cost"),
        "price_unit": f.text(x, "price_unit"),
        "call_type": f.text(x, "call_type"),
        "sip_response_code": f.integer(x, "sip_response_code"),
        "last_sip_response_num": f.integer(x, "last_sip_response_num"),
        "disconnected_by": f.text(x, "disconnected_by"),
        "stir_verstat": f.text(x, "stir_verstat"),
        "attestation": f.text(x, "attestation"),
        "answered_by": f.text(x, "answered_by"),
        "parent_call_sid": f.text(x, "parent_call_sid"),
        "trunk_sid": f.text(x, "trunk_sid"),
        "insights_state": f.text(x, "insights_state"),
        "tags": f.text_list(x, "tags"),
        "closed_by_timeout": f.boolean(x, "closed_by_timeout"),
        "trunk_cps_rejection": f.boolean(x, "trunk_cps_rejection"),
        "late": f.boolean(x, "late"),
    }
    row["opened_at"] = f.timestamp(x, "opened_at") or _NEVER
    row["merged"] = False
    row["timestamp_in_future"] = f.boolean(x, "timestamp_in_future") is True  # absent: older
    row["call_time"] = _first_time(row, "created_at", "answered_at", "ended_at", "received_at")
    # Every fact of a call with a timed event has it; the rest are looked up by their call time.
    row["last_event_at"] = row["last_event_at"] or row["call_time"]
    return row


def _call_status(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    row = _header(envelope) | {
        "event_id": envelope.id,
        "call_sid": f.required(f.text(x, "call_sid"), "call_sid"),
        "call_status": f.required(f.text(x, "call_status"), "call_status"),
        "direction": f.text(x, "direction"),
        "sequence_number": f.integer(x, "sequence_number"),
        "timestamp": f.lenient_timestamp(x, "timestamp"),
        "call_duration": f.integer(x, "call_duration"),
        "sip_response_code": f.integer(x, "sip_response_code"),
        "stir_verstat": f.text(x, "stir_verstat"),
        "parent_call_sid": f.text(x, "parent_call_sid"),
        "flags": f.text_list(x, "flags"),
        "raw": f.json_text(envelope.raw),
    }
    row["event_time"] = _first_time(row, "timestamp", "received_at")
    return row


def _debugger(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    level = f.text(x, "level")
    row = _header(envelope) | {
        "sid": f.required(f.text(x, "sid"), "sid"),
        "level": level.lower() if level else None,
        "error_code": f.text(x, "error_code"),
        "resource_sid": f.text(x, "resource_sid"),
        "service_sid": f.text(x, "service_sid"),
        "more_info": f.text(x, "more_info"),
        "payload": f.json_text(x.get("payload")),
        "flags": f.text_list(x, "flags"),
    }
    row["event_time"] = f.lenient_timestamp(x, "timestamp") or row["received_at"]
    return row


def _alert(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    row = _header(envelope) | {
        "alert_id": envelope.id,
        "rule": f.text(x, "rule"),
        "state": f.required(f.text(x, "state"), "state"),
        "severity": f.text(x, "severity"),
        "direction_group": f.text(x, "direction_group"),
        "window_start": f.timestamp(x, "window_start"),
        "value": f.number(x, "value"),
        "threshold": f.number(x, "threshold"),
        "message": f.text(x, "message"),
        "detail": f.json_text(dict(x)),
    }
    row["changed_at"] = f.timestamp(x, "changed_at") or row["received_at"]
    return row


def _usage(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    return _header(envelope) | {
        "category": f.required(f.text(x, "category"), "category"),
        "start_date": f.required(f.day(x, "start_date"), "start_date"),
        "end_date": f.day(x, "end_date"),
        "count": f.integer(x, "count"),
        "usage": f.money(x, "usage"),
        "usage_unit": f.text(x, "usage_unit"),
        "cost": f.money(x, "cost"),
        "price_unit": f.text(x, "price_unit"),
        "description": f.text(x, "description"),
    }


def _call_resource(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    row = _header(envelope) | {
        "call_sid": f.required(f.text(x, "call_sid"), "call_sid"),
        "status": f.text(x, "status"),
        "direction": f.text(x, "direction"),
        "from_number": f.text(x, "from"),
        "to_number": f.text(x, "to"),
        "queue_time_ms": f.integer(x, "queue_time_ms"),
        "duration_s": f.integer(x, "duration_s"),
        "cost": f.money(x, "cost"),
        "price_unit": f.text(x, "price_unit"),
        "date_created": f.timestamp(x, "date_created"),
        "start_time": f.timestamp(x, "start_time"),
        "end_time": f.timestamp(x, "end_time"),
        "parent_call_sid": f.text(x, "parent_call_sid"),
        "trunk_sid": f.text(x, "trunk_sid"),
        "origin": f.text(x, "origin"),
    }
    row["rated"] = row["cost"] is not None
    row["call_time"] = _first_time(row, "date_created", "start_time", "received_at")
    return row


_STATE_RANK = {"partial": 1, "complete": 2}


def _insights(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    state = f.required(f.text(x, "processing_state"), "processing_state")
    if state not in _STATE_RANK:
        raise ValueError(f"processing_state is not partial or complete: {state!r}")
    row = _header(envelope) | {
        "call_sid": f.required(f.text(x, "call_sid"), "call_sid"),
        "processing_state": state,
        "state_rank": _STATE_RANK[state],
        "call_type": f.text(x, "call_type"),
        "call_state": f.text(x, "call_state"),
        "direction": f.text(x, "direction"),
        "answered_by": f.text(x, "answered_by"),
        "created_time": f.timestamp(x, "created_time"),
        "start_time": f.timestamp(x, "start_time"),
        "end_time": f.timestamp(x, "end_time"),
        "duration_s": f.integer(x, "duration_s"),
        "connect_duration_s": f.integer(x, "connect_duration_s"),
        "queue_time_ms": f.integer(x, "queue_time_ms"),
        "pdd_ms": f.integer(x, "pdd_ms"),
        "last_sip_response_num": f.integer(x, "last_sip_response_num"),
        "disconnected_by": f.text(x, "disconnected_by"),
        "from_country": f.text(x, "from_country"),
        "to_country": f.text(x, "to_country"),
        "tags": f.text_list(x, "tags"),
    }
    row["call_time"] = _first_time(row, "created_time", "start_time", "received_at")
    return row


# The health_minute columns: a HealthWindow's fields but its ratios (recomputed from the sums by
# the views), each read by its declared type; the ones read apart are named in _health.
_HEALTH_TYPES: Final = {
    name: kind for name, kind in get_type_hints(HealthWindow).items() if name not in HEALTH_RATIOS
}
_HEALTH_APART: Final = frozenset({"attempts", "answered", "queue_time_hist"})
_HEALTH_COUNTS: Final = tuple(
    name
    for name, kind in _HEALTH_TYPES.items()
    if kind in (int, int | None) and name not in _HEALTH_APART
)
_HEALTH_MAPS: Final = tuple(
    name
    for name, kind in _HEALTH_TYPES.items()
    if kind == dict[str, int] and name not in _HEALTH_APART
)


def _health(envelope: Envelope) -> dict[str, Any]:
    x = envelope.fields
    row = _header(envelope) | {
        "direction_group": f.required(f.text(x, "direction_group"), "direction_group"),
        "window_start": f.required(f.timestamp(x, "window_start"), "window_start"),
        "window_end": f.timestamp(x, "window_end"),
        "attempts": f.required(f.integer(x, "attempts"), "attempts"),
        "answered": f.required(f.integer(x, "answered"), "answered"),
        "cps_per_second": f.int_list(x, "cps_per_second"),
        "cps_limit": f.number(x, "cps_limit"),
        "queue_time_hist": f.int_counts(x, "queue_time_hist"),
    }
    row |= {name: f.integer(x, name) for name in _HEALTH_COUNTS}
    row |= {name: f.str_counts(x, name) for name in _HEALTH_MAPS}
    row["closed"] = f.boolean(x, "closed") is True  # absent (an older processor): not final
    row["source"] = "stream"  # backfill-health writes 'batch' rows (warehouse/backfill.py)
    row["updated_at"] = row.pop("received_at")
    return row


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "calls",
        "call-fact",
        ("call_sid",),
        _call_fact,
        newer=("opened_at", "version"),
        window="last_event_at",
        slack=_CALL_SLACK,
        earliest=("call_time",),
        cut_short="closed_by_timeout",
        cut_short_slack=_TIMEOUT_SLACK,
        fold=fold_states,
        state_key="opened_at",
        states_table="call_states",
        merge_when="t.merged OR b.merged OR t.opened_at <> b.opened_at",
        merge_reads=("merged",),
    ),
    TableSpec(
        "call_events",
        "call-status",
        ("event_id",),
        _call_status,
        window="event_time",
        slack=_EVENT_SLACK,
    ),
    TableSpec(
        "debugger_events",
        "debugger-event",
        ("sid",),
        _debugger,
        window="event_time",
        slack=_EVENT_SLACK,
    ),
    TableSpec("alerts", "alert", ("alert_id",), _alert, window="changed_at", slack=_EVENT_SLACK),
    TableSpec(
        "usage_records",
        "usage-record",
        ("account_sid", "category", "start_date"),
        _usage,
        newer=("received_at",),
        window="start_date",
    ),
    TableSpec(
        "call_resources",
        "call-resource",
        ("call_sid",),
        _call_resource,
        newer=("rated", "received_at"),
        window="call_time",
        slack=_RESOURCE_SLACK,
    ),
    TableSpec(
        "insights_summaries",
        "insights-summary",
        ("call_sid",),
        _insights,
        newer=("state_rank", "received_at"),
        window="call_time",
        slack=_RESOURCE_SLACK,
    ),
    TableSpec(
        "health_minute",
        "health-minute",
        ("account_sid", "direction_group", "window_start"),
        _health,
        newer=("updated_at",),
        window="window_start",
    ),
)

BY_TYPE: Mapping[str, TableSpec] = {spec.envelope_type: spec for spec in TABLES}

SINK_TOPICS = (
    topics.CALLS,
    topics.HEALTH,
    topics.ALERTS,
    topics.CALL_STATUS,
    topics.DEBUGGER,
    topics.USAGE,
    topics.INSIGHTS,
    topics.TWILIO_CALLS,
)
