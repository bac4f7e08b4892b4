"""Shard state to and from changelog entries (JSON), for restoring after a crash.

Entry keys: ``c:<CallSid>`` (a call), ``w:<account>|<group>|<start>`` (an open window),
``r:<account>|<group>|<start>`` (a closed window's row), ``d:<account>|<group>|<start>`` (the
debugger event Sids a closed window counted), ``m:shard`` (stream time and the input offsets
the state reflects). A ``None`` value is a tombstone: the entry was evicted.
"""

from collections import Counter
from dataclasses import fields as dataclass_fields
from typing import Any, Final

import orjson

from processors.calls import CallState
from processors.engine import Shard, WindowKey
from processors.windows import Window

__all__ = ["META_KEY", "changed_entries", "encode_call", "restore_entry"]

META_KEY: Final = "m:shard"
_CALL_FIELDS: Final = CallState.__struct_fields__


def _wkey(key: WindowKey) -> str:
    return f"{key[0]}|{key[1]}|{key[2]}"


def _parse_wkey(text: str) -> WindowKey:
    account, group, start = text.rsplit("|", 2)
    return (account, group, int(start))


def encode_call(call: CallState) -> dict[str, Any]:
    doc = {name: getattr(call, name) for name in _CALL_FIELDS}
    doc["seen"] = sorted(call.seen)
    doc["applied"] = [[kind, _wkey(key), list(part)] for (kind, key), part in call.applied.items()]
    doc["signature"] = list(call.signature)
    return doc


def _decode_call(doc: dict[str, Any]) -> CallState:
    call = CallState(doc["call_sid"], doc["account_sid"])
    for name in _CALL_FIELDS:
        if name in doc:  # a field added since the entry was written keeps its default
            setattr(call, name, doc[name])
    call.seen = tuple(doc["seen"])  # becomes a set again at its next event if long
    call.applied = {(k, _parse_wkey(w)): tuple(part) for k, w, part in doc["applied"]}
    call.signature = tuple(doc["signature"])
    for name in ("terminal", "first_callback"):
        value = getattr(call, name)
        setattr(call, name, None if value is None else tuple(value))
    for part in (call.resource, call.insights):
        if "_rank" in part:
            part["_rank"] = tuple(part["_rank"])
    return call


def _encode_window(window: Window) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for f in dataclass_fields(Window):
        value = getattr(window, f.name)
        if f.name == "queue_values":
            value = {str(k): v for k, v in value.items() if v}
        elif isinstance(value, Counter):
            value = {k: v for k, v in value.items() if v}
        elif isinstance(value, set):
            value = sorted(value)
        doc[f.name] = value
    return doc


def _decode_window(doc: dict[str, Any]) -> Window:
    window = Window()
    for f in dataclass_fields(Window):
        value = doc[f.name]
        if f.name == "queue_values":
            value = Counter({int(k): v for k, v in value.items()})
        elif isinstance(getattr(window, f.name), Counter):
            value = Counter(value)
        elif isinstance(getattr(window, f.name), set):
            value = set(value)
        setattr(window, f.name, value)
    return window


def changed_entries(
    shard: Shard, calls: list[CallState], windows: list[WindowKey]
) -> list[tuple[str, bytes | None]]:
    """The changelog entries that bring a restored shard to the current state.

    ``calls`` and ``windows`` are what changed since the last checkpoint; evictions become
    tombstones. The meta entry comes last.
    """
    out: list[tuple[str, bytes | None]] = []
    for call in calls:
        out.append((f"c:{call.call_sid}", orjson.dumps(encode_call(call))))
    for sid in sorted(shard.evicted_calls):
        out.append((f"c:{sid}", None))
    for key in windows:
        open_window = shard.windows.get(key)
        if open_window is not None:
            out.append((f"w:{_wkey(key)}", orjson.dumps(_encode_window(open_window))))
        elif key in shard.closed:
            out.append((f"w:{_wkey(key)}", None))
            out.append((f"r:{_wkey(key)}", orjson.dumps(shard.closed[key])))
            seen = shard.closed_debugger.get(key)
            if seen:
                out.append((f"d:{_wkey(key)}", orjson.dumps(sorted(seen))))
    for key in sorted(shard.evicted_windows):
        out.append((f"w:{_wkey(key)}", None))
        out.append((f"r:{_wkey(key)}", None))
        out.append((f"d:{_wkey(key)}", None))
    shard.evicted_calls.clear()
    shard.evicted_windows.clear()
    meta = {"stream_time": shard.stream_time, "offsets": shard.offsets}
    out.append((META_KEY, orjson.dumps(meta)))
    return out


def restore_entry(shard: Shard, key: str, value: bytes | None) -> None:
    """Apply one changelog entry to a shard being restored (call rebuild_timers after)."""
    kind, _, name = key.partition(":")
    doc = None if value is None else orjson.loads(value)
    if kind == "m":
        if doc is not None:
            shard.stream_time = int(doc["stream_time"])
            shard.offsets = {str(k): int(v) for k, v in doc["offsets"].items()}
    elif kind == "c":
        if doc is None:
            shard.calls.pop(name, None)
        else:
            shard.calls[name] = _decode_call(doc)
    elif kind == "w":
        if doc is None:
            shard.windows.pop(_parse_wkey(name), None)
        else:
            shard.windows[_parse_wkey(name)] = _decode_window(doc)
    elif kind == "r":
        if doc is None:
            shard.closed.pop(_parse_wkey(name), None)
        else:
            doc["closed"] = True  # entries written before rows said so lack it
            shard.closed[_parse_wkey(name)] = doc
    elif kind == "d":
        if doc is None:
            shard.closed_debugger.pop(_parse_wkey(name), None)
        else:
            shard.closed_debugger[_parse_wkey(name)] = set(doc)
