"""One call's merged state: status callbacks, Call resources, Insights summaries, debugger events.

Guarantees (each merge is a pure function of the set of events seen, not of their order):

- A duplicate event (same envelope id) changes nothing.
- A call ends with a terminal status callback, a terminal Call resource or a complete Insights
  summary of an ended call, whichever comes first; once it is terminal no open status (a late
  ``ringing``, an unfinished resource) changes it. Which source wins, field by field (see
  docs/metrics.md, "A call's sources"): the status and end time of the terminal callback with
  the highest SequenceNumber, else the Call resource's, else the complete summary's; the
  longest duration any of them knows (a duration seen earlier is a lower bound); the
  resource's price and queue time.
- Open statuses only move forward (queued < initiated < ringing < in-progress).
- Answered: ``in-progress`` seen, or ``completed`` with a duration > 0, an Insights
  ``answered_by`` or a connect duration > 0, whatever the order.
- Creation time: the Call resource's ``date_created``, else Insights ``created_time``, else the
  Timestamp of the callback with the lowest SequenceNumber.
- Queue time: the Call resource's, else the Insights summary's.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

import msgspec

from processors import vocabulary as vocab

__all__ = [
    "BOTH",
    "CPS_REJECTION_CODES",
    "CREATED",
    "FINAL",
    "PART_OF_KIND",
    "SHORT_CALL_S",
    "CallState",
    "Callback",
    "Contribution",
    "iso",
]

SHORT_CALL_S: Final = 12
CPS_REJECTION_CODES: Final = frozenset({"32001", "32012"})

Doc = Mapping[str, Any]
"""A decoded envelope: its header (id, type, account_sid, ...) and fields, flat, as on the wire."""


class Callback(msgspec.Struct, gc=False):
    """The fields of a ``call-status`` envelope the processor reads (the rest, ``raw``
    included, is skipped while decoding). Header fields are checked as strings; the others are
    taken as they come and read the way :data:`Doc` values are."""

    id: str
    type: str
    account_sid: str
    parent_account_sid: Any = None
    received_at: Any = None
    call_sid: Any = None
    call_status: Any = None
    direction: Any = None
    from_: Any = msgspec.field(default=None, name="from")
    to: Any = None
    sequence_number: Any = None
    timestamp: Any = None
    call_duration: Any = None
    sip_response_code: Any = None
    stir_verstat: Any = None
    parent_call_sid: Any = None


Contribution = tuple[Any, ...]
"""What a call adds to one window, by kind: see :meth:`CallState.contributions`."""

FINAL: Final = 1
"""What a call adds at its end: ``end`` (terminal), ``unknown`` (closed by timeout) or
``rejected`` (a trunk CPS rejection known before the end)."""
CREATED: Final = 2
"""What a call adds at its creation: ``created``."""
BOTH: Final = FINAL | CREATED
PART_OF_KIND: Final = {"end": FINAL, "unknown": FINAL, "rejected": FINAL, "created": CREATED}
_END: Final = 4
"""A field shown in what the call adds at its end changed: :data:`FINAL` once it is finished."""


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


_SEEN_TUPLE_MAX: Final = 16
_TERMINAL_STATUSES: Final = vocab.TERMINAL_STATUSES
_ANSWERED_STATUS: Final = vocab.ANSWERED_STATUS
_STATUS_RANK: Final = vocab.STATUS_RANK
_REST_SEQUENCE: Final = -2
"""The sequence of an end a Call resource or an Insights summary gave (callbacks have >= -1)."""
_NOT_ANSWERED_BY: Final = frozenset({None, "", "unknown"})


class CallState(msgspec.Struct, gc=False):
    """Everything known about one call so far; see the module docstring for the merge rules.

    Kept out of the cyclic garbage collector (``gc=False``): it holds only strings, numbers and
    containers of them, never a reference back to itself, so it cannot be part of a cycle and
    reference counting frees it. With many open calls this saves most of the collector's work.
    """

    call_sid: str
    account_sid: str
    parent_account_sid: str | None = None
    seen: tuple[str, ...] | set[str] = ()  # envelope ids; see :meth:`_heard`
    open_status: str | None = None
    # The call's end as every source together says it (:meth:`_settle`): (sequence, envelope
    # id, status), its time, its duration and SIP code. A Call resource's or an Insights
    # summary's end has the sequence :data:`_REST_SEQUENCE`.
    terminal: tuple[int, str, str] | None = None
    terminal_at: int | None = None
    terminal_fields: dict[str, Any] = msgspec.field(default_factory=dict)
    # The terminal callback of highest (SequenceNumber, id): (sequence, id, status, time,
    # CallDuration, SipResponseCode).
    callback_end: tuple[int, str, str, int | None, int | None, int | None] | None = None
    in_progress_at: int | None = None
    first_callback: tuple[int, str, int] | None = None  # (sequence, id, time)
    direction: str | None = None
    group: str = "outbound"  # the direction group; outbound until a direction is known
    from_: str | None = None
    to: str | None = None
    stir_verstat: str | None = None
    parent_call_sid: str | None = None
    resource: dict[str, Any] = msgspec.field(default_factory=dict)
    insights: dict[str, Any] = msgspec.field(default_factory=dict)
    rejected_at: int | None = None  # earliest debugger 32001/32012 event time
    closed_at: int | None = None  # set when closed by timeout
    last_event_at: int = 0
    heard_at: int = 0  # the shard's stream time when the call last changed (timers count from it)
    late: bool = False
    timer_due: int | None = None  # the call's pending timer (timeout or eviction)
    version: int = 0
    opened_at: int = 0  # the shard's stream time when this state was opened (see engine.py)
    signature: tuple[Any, ...] = ()
    applied: dict[tuple[str, tuple[str, str, int]], Contribution] = msgspec.field(
        default_factory=dict
    )
    timestamp_in_future: bool = False  # an event stamped ahead of its receipt (engine.py)

    # -- merging ---------------------------------------------------------------------------

    def merge(self, doc: Doc, event_at: int | None) -> int | None:
        """Fold one decoded envelope in (a status callback, a Call resource, an Insights summary
        or a debugger event): None for a duplicate, else which of what the call adds to windows
        may have changed (a mask of :data:`FINAL` and :data:`CREATED`; 0 for neither). A new
        fact version needs a mask other than 0. This is the plain definition of every merge;
        :meth:`callback` is its fast path for status callbacks."""
        if not self._heard(doc["id"], doc.get("parent_account_sid"), event_at):
            return None
        merge = _MERGERS.get(doc["type"])
        return 0 if merge is None else merge(self, doc, event_at)

    def callback(self, f: Callback, event_at: int | None) -> int | None:
        """Fold one status callback in: the same as :meth:`merge` of its envelope
        (:meth:`_heard`, then :meth:`_callback`), its steps written out in one function for
        the hot path; tests/processors/test_fast_paths.py proves the two equal, in answer and
        in state, over random sequences of callbacks."""
        event_id = f.id
        seen = self.seen
        if event_id in seen:
            return None
        if type(seen) is tuple and len(seen) < _SEEN_TUPLE_MAX:
            self.seen = (*seen, event_id)
        elif isinstance(seen, set):
            seen.add(event_id)
        else:
            self.seen = {*seen, event_id}
        if self.parent_account_sid is None:
            self.parent_account_sid = f.parent_account_sid
        if event_at is not None and event_at > self.last_event_at:
            self.last_event_at = event_at
        parts = 0
        if self.direction is None and (value := f.direction):
            self.direction = direction = vocab.direction(str(value))
            self.group = vocab.direction_group(direction or "")
            parts = BOTH
        if self.from_ is None and (value := f.from_):
            self.from_ = str(value)
            parts |= _END
        if self.to is None and (value := f.to):
            self.to = str(value)
        if self.parent_call_sid is None and (value := f.parent_call_sid):
            self.parent_call_sid = str(value)
        if (value := f.stir_verstat) and value != self.stir_verstat:
            self.stir_verstat = str(value)
            parts |= _END
        seq = f.sequence_number
        if not isinstance(seq, int):
            seq = -1
        if event_at is not None:
            first = self.first_callback
            if first is None or seq < first[0] or (seq == first[0] and event_id < first[1]):
                self.first_callback = (seq, event_id, event_at)
                parts |= CREATED
        status = f.call_status or ""
        if status in _TERMINAL_STATUSES:
            end = self.callback_end
            if end is None and self.terminal is not None:
                end = self._callback_end()
            if end is None or seq > end[0] or (seq == end[0] and event_id > end[1]):
                duration = _int(f.call_duration)
                sip = _int(f.sip_response_code)
                self.callback_end = (seq, event_id, status, event_at, duration, sip)
                if self.resource or self.insights:
                    if self._settle():
                        parts |= FINAL
                else:
                    # What _settle() makes of a callback's end alone: the call's end, changed
                    # (no other end had a (SequenceNumber, id) this high).
                    self.terminal = (seq, event_id, status)
                    self.terminal_at = event_at
                    self.terminal_fields = {"call_duration": duration, "sip_response_code": sip}
                    parts |= FINAL
        else:
            if status == _ANSWERED_STATUS:
                in_progress_at = self.in_progress_at
                if event_at is not None and (in_progress_at is None or event_at < in_progress_at):
                    self.in_progress_at = event_at
                    parts |= _END
                elif in_progress_at is None:
                    self.in_progress_at = -1
                    parts |= _END
            rank = _STATUS_RANK.get(status)
            if rank is not None and (
                self.open_status is None or rank > _STATUS_RANK[self.open_status]
            ):
                self.open_status = status
        if parts & _END and (self.terminal is not None or self.closed_at is not None):
            parts |= FINAL
        return parts & BOTH

    def _callback(self, f: Doc, event_at: int | None) -> int:
        """Fold a status callback in (after :meth:`_heard`): which parts may have changed."""
        event_id = f["id"]
        parts = self._identity(
            f.get("direction"),
            f.get("from"),
            f.get("to"),
            f.get("parent_call_sid"),
            f.get("stir_verstat"),
        )
        seq = f.get("sequence_number")
        if not isinstance(seq, int):
            seq = -1
        if event_at is not None:
            # The callback of lowest (SequenceNumber, id) gives the creation time when no
            # Call resource or Insights summary does.
            first = self.first_callback
            if first is None or seq < first[0] or (seq == first[0] and event_id < first[1]):
                self.first_callback = (seq, event_id, event_at)
                parts |= CREATED
        parts |= self._status(f, seq, event_at)
        # What the call adds at its end only matters once it is finished (a new terminal
        # callback recomputes it); what it adds at its creation can change while it is open.
        if parts & _END and self.finished:
            parts |= FINAL
        return parts & BOTH

    def _heard(self, event_id: str, parent: str | None, event_at: int | None) -> bool:
        """Note one event of the call: False for a duplicate (same envelope id). A few ids
        are kept in a tuple (small, and out of the garbage collector's way), many in a set."""
        seen = self.seen
        if event_id in seen:
            return False
        if isinstance(seen, set):
            seen.add(event_id)
        elif len(seen) < _SEEN_TUPLE_MAX:
            self.seen = (*seen, event_id)
        else:
            self.seen = {*seen, event_id}
        if self.parent_account_sid is None:
            self.parent_account_sid = parent
        if event_at is not None and event_at > self.last_event_at:
            self.last_event_at = event_at
        return True

    def stamped_in_future(self) -> int:
        """Note that one of the call's events was stamped too far after it was received (and is
        counted at its receipt): :data:`FINAL` the first time, so that its facts say so."""
        if self.timestamp_in_future:
            return 0
        self.timestamp_in_future = True
        return FINAL

    @property
    def finished(self) -> bool:
        return self.terminal is not None or self.closed_at is not None

    def _identity(
        self, direction: object, from_: object, to: object, parent: object, stir: object = None
    ) -> int:
        """Learn who the call is between, once (StirVerstat: its latest value). Returns
        :data:`BOTH` when the direction is new (it may move the call to the other group),
        else :data:`_END` when From or StirVerstat changed (both show in its end), else 0."""
        changed = 0
        if self.direction is None and direction:
            self.direction = vocab.direction(str(direction))
            self.group = vocab.direction_group(self.direction or "")
            changed = BOTH
        if self.from_ is None and from_:
            self.from_ = str(from_)
            changed |= _END
        if self.to is None and to:
            self.to = str(to)
        if self.parent_call_sid is None and parent:
            self.parent_call_sid = str(parent)
        if stir and stir != self.stir_verstat:
            self.stir_verstat = str(stir)
            changed |= _END
        return changed

    def _status(self, f: Doc, seq: int, event_at: int | None) -> int:
        """Fold the callback's CallStatus in: :data:`FINAL` when the terminal status changed
        (highest SequenceNumber, then id, wins), :data:`_END` when the answer time did."""
        status = f.get("call_status") or ""
        if status in vocab.TERMINAL_STATUSES:
            end = self._callback_end()
            if end is None or seq > end[0] or (seq == end[0] and f["id"] > end[1]):
                self.callback_end = (
                    seq,
                    f["id"],
                    status,
                    event_at,
                    _int(f.get("call_duration")),
                    _int(f.get("sip_response_code")),
                )
                return FINAL if self._settle() else 0
            return 0
        changed = 0
        if status == vocab.ANSWERED_STATUS:
            if event_at is not None and (
                self.in_progress_at is None or event_at < self.in_progress_at
            ):
                self.in_progress_at = event_at
                changed = _END
            elif self.in_progress_at is None:
                self.in_progress_at = -1  # answered, at no usable time
                changed = _END
        rank = vocab.STATUS_RANK.get(status)
        if rank is not None and (
            self.open_status is None or rank > vocab.STATUS_RANK[self.open_status]
        ):
            self.open_status = status
        return changed

    def _resource(self, f: Doc, event_at: int | None) -> int:
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
                "end_at": event_at,
            }
            self._settle()
        return BOTH

    def _insights(self, f: Doc, event_at: int | None) -> int:
        state = f.get("processing_state")
        rank = (1 if state == "complete" else 0, f["id"])
        if self.insights and rank <= self.insights["_rank"]:
            return 0
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
            "connect_duration_s": _int(f.get("connect_duration_s")),
            "tags": sorted(str(t) for t in f.get("tags") or []),
            "end_at": event_at,
        }
        self._settle()
        return BOTH

    def _callback_end(self) -> tuple[int, str, str, int | None, int | None, int | None] | None:
        end = self.callback_end
        terminal = self.terminal
        if end is None and terminal is not None and terminal[0] != _REST_SEQUENCE:
            # A state stored before other sources could end a call: its end is a callback's.
            fields = self.terminal_fields
            end = self.callback_end = (
                *terminal,
                self.terminal_at,
                fields.get("call_duration"),
                fields.get("sip_response_code"),
            )
        return end

    def _rest_end(self) -> tuple[str, str, int | None] | None:
        """The end the Call resource says (a terminal status), else the complete Insights
        summary (a terminal call state; ``answered`` in a complete summary is a completed
        call): (envelope id, status, end time), or None."""
        res = self.resource
        if res and res["status"] in vocab.TERMINAL_STATUSES:
            return res["_rank"][-1], res["status"], res.get("end_at")
        ins = self.insights
        if ins and ins["processing_state"] == "complete":
            status = ins["call_state"]
            if status == vocab.ANSWERED_STATUS:
                status = "completed"
            if status in vocab.TERMINAL_STATUSES:
                return ins["_rank"][-1], status, ins.get("end_at")
        return None

    def _settle(self) -> bool:
        """Make the call's end (``terminal``, ``terminal_at``, ``terminal_fields``) what its
        sources together say: the terminal callback's status, time and SIP code, else the Call
        resource's or the complete summary's; the longest duration any of them knows. True
        when it changed. A function of the kept views, so of the set of events seen."""
        end = self._callback_end()
        if end is not None:
            terminal: tuple[int, str, str] = end[:3]
            at, duration, sip = end[3], end[4], end[5]
        elif (rest := self._rest_end()) is not None:
            terminal = (_REST_SEQUENCE, rest[0], rest[1])
            at, duration, sip = rest[2], None, None
        else:
            return False
        if self.resource or self.insights:
            for known in (
                self.resource.get("duration_s"),
                self.insights.get("connect_duration_s"),
            ):
                if known is not None and (duration is None or known > duration):
                    duration = known
        fields = {"call_duration": duration, "sip_response_code": sip}
        if terminal == self.terminal and at == self.terminal_at and fields == self.terminal_fields:
            return False
        self.terminal, self.terminal_at, self.terminal_fields = terminal, at, fields
        return True

    def _debugger(self, f: Doc, event_at: int | None) -> int:
        code = f.get("error_code")
        if str(code) not in CPS_REJECTION_CODES or event_at is None:
            return 0
        if self.rejected_at is None or event_at < self.rejected_at:
            self.rejected_at = event_at
            return BOTH
        return 0

    # -- the rules: what a call's merged state says (one definition each) --------------------

    @property
    def terminal_status(self) -> str | None:
        return None if self.terminal is None else self.terminal[2]

    def answered(self) -> bool:
        """``in-progress`` seen, or ``completed`` with a duration > 0, an Insights
        ``answered_by`` (human, machine, fax) or a connect duration > 0."""
        if self.in_progress_at is not None:
            return True
        terminal = self.terminal
        if terminal is None or terminal[2] != "completed":
            return False
        if (self.terminal_fields.get("call_duration") or 0) > 0:
            return True
        ins = self.insights
        return bool(ins) and (
            ins.get("answered_by") not in _NOT_ANSWERED_BY
            or (ins.get("connect_duration_s") or 0) > 0
        )

    def created_at(self) -> int | None:
        """The Call resource's ``date_created``, else Insights ``created_time``, else the time
        of the callback with the lowest SequenceNumber."""
        created = self.resource.get("date_created") or self.insights.get("created_time")
        if created is not None:
            return int(created)
        return None if self.first_callback is None else self.first_callback[2]

    def queue_time_ms(self) -> int | None:
        """The Call resource's queue time, else the Insights summary's."""
        queue = self.resource.get("queue_time_ms")
        return queue if queue is not None else self.insights.get("queue_time_ms")

    def trunk_cps_rejection(self) -> bool:
        """Outbound, and a debugger 32001/32012 event or a terminal SIP 503."""
        if self.group != "outbound":
            return False
        return self.rejected_at is not None or self.terminal_fields.get("sip_response_code") == 503

    # -- what the call adds to windows, and its facts -----------------------------------------

    def contributions(
        self, parts: int = BOTH
    ) -> dict[tuple[str, tuple[str, str, int]], Contribution]:
        """What this call adds to windows, keyed by (kind, window key); window keys are
        (account_sid, direction group, window start in epoch seconds). ``parts`` (a mask of
        :data:`FINAL` and :data:`CREATED`) limits it to those kinds."""
        out: dict[tuple[str, tuple[str, str, int]], Contribution] = {}
        for wanted, made in (
            (FINAL, self.final_contribution),
            (CREATED, self.created_contribution),
        ):
            if parts & wanted and (item := made()) is not None:
                out[item[0]] = item[1]
        return out

    def final_contribution(self) -> tuple[tuple[str, tuple[str, str, int]], Contribution] | None:
        """What the call adds at its end, as ((kind, window key), contribution), or None."""
        group = self.group
        outbound = group == "outbound"
        terminal, at = self.terminal, self.terminal_at
        if terminal is not None and at is not None:
            duration = self.terminal_fields.get("call_duration") or 0
            answered = self.answered()
            return ("end", (self.account_sid, group, at - at % 60)), (
                terminal[2],
                answered,
                duration if answered else 0,
                answered and duration <= SHORT_CALL_S,
                self.trunk_cps_rejection(),
                self.from_ if outbound else None,
                None if outbound else vocab.attestation(self.stir_verstat),
            )
        if (at := self.closed_at) is not None:
            key = (self.account_sid, group, at - at % 60)
            return ("unknown", key), (self.trunk_cps_rejection(),)
        if outbound and (at := self.rejected_at) is not None:
            return ("rejected", (self.account_sid, group, at - at % 60)), (True,)
        return None

    def created_contribution(self) -> tuple[tuple[str, tuple[str, str, int]], Contribution] | None:
        """What the call adds at its creation, as ((kind, window key), contribution), or None."""
        created = self.created_at()
        if created is None:
            return None
        group = self.group
        queue = self.queue_time_ms() if group == "outbound" else None
        second = created % 60
        return ("created", (self.account_sid, group, created - second)), (second, queue)

    def fact_signature(self) -> tuple[Any, ...]:
        """What a new fact version is emitted for: nothing while the call is open; once it is
        terminal (or closed by timeout), any change of what the facts and the health metrics
        say about it (status, answered and when, duration, SIP code, cost, queue time, creation
        time, direction, From, StirVerstat, Insights state, rejection, lateness, and which Call
        resource and Insights summary the fact shows), so that the last version holds
        everything known whatever order the events came in (an ``in-progress`` callback after
        ``completed`` still brings ``answered_at``), and an event stamped in the future."""
        terminal = self.terminal
        if terminal is None and self.closed_at is None:
            return ()
        ended = self.terminal_fields
        res = self.resource
        ins = self.insights
        return (
            "unknown" if terminal is None else terminal[2],
            self.answered(),
            ended.get("call_duration"),
            self.terminal_at,
            res.get("cost"),
            self.queue_time_ms(),
            ended.get("sip_response_code"),
            ins.get("processing_state"),
            self.trunk_cps_rejection(),
            self.created_at(),
            self.from_,
            self.stir_verstat,
            self.late,
            self.in_progress_at,
            self.direction,
            res["_rank"][-1] if res else None,
            ins["_rank"][-1] if ins else None,
            self.timestamp_in_future,
        )

    def fact(self) -> dict[str, Any]:
        """The ``voicepulse.calls`` fields (:class:`voicepulse.messages.CallFact`)."""
        terminal = self.terminal
        closed = self.closed_at
        if terminal is not None:
            status = terminal[2]
        elif closed is not None:
            status = "unknown"
        else:
            status = self.open_status or "unknown"
        ins = self.insights
        res = self.resource
        terminal_duration = self.terminal_fields.get("call_duration")
        duration = terminal_duration if terminal_duration is not None else res.get("duration_s")
        answered = self.answered()
        answered_at = self.in_progress_at
        created = self.created_at()
        stir = self.stir_verstat
        fact = _FACT.copy()
        fact["call_sid"] = self.call_sid
        fact["version"] = self.version
        fact["status"] = status
        fact["terminal"] = terminal is not None
        fact["answered"] = answered
        fact["direction"] = self.direction or ""
        fact["direction_group"] = self.group
        fact["from"] = self.from_
        fact["to"] = self.to
        if created is not None:
            fact["created_at"] = _iso(created)
        if answered_at and answered_at > 0:
            fact["answered_at"] = _iso(answered_at)
        if self.terminal_at is not None:
            fact["ended_at"] = _iso(self.terminal_at)
        fact["call_duration_s"] = duration
        if answered and duration is not None:
            fact["billed_minutes"] = -(-duration // 60)
        fact["queue_time_ms"] = self.queue_time_ms()
        fact["sip_response_code"] = self.terminal_fields.get("sip_response_code")
        fact["stir_verstat"] = stir
        fact["parent_call_sid"] = self.parent_call_sid
        fact["closed_by_timeout"] = closed is not None and terminal is None
        fact["late"] = self.late
        fact["attestation"] = vocab.attestation(stir) if stir else "none"
        fact["trunk_cps_rejection"] = self.trunk_cps_rejection()
        if self.last_event_at:
            fact["last_event_at"] = _iso(self.last_event_at)
        if res:
            fact["cost"] = res.get("cost")
            fact["price_unit"] = res.get("price_unit")
            fact["trunk_sid"] = res.get("trunk_sid")
        tags = None
        if ins:
            fact["pdd_ms"] = ins.get("pdd_ms")
            fact["call_type"] = ins.get("call_type")
            fact["last_sip_response_num"] = ins.get("last_sip_response_num")
            fact["disconnected_by"] = ins.get("disconnected_by")
            fact["insights_state"] = ins.get("processing_state")
            fact["answered_by"] = ins.get("answered_by")
            tags = ins.get("tags")
        fact["tags"] = list(tags) if tags else []
        fact["opened_at"] = _iso(self.opened_at)
        fact["timestamp_in_future"] = self.timestamp_in_future
        return fact


_FACT: Final[dict[str, Any]] = dict.fromkeys(
    (
        "call_sid",
        "version",
        "status",
        "terminal",
        "answered",
        "direction",
        "direction_group",
        "from",
        "to",
        "created_at",
        "answered_at",
        "ended_at",
        "call_duration_s",
        "billed_minutes",
        "queue_time_ms",
        "pdd_ms",
        "cost",
        "price_unit",
        "call_type",
        "sip_response_code",
        "last_sip_response_num",
        "disconnected_by",
        "stir_verstat",
        "parent_call_sid",
        "trunk_sid",
        "insights_state",
        "tags",
        "closed_by_timeout",
        "late",
        "attestation",
        "trunk_cps_rejection",
        "answered_by",
        "last_event_at",
        "opened_at",
        "timestamp_in_future",
    )
)
"""A call fact's keys in wire order, every value None: :meth:`CallState.fact` fills in a copy.
Copying a dict of the right keys and setting the values costs about a third of building the
same 35 entries with a dict display (a fact is built per call version, on the hot path)."""


def _resource_rank(fields: Any) -> tuple[int, int, str]:
    # A later view of the resource wins: rated beats unrated, ended beats running, and a
    # terminal status beats an open one ("~" sorts after every status word), so the call's end
    # never goes back to open.
    rated = 1 if fields.get("cost") not in (None, "") else 0
    ended = 1 if fields.get("end_time") else 0
    status = str(fields.get("status") or "")
    if vocab.call_resource_status(status) in vocab.TERMINAL_STATUSES:
        status = "~" + status
    return (rated, ended, status)


_MERGERS: Final = {
    "call-status": CallState._callback,
    "call-resource": CallState._resource,
    "insights-summary": CallState._insights,
    "debugger-event": CallState._debugger,
}
