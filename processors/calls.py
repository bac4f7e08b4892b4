"""One call's merged state: status callbacks, Call resources, Insights summaries, debugger events.

Guarantees (each merge is a pure function of the set of events seen, not of their order):

- A duplicate event (same envelope id) changes nothing.
- The terminal status is the one of the terminal callback with the highest SequenceNumber; once
  a call is terminal no open status (a late ``ringing``) changes it.
- Open statuses only move forward (queued < initiated < ringing < in-progress).
- Answered: ``in-progress`` seen, or ``completed`` with CallDuration > 0, whatever the order.
- Creation time: the Call resource's ``date_created``, else Insights ``created_time``, else the
  Timestamp of the callback with the lowest SequenceNumber.
- Queue time: the Call resource's, else the Insights summary's.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from processors import vocabulary as vocab

__all__ = ["CPS_REJECTION_CODES", "SHORT_CALL_S", "CallState", "Contribution", "iso"]

SHORT_CALL_S: Final = 12
CPS_REJECTION_CODES: Final = frozenset({"32001", "32012"})

Doc = Mapping[str, Any]
"""A decoded envelope: its header (id, type, account_sid, ...) and fields, flat, as on the wire."""

Contribution = tuple[Any, ...]
"""What a call adds to one window, by kind: see :meth:`CallState.contributions`."""


def iso(epoch_s: int | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2026-11-26T10:05:00+00:00``)."""
    if epoch_s is None:
        return None
    return _iso(epoch_s)


@lru_cache(maxsize=65536)
def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


_epoch = vocab.epoch


def _int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _cost(value: object) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(abs(Decimal(str(value))))
    except InvalidOperation:
        return None


@dataclass(slots=True)
class CallState:
    """Everything known about one call so far; see the module docstring for the merge rules."""

    call_sid: str
    account_sid: str
    parent_account_sid: str | None = None
    seen: set[str] = field(default_factory=set)
    open_status: str | None = None
    terminal: tuple[int, str, str] | None = None  # (sequence, envelope id, status)
    terminal_at: int | None = None
    terminal_fields: dict[str, Any] = field(default_factory=dict)
    in_progress_at: int | None = None
    first_callback: tuple[int, str, int] | None = None  # (sequence, id, time)
    direction: str | None = None
    group: str = "outbound"  # the direction group; outbound until a direction is known
    from_: str | None = None
    to: str | None = None
    stir_verstat: str | None = None
    parent_call_sid: str | None = None
    resource: dict[str, Any] = field(default_factory=dict)
    insights: dict[str, Any] = field(default_factory=dict)
    rejected_at: int | None = None  # earliest debugger 32001/32012 event time
    closed_at: int | None = None  # set when closed by timeout
    last_event_at: int = 0
    late: bool = False
    timer_due: int | None = None  # the call's pending timer (timeout or eviction)
    version: int = 0
    signature: tuple[Any, ...] = ()
    applied: dict[tuple[str, tuple[str, str, int]], Contribution] = field(default_factory=dict)

    # -- merging ---------------------------------------------------------------------------

    def merge(self, doc: Doc, event_at: int | None) -> bool | None:
        """Fold one decoded envelope in: None for a duplicate, else whether what the call adds
        to windows (or its fact) may have changed."""
        event_id = doc["id"]
        if event_id in self.seen:
            return None
        self.seen.add(event_id)
        if self.parent_account_sid is None:
            self.parent_account_sid = doc.get("parent_account_sid")
        if event_at is not None and event_at > self.last_event_at:
            self.last_event_at = event_at
        merge = _MERGERS.get(doc["type"])
        return merge is not None and merge(self, doc, event_at)

    @property
    def finished(self) -> bool:
        return self.terminal is not None or self.closed_at is not None

    def _callback(self, f: Doc, event_at: int | None) -> bool:
        status = f.get("call_status") or ""
        seq = f.get("sequence_number")
        order = (seq if isinstance(seq, int) else -1, f["id"])
        direction_known = self.direction is not None
        # What the call adds at its creation can change while it is open; what it adds at
        # its end only matters once it is finished (the terminal callback recomputes it all).
        end_changed = self._identity(
            f.get("direction"), f.get("from"), f.get("to"), f.get("parent_call_sid")
        )
        created_changed = not direction_known and self.direction is not None
        stir = f.get("stir_verstat")
        if stir and stir != self.stir_verstat:
            self.stir_verstat = str(stir)
            end_changed = True
        if event_at is not None and (
            self.first_callback is None or order < self.first_callback[:2]
        ):
            self.first_callback = (order[0], order[1], event_at)
            created_changed = True
        if status in vocab.TERMINAL_STATUSES:
            if self.terminal is None or order > self.terminal[:2]:
                self.terminal = (order[0], order[1], status)
                self.terminal_at = event_at
                self.terminal_fields = {
                    "call_duration": _int(f.get("call_duration")),
                    "sip_response_code": _int(f.get("sip_response_code")),
                }
                return True
        elif status == vocab.ANSWERED_STATUS:
            if event_at is not None and (
                self.in_progress_at is None or event_at < self.in_progress_at
            ):
                self.in_progress_at = event_at
                end_changed = True
            elif self.in_progress_at is None:
                self.in_progress_at = -1
                end_changed = True
        self._open(status)
        return created_changed or (end_changed and self.finished)

    def _open(self, status: str | None) -> None:
        rank = vocab.STATUS_RANK.get(status or "")
        if rank is None:
            return
        if self.open_status is None or rank > vocab.STATUS_RANK[self.open_status]:
            self.open_status = status

    def _identity(self, direction: object, from_: object, to: object, parent: object) -> bool:
        changed = False
        if self.direction is None and direction:
            self.direction = vocab.direction(str(direction))
            self.group = vocab.direction_group(self.direction or "")
            changed = True
        if self.from_ is None and from_:
            self.from_ = str(from_)
            changed = True
        if self.to is None and to:
            self.to = str(to)
        if self.parent_call_sid is None and parent:
            self.parent_call_sid = str(parent)
        return changed

    def _resource(self, f: Doc, event_at: int | None) -> bool:
        self._identity(f.get("direction"), f.get("from"), f.get("to"), f.get("parent_call_sid"))
        rank = (*_resource_rank(f), f["id"])
        if not self.resource or rank >= self.resource["_rank"]:
            self.resource = {
                "_rank": rank,
                "status": vocab.call_resource_status(f.get("status")),
                "queue_time_ms": _int(f.get("queue_time_ms")),
                "duration_s": _int(f.get("duration_s")),
                "cost": _cost(f.get("cost")),
                "price_unit": f.get("price_unit"),
                "date_created": _epoch(f.get("date_created")),
                "trunk_sid": f.get("trunk_sid"),
            }
        return True

    def _insights(self, f: Doc, event_at: int | None) -> bool:
        state = f.get("processing_state")
        rank = (1 if state == "complete" else 0, f["id"])
        if self.insights and rank <= self.insights["_rank"]:
            return False
        self._identity(f.get("direction"), f.get("from"), f.get("to"), None)
        self.insights = {
            "_rank": rank,
            "processing_state": state,
            "call_state": vocab.insights_state(f.get("call_state")),
            "created_time": _epoch(f.get("created_time")),
            "queue_time_ms": _int(f.get("queue_time_ms")),
            "pdd_ms": _int(f.get("pdd_ms")),
            "last_sip_response_num": _int(f.get("last_sip_response_num")),
            "disconnected_by": f.get("disconnected_by"),
            "call_type": f.get("call_type"),
            "answered_by": f.get("answered_by"),
            "duration_s": _int(f.get("duration_s")),
            "tags": sorted(str(t) for t in f.get("tags") or []),
        }
        return True

    def _debugger(self, f: Doc, event_at: int | None) -> bool:
        code = f.get("error_code")
        if str(code) not in CPS_REJECTION_CODES or event_at is None:
            return False
        if self.rejected_at is None or event_at < self.rejected_at:
            self.rejected_at = event_at
            return True
        return False

    # -- derived views -----------------------------------------------------------------------

    @property
    def terminal_status(self) -> str | None:
        return None if self.terminal is None else self.terminal[2]

    @property
    def answered(self) -> bool:
        if self.in_progress_at is not None:
            return True
        duration = self.terminal_fields.get("call_duration")
        return self.terminal_status == "completed" and (duration or 0) > 0

    @property
    def created_at(self) -> int | None:
        created = self.resource.get("date_created") or self.insights.get("created_time")
        if created is not None:
            return int(created)
        return None if self.first_callback is None else self.first_callback[2]

    @property
    def queue_time_ms(self) -> int | None:
        queue = self.resource.get("queue_time_ms")
        return queue if queue is not None else self.insights.get("queue_time_ms")

    @property
    def trunk_cps_rejection(self) -> bool:
        if self.group != "outbound":
            return False
        return self.rejected_at is not None or self.terminal_fields.get("sip_response_code") == 503

    def contributions(self) -> dict[tuple[str, tuple[str, str, int]], Contribution]:
        """What this call adds to windows, keyed by (kind, window key); window keys are
        (account_sid, direction group, window start in epoch seconds)."""
        out: dict[tuple[str, tuple[str, str, int]], Contribution] = {}
        group = self.group
        outbound = group == "outbound"
        if self.terminal is not None and self.terminal_at is not None:
            duration = self.terminal_fields.get("call_duration") or 0
            answered = self.answered
            out[("end", self._key(group, self.terminal_at))] = (
                self.terminal[2],
                answered,
                duration if answered else 0,
                answered and duration <= SHORT_CALL_S,
                self.trunk_cps_rejection,
                self.from_ if outbound else None,
                None if outbound else vocab.attestation(self.stir_verstat),
            )
        elif self.closed_at is not None:
            out[("unknown", self._key(group, self.closed_at))] = (self.trunk_cps_rejection,)
        elif self.trunk_cps_rejection and self.rejected_at is not None:
            out[("rejected", self._key(group, self.rejected_at))] = (True,)
        created = self.created_at
        if created is not None:
            queue = self.queue_time_ms if outbound else None
            out[("created", self._key(group, created))] = (created % 60, queue)
        return out

    def _key(self, group: str, at: int) -> tuple[str, str, int]:
        return (self.account_sid, group, at - at % 60)

    def fact_signature(self) -> tuple[Any, ...]:
        """What a new fact version is emitted for: nothing while the call is open; once it is
        terminal (or closed by timeout), any change of what the facts and the health metrics
        say about it (status, answered and when, duration, SIP code, cost, queue time, creation
        time, direction, From, StirVerstat, Insights state, rejection, lateness, and which Call
        resource and Insights summary the fact shows), so that the last version holds
        everything known whatever order the events came in (an ``in-progress`` callback after
        ``completed`` still brings ``answered_at``)."""
        if not self.finished:
            return ()
        return (
            self.terminal_status or "unknown",
            self.answered,
            self.terminal_fields.get("call_duration"),
            self.resource.get("cost"),
            self.queue_time_ms,
            self.terminal_fields.get("sip_response_code"),
            self.insights.get("processing_state"),
            self.trunk_cps_rejection,
            self.created_at,
            self.from_,
            self.stir_verstat,
            self.late,
            self.in_progress_at,
            self.direction,
            self.resource["_rank"][-1] if self.resource else None,
            self.insights["_rank"][-1] if self.insights else None,
        )

    def fact(self) -> dict[str, Any]:
        """The ``voicepulse.calls`` fields (:class:`voicepulse.messages.CallFact`)."""
        status = self.terminal_status or (
            "unknown" if self.closed_at is not None else self.open_status or "unknown"
        )
        duration = self.terminal_fields.get("call_duration")
        if duration is None:
            duration = self.resource.get("duration_s")
        answered = self.answered
        ins = self.insights
        res = self.resource
        return {
            "call_sid": self.call_sid,
            "version": self.version,
            "status": status,
            "terminal": self.terminal is not None,
            "answered": answered,
            "direction": self.direction or "",
            "direction_group": self.group,
            "from": self.from_,
            "to": self.to,
            "created_at": iso(self.created_at),
            "answered_at": iso(self.in_progress_at)
            if self.in_progress_at and self.in_progress_at > 0
            else None,
            "ended_at": iso(self.terminal_at),
            "call_duration_s": duration,
            "billed_minutes": -(-duration // 60) if answered and duration is not None else None,
            "queue_time_ms": self.queue_time_ms,
            "pdd_ms": ins.get("pdd_ms"),
            "cost": res.get("cost"),
            "price_unit": res.get("price_unit"),
            "call_type": ins.get("call_type"),
            "sip_response_code": self.terminal_fields.get("sip_response_code"),
            "last_sip_response_num": ins.get("last_sip_response_num"),
            "disconnected_by": ins.get("disconnected_by"),
            "stir_verstat": self.stir_verstat,
            "parent_call_sid": self.parent_call_sid,
            "trunk_sid": res.get("trunk_sid"),
            "insights_state": ins.get("processing_state"),
            "tags": list(ins.get("tags") or []),
            "closed_by_timeout": self.closed_at is not None and self.terminal is None,
            "late": self.late,
            "attestation": vocab.attestation(self.stir_verstat),
            "trunk_cps_rejection": self.trunk_cps_rejection,
            "answered_by": ins.get("answered_by"),
            "last_event_at": iso(self.last_event_at) if self.last_event_at else None,
        }


def _resource_rank(fields: Any) -> tuple[int, int, str]:
    # A later view of the resource wins: rated beats unrated, ended beats running.
    rated = 1 if fields.get("cost") not in (None, "") else 0
    ended = 1 if fields.get("end_time") else 0
    return (rated, ended, str(fields.get("status") or ""))


_MERGERS: Final = {
    "call-status": CallState._callback,
    "call-resource": CallState._resource,
    "insights-summary": CallState._insights,
    "debugger-event": CallState._debugger,
}
