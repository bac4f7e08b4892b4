"""Call assembly and health windows for one shard of input, free of I/O.

A shard is the state built from one input partition number (every input topic is keyed by the
subaccount SID and has the same partition count, so one subaccount's calls, callbacks, resources,
summaries and debugger events all land in the same shard).

Guarantees:

- Exact under duplicates and disorder: every window row is the sum of the contributions of the
  calls that belong to it, and a call's contribution is a function of the set of its events
  (:mod:`processors.calls`), so the same events give the same rows in any order.
- Event time: the shard's stream time is the latest Timestamp of a status callback or debugger
  event seen (or a clock given to :meth:`Shard.advance`). Bounded: an event stamped more than
  ``future_tolerance_s`` after it was received (its ``received_at``; the wall clock when that is
  missing or itself ahead) is counted at its receive time and its call is flagged
  ``timestamp_in_future``, so one subaccount's clock never moves another's windows; a shard
  restored with a stream time ahead of the wall clock by more than the tolerance is brought
  back (:meth:`Shard.restored`). A window [s, s+60) closes when the
  stream time reaches ``s + 60 + grace``; an event that would change a closed window leaves it as
  it was, counts in its ``late_events`` and still reaches the call fact.
- Timers (window close, call timeout, eviction) fire in due-time order as stream time passes.
  A call's timers count from the later of its last event and the stream time when it was last
  heard of: a call without a terminal callback is closed ``call_timeout_s`` after that and
  counts as ``unknown`` in the window of its last event plus the timeout (still open then when
  its events came within the grace; else counted there as late). So a day-old call read now is
  not closed before its terminal callback can follow, and a terminal status that comes after
  a timeout still gives the call a new fact version. Timer order depends only on the state, so
  a shard restored from its changelog fires the same timers as one that never stopped.
- Bounded: open calls, finished calls until ``horizon_s`` after they were last heard of (the
  dedupe horizon; so are calls none of whose events had a usable time: never closed as
  unknown, as they belong to no window), open windows, and closed rows until ``horizon_s``
  after they closed (a late event for a window older than that reaches its call fact but no
  row: the row's state is gone, and a row rebuilt from nothing would replace the real one
  downstream).
- A call heard of again after it was forgotten (a price or a complete Insights summary that
  Twilio filled in hours later) starts a new state: its fact versions count from 1 again, and
  its facts carry ``opened_at``, the stream time the state was opened at, later than that of
  any earlier state of the call (stream time never goes back). Downstream orders a call's facts
  by (``opened_at``, version) and merges a later state's facts into the earlier ones
  (:mod:`warehouse.merge`). Such a state is finished like any other: by a terminal callback,
  Call resource or complete Insights summary (so a late price or summary gives its fact at
  once), or as ``unknown`` by the call timeout. In the health windows it counts nothing
  again: its creation, end and timeout fall in windows closed long before (past the horizon,
  which is longer than the grace), so each of its events counts only as late there (or
  nowhere once the window's row is forgotten).
"""

import heapq
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from processors.calls import (
    BOTH,
    CREATED,
    FINAL,
    PART_OF_KIND,
    Callback,
    CallState,
    Contribution,
    Doc,
    iso,
)
from processors.vocabulary import EPOCHS as _EPOCHS
from processors.vocabulary import epoch, receipt_epoch
from processors.windows import Window
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.messages import HealthWindow

__all__ = ["EngineConfig", "Shard", "WindowKey"]

logger = logging.getLogger(__name__)

WindowKey = tuple[str, str, int]
"""(account_sid, direction group, window start in epoch seconds)."""

_CLOCK_TYPES: Final = frozenset({"call-status", "debugger-event"})
_CALL_TYPES: Final = frozenset({"call-status", "call-resource", "insights-summary"})
_TIMER_ORDER: Final = {"call": 0, "close": 1, "evict_window": 2}
_CALL_TIMER: Final = _TIMER_ORDER["call"]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Grace for late events, call timeout, dedupe horizon, how far after its receipt an
    event may be stamped (seconds; well under the grace), the CPS limits, the wall clock."""

    grace_s: int = 120
    call_timeout_s: int = 4 * 3600
    horizon_s: int = 3600
    cps_limit: Callable[[str], float] = field(default=lambda account: 1.0)
    future_tolerance_s: int = 30
    clock: Callable[[], float] = field(default=time.time)


@dataclass(slots=True)
class Shard:
    """The state of one input partition: calls, windows, stream time, applied offsets."""

    config: EngineConfig
    calls: dict[str, CallState] = field(default_factory=dict)
    windows: dict[WindowKey, Window] = field(default_factory=dict)
    closed: dict[WindowKey, HealthWindow] = field(default_factory=dict)
    # The debugger event Sids a closed window counted (on time or late), until it is evicted:
    # a duplicate that comes after the grace is then not counted late again.
    closed_debugger: dict[WindowKey, set[str]] = field(default_factory=dict)
    stream_time: int = 0
    offsets: dict[str, int] = field(default_factory=dict)
    timers: list[tuple[int, int, str, Any]] = field(default_factory=list)  # due, order, kind, key
    changed_calls: set[str] = field(default_factory=set)
    dirty_calls: set[str] = field(default_factory=set)
    changed_windows: set[WindowKey] = field(default_factory=set)
    evicted_calls: set[str] = field(default_factory=set)
    evicted_windows: set[WindowKey] = field(default_factory=set)
    unsent_calls: dict[str, CallState] = field(default_factory=dict)
    unsent_rows: dict[WindowKey, HealthWindow] = field(default_factory=dict)
    late_keys: set[WindowKey] = field(default_factory=set)  # scratch for one update
    forgotten_late: int = 0  # late events for windows older than the horizon (no row)

    # -- input -------------------------------------------------------------------------------

    def apply(self, envelope: Envelope) -> None:
        """Fold one envelope in (any input type); see :meth:`apply_doc`."""
        doc = dict(envelope.fields)
        doc.update(
            id=envelope.id,
            type=envelope.type,
            account_sid=envelope.account_sid,
            parent_account_sid=envelope.parent_account_sid,
            received_at=envelope.received_at,
        )
        self.apply_doc(doc)

    def apply_doc(self, doc: Doc) -> None:
        """Fold one decoded envelope in (header and fields flat, as on the wire); raises
        :class:`BadMessage` for one that names no call or carries no usable time. The plain
        definition of every input; :meth:`apply_callback` is its fast path for status
        callbacks."""
        kind = doc["type"]
        event_at, future = self._bounded(
            _event_time(doc, kind),
            receipt_epoch(doc.get("received_at")),
            or_receipt=kind in _CLOCK_TYPES,
        )
        if kind == "debugger-event":
            self._debugger(doc, event_at, future)
        elif kind in _CALL_TYPES:
            call_sid = doc.get("call_sid")
            if not isinstance(call_sid, str) or not call_sid:
                raise BadMessage(f"a {kind} envelope without call_sid")
            self._merge(call_sid, doc, event_at, future)
        else:
            raise BadMessage(f"the processor does not take {kind!r} envelopes")
        if event_at is not None and event_at > self.stream_time and kind in _CLOCK_TYPES:
            self.advance(event_at)

    def apply_callback(self, f: Callback) -> None:
        """Fold one status callback in: the same as :meth:`apply_doc` of its envelope, with the
        steps of the common case (:func:`receipt_epoch` of the receiver's form, an event not
        ahead of stream time, :meth:`_merged`) written out and :meth:`CallState.callback` for
        the merge; tests/processors/test_fast_paths.py proves the two equal."""
        ts = f.timestamp
        # The memo of epoch() read first: a hit is final, and callback times repeat per second.
        stamp = _EPOCHS.get(ts) if type(ts) is str else None
        if not stamp:
            stamp = epoch(ts)
        received_at = f.received_at
        if (
            type(received_at) is str
            and received_at[26:] == "+00:00"  # so 32 characters long
            and received_at[19] == "."
            and received_at[:2] == "20"
        ):
            # receipt_epoch() of the receiver's form: its whole second, from the memo.
            received = _EPOCHS.get(received_at[:19]) or receipt_epoch(received_at)
        else:
            received = receipt_epoch(received_at)
        if (
            stamp
            and stamp <= self.stream_time
            and received is not None
            and stamp <= received + self.config.future_tolerance_s
        ):
            event_at: int | None = stamp
            future = False
        else:
            event_at, future = self._bounded(stamp, received)
        call_sid = f.call_sid
        if type(call_sid) is not str or not call_sid:
            raise BadMessage("a call-status envelope without call_sid")
        call = self.calls.get(call_sid) or self._open_call(call_sid, f.account_sid)
        last_event_at = call.last_event_at
        was_open = call.terminal is None and call.closed_at is None
        parts = call.callback(f, event_at)
        if parts is not None:
            if future:
                parts |= call.stamped_in_future()
            self.dirty_calls.add(call_sid)
            call.heard_at = self.stream_time
            if parts:
                self._update(call, parts)
            if (
                call.timer_due is None
                or (not last_event_at and call.last_event_at)
                or was_open != (call.terminal is None and call.closed_at is None)
            ):
                self._schedule_call(call)
        if event_at is not None and event_at > self.stream_time:
            self.advance(event_at)

    def _merge(self, call_sid: str, doc: Doc, event_at: int | None, future: bool) -> None:
        call = self.calls.get(call_sid) or self._open_call(call_sid, doc["account_sid"])
        last_event_at = call.last_event_at
        was_open = call.terminal is None and call.closed_at is None
        parts = call.merge(doc, event_at)
        if parts is not None:
            if future:
                parts |= call.stamped_in_future()
            self._merged(call, parts, last_event_at, was_open)

    def _open_call(self, call_sid: str, account_sid: str) -> CallState:
        call = self.calls[call_sid] = CallState(call_sid, account_sid, opened_at=self.stream_time)
        return call

    def _bounded(
        self, stamp: int | None, received: int | None, *, or_receipt: bool = True
    ) -> tuple[int | None, bool]:
        """An event's time from its own ``stamp`` and its receipt (``received``, its
        ``received_at`` read by :func:`receipt_epoch`), and
        whether it was stamped in the future: more than the tolerance after its receipt, or
        after the wall clock when the receipt is missing or itself ahead (an envelope nothing
        of ours wrote). Such an event counts at its receipt, never after the wall clock. An
        event without a stamp counts at its receipt (``or_receipt``) or at no time."""
        if not stamp:
            if not or_receipt or received is None:
                return None, False
            stamp = received
        tolerance = self.config.future_tolerance_s
        # Stream time is never ahead of the wall clock by more than the tolerance: an event
        # not ahead of stream time needs no look at the clock.
        if received is not None and stamp <= received + tolerance and stamp <= self.stream_time:
            return stamp, False
        now = int(self.config.clock())
        receipt = now if received is None else min(received, now)
        if stamp <= receipt + tolerance:
            return stamp, False
        return receipt, True

    def _merged(self, call: CallState, parts: int, last_event_at: int, was_open: bool) -> None:
        self.dirty_calls.add(call.call_sid)
        call.heard_at = self.stream_time
        if parts:
            self._update(call, parts)
        # While a call stays open (or stays finished) its timer only moves later, and a timer
        # is never pushed later (it is moved on when it fires): only a new call, a call that
        # just learnt a time of its own (its due time may come sooner) or a call that just
        # finished needs one pushed.
        if (
            call.timer_due is None
            or (not last_event_at and call.last_event_at)
            or was_open != (call.terminal is None and call.closed_at is None)
        ):
            self._schedule_call(call)

    def _debugger(self, doc: Doc, event_at: int | None, future: bool) -> None:
        if event_at is None:
            raise BadMessage("a debugger event without a usable Timestamp")
        sid = str(doc.get("sid") or doc["id"])
        level = str(doc.get("level") or "").lower()
        code = str(doc.get("error_code") or "unknown")
        key = (doc["account_sid"], "outbound", event_at - event_at % 60)
        window = self._open_window(key)
        if window is None:
            if sid not in self.closed_debugger.get(key, ()):
                self._late(key)
                if key in self.closed:  # else its row was forgotten (no Sids kept either)
                    self.closed_debugger.setdefault(key, set()).add(sid)
        elif window.debugger(sid, level, code):
            self.changed_windows.add(key)
        resource = doc.get("resource_sid")
        if isinstance(resource, str) and resource.startswith("CA"):
            self._merge(resource, doc, event_at, future)

    # -- windows -----------------------------------------------------------------------------

    def _open_window(self, key: WindowKey) -> Window | None:
        window = self.windows.get(key)
        if window is not None:
            return window
        if key in self.closed or key[2] + 60 + self.config.grace_s <= self.stream_time:
            return None
        window = self.windows[key] = Window()
        self._push(key[2] + 60 + self.config.grace_s, "close", key)
        return window

    def _late(self, key: WindowKey) -> None:
        row = self.closed.get(key)
        if row is None:
            if self._window_evict_due(key) <= self.stream_time:
                # Its row is no longer held: one rebuilt from nothing (zeros and this late
                # count) would replace the real row downstream. The event still reaches its
                # call fact; the window's row stays as it was.
                self.forgotten_late += 1
                return
            row = self.closed[key] = Window().fields(key[1], key[2], self._limit(key), closed=True)
            self._push(self._window_evict_due(key), "evict_window", key)
        row["late_events"] += 1
        self.changed_windows.add(key)

    def _update(self, call: CallState, parts: int = BOTH) -> None:
        """Move the call's contributions of the kinds in ``parts`` to what they are now.

        A call that was ever late recomputes every kind (a contribution left in a closed
        window stays pending and counts as late again), like a full recomputation would.
        """
        if call.late:
            parts = BOTH
        if self.late_keys:  # one event counts once per window it was late for
            self.late_keys.clear()
        if parts & FINAL:
            self._sync(call, FINAL, call.final_contribution())
        if parts & CREATED:
            self._sync(call, CREATED, call.created_contribution())
        if call.terminal is not None or call.closed_at is not None:
            signature = call.fact_signature()
            if signature != call.signature:
                call.signature = signature
                call.version += 1
                self.changed_calls.add(call.call_sid)

    def _sync(
        self,
        call: CallState,
        part: int,
        new: tuple[tuple[str, WindowKey], Contribution] | None,
    ) -> None:
        """Make the call's applied contributions of one part (:data:`FINAL` or
        :data:`CREATED`) what ``new`` says: take back the stale ones, add the new one."""
        applied = call.applied
        if applied:
            new_slot = None if new is None else new[0]
            stale = None
            for slot in applied:
                if slot != new_slot and PART_OF_KIND[slot[0]] == part:
                    stale = [slot] if stale is None else [*stale, slot]
            if stale is not None:
                for slot in stale:
                    self._move(call, slot, applied[slot], None)
        if new is not None:
            slot, contribution = new
            old = applied.get(slot)
            if old != contribution:
                self._move(call, slot, old, contribution)

    def _move(
        self,
        call: CallState,
        slot: tuple[str, WindowKey],
        old: Contribution | None,
        new: Contribution | None,
    ) -> None:
        kind, key = slot
        window = self.windows.get(key) or self._open_window(key)
        if window is None:
            if key not in self.late_keys:
                self.late_keys.add(key)
                self._late(key)
            call.late = True
            return
        if old is not None:
            window.apply(kind, old, -1)
        if new is not None:
            window.apply(kind, new, 1)
            call.applied[slot] = new
        else:
            del call.applied[slot]
        self.changed_windows.add(key)

    def _limit(self, key: WindowKey) -> float:
        return self.config.cps_limit(key[0])

    def row(self, key: WindowKey) -> HealthWindow:
        """The full state of one window as :class:`voicepulse.messages.HealthWindow` fields."""
        window = self.windows.get(key)
        if window is not None:
            return window.fields(key[1], key[2], self._limit(key))
        return self.closed[key]

    # -- time --------------------------------------------------------------------------------

    def advance(self, now: int) -> None:
        """Move stream time to ``now`` (never back), firing due timers in due-time order."""
        timers = self.timers
        while timers and timers[0][0] <= now:
            due, _, kind, key = heapq.heappop(timers)
            self.stream_time = max(self.stream_time, due)
            self._fire(kind, key, due)
        self.stream_time = max(self.stream_time, now)

    def _push(self, due: int, kind: str, key: Any) -> None:
        heapq.heappush(self.timers, (due, _TIMER_ORDER[kind], kind, key))

    def _fire(self, kind: str, key: Any, due: int) -> None:
        if kind == "close":
            window = self.windows.pop(key, None)
            if window is not None:
                self.closed[key] = window.fields(key[1], key[2], self._limit(key), closed=True)
                if window.debugger_seen:
                    self.closed_debugger[key] = window.debugger_seen
                self.changed_windows.add(key)
                self._push(self._window_evict_due(key), "evict_window", key)
        elif kind == "evict_window":
            if key in self.closed and due == self._window_evict_due(key):
                row = self.closed.pop(key)
                self.closed_debugger.pop(key, None)
                if key in self.changed_windows:  # evicted before its last change went out
                    self.changed_windows.discard(key)
                    self.unsent_rows[key] = row
                self.evicted_windows.add(key)
        else:
            self._fire_call(key, due)

    def _fire_call(self, key: str, due: int) -> None:
        # One timer per call at a time: a call that heard more since it was set moves it on.
        call = self.calls.get(key)
        if call is None or call.timer_due != due:
            return
        call.timer_due = None
        if self._call_due(call) > due:
            self._schedule_call(call)
        elif call.terminal is None and call.closed_at is None and call.last_event_at:
            # Counted as unknown where its last event plus the timeout falls, even when the
            # timer fires later (the call was heard of late).
            call.closed_at = call.last_event_at + self.config.call_timeout_s
            call.heard_at = due
            self.dirty_calls.add(key)
            self._update(call)
            self._schedule_call(call)
        else:
            self.calls.pop(key)
            if key in self.changed_calls:  # evicted before its last version went out
                self.changed_calls.discard(key)
                self.unsent_calls[key] = call
            self.dirty_calls.discard(key)
            self.evicted_calls.add(key)

    def _window_evict_due(self, key: WindowKey) -> int:
        return key[2] + 60 + self.config.grace_s + self.config.horizon_s

    def _call_due(self, call: CallState) -> int:
        # Counted from the later of the call's own time and the stream time when it was last
        # heard of: a day-old call read now (a backfill, a replay, a drained spool) is neither
        # timed out before its next callback can arrive nor forgotten (its fact version
        # counter with it) while its stragglers may still come.
        # A call none of whose events carried a usable time cannot be placed in a window, so
        # it is never closed as unknown: it is forgotten the dedupe horizon after it was last
        # heard of, unless an event with a time comes first.
        since = max(call.last_event_at, call.heard_at)
        if call.terminal is None and call.closed_at is None and call.last_event_at:
            return since + self.config.call_timeout_s
        return max(since, call.closed_at or 0) + self.config.horizon_s

    def _schedule_call(self, call: CallState) -> None:
        due = self._call_due(call)
        if call.timer_due is None or due < call.timer_due:
            call.timer_due = due
            heapq.heappush(self.timers, (due, _CALL_TIMER, "call", call.call_sid))

    def restored(self) -> None:
        """Finish a restore from the changelog: bring a stream time stored ahead of the wall
        clock by more than the tolerance back to the wall clock (saying so), then rebuild the
        timers. Such a stream time (an event from the future counted before event time was
        bounded) would close every window of the present before it opened."""
        now = int(self.config.clock())
        if self.stream_time > now + self.config.future_tolerance_s:
            logger.warning(
                "restored stream time %s is %d s ahead of the wall clock (tolerance %d s): "
                "brought back to %s; windows it closed early stay as they were",
                iso(self.stream_time),
                self.stream_time - now,
                self.config.future_tolerance_s,
                iso(now),
            )
            self.stream_time = now
            for call in self.calls.values():  # their timers count from it
                call.heard_at = min(call.heard_at, now)
        self.rebuild_timers()

    def rebuild_timers(self) -> None:
        """Recreate the timers from the state (after a restore from the changelog)."""
        self.timers = []
        for key in self.windows:
            self._push(key[2] + 60 + self.config.grace_s, "close", key)
        for key in self.closed:
            self._push(self._window_evict_due(key), "evict_window", key)
        for call in self.calls.values():
            call.timer_due = None
            self._schedule_call(call)

    # -- output ------------------------------------------------------------------------------

    def take_changes(
        self,
    ) -> tuple[list[CallState], list[tuple[WindowKey, dict[str, object]]], list[CallState]]:
        """Since the last call, in a stable order: the calls with a new fact version, the
        changed windows with their rows, and every call whose state changed at all."""
        unsent_calls, self.unsent_calls = self.unsent_calls, {}
        unsent_rows, self.unsent_rows = self.unsent_rows, {}
        calls = sorted(
            [*unsent_calls.values(), *(self.calls[sid] for sid in self.changed_calls)],
            key=_by_sid,
        )
        # By key only, stable: a window evicted with its last row unsent and counted late again
        # in the same turn gives two rows, the evicted one first. Copies: a closed row is the
        # shard's own, which a later late event updates in place.
        rows = sorted(
            [
                *((k, dict(row)) for k, row in unsent_rows.items()),
                *((k, dict(self.row(k))) for k in self.changed_windows),
            ],
            key=_by_key,
        )
        dirty = [self.calls[sid] for sid in sorted(self.dirty_calls)]
        self.changed_calls.clear()
        self.changed_windows.clear()
        self.dirty_calls.clear()
        return calls, rows, dirty


_by_sid: Final = operator.attrgetter("call_sid")
_by_key: Final = operator.itemgetter(0)


def _event_time(doc: Doc, kind: str) -> int | None:
    if kind == "call-status" or kind == "debugger-event":
        return epoch(doc.get("timestamp"))
    if kind == "call-resource":
        return epoch(doc.get("end_time")) or epoch(doc.get("date_created"))
    return epoch(doc.get("end_time")) or epoch(doc.get("created_time"))
