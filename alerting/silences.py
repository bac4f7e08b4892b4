"""Silences: "tell no notifier about these alerts until then", shared by every process.

A silence matches alerts by subaccount, rule and direction group (each one, or all of them) for
a span of wall-clock time. The store is one SQLite file in the data directory, in WAL mode, so
that the CLI writes while the notifier and the dashboard read, each in its own process.

What a silence promises: while it is active, the notifiers are told nothing about the alerts it
matches. The alert still changes state and its history is still written; only notifying stops.
Expiring a silence ends it now; past silences stay listed.

    VoicePulseError
    └── SilenceError          a silence that cannot be made or found (the message says why)
"""

import contextlib
import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from voicepulse.errors import VoicePulseError
from voicepulse.messages import ISV_ACCOUNT

__all__ = ["Silence", "SilenceError", "SilenceStore", "parse_duration"]

FILE_NAME: Final = "silences.sqlite"
_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    account_sid TEXT,      -- NULL: every subaccount (and the ISV rows)
    rule TEXT,             -- NULL: every rule
    direction_group TEXT,  -- NULL: both
    starts_at TEXT NOT NULL,  -- UTC, ISO 8601 with microseconds: sorts as text
    ends_at TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS silences_ends_at ON silences (ends_at);
"""
_ACCOUNT: Final = re.compile(r"^AC[0-9a-fA-F]{32}$")
_RULE: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SilenceError(VoicePulseError):
    """A silence that cannot be created, or an id that names none."""


SilenceState = Literal["pending", "active", "expired"]


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence; ``None`` in ``account_sid``, ``rule`` or ``direction_group`` means all."""

    id: str
    account_sid: str | None
    rule: str | None
    direction_group: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime

    def state(self, at: datetime | None = None) -> SilenceState:
        at = at or _now()
        if at < self.starts_at:
            return "pending"
        return "active" if at < self.ends_at else "expired"

    def covers(self, account_sid: str, rule: str, direction_group: str | None) -> bool:
        """True when the silence's matchers all accept this alert (whatever the time)."""
        return (
            self.account_sid in (None, account_sid)
            and self.rule in (None, rule)
            and self.direction_group in (None, direction_group)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_sid": self.account_sid,
            "rule": self.rule,
            "direction_group": self.direction_group,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


class SilenceStore:
    """The silences in ``<data_dir>/silences.sqlite``; safe to share between processes.

    Every call opens its own short connection, so one store may be used from any thread, and
    a silence created by another process is seen by the next call here.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            if con.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:
                con.executescript(_SCHEMA)
                con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> "SilenceStore":
        return cls(data_dir / FILE_NAME)

    def create(
        self,
        *,
        ends_at: datetime,
        comment: str,
        created_by: str,
        account_sid: str | None = None,
        rule: str | None = None,
        direction_group: str | None = None,
        starts_at: datetime | None = None,
    ) -> Silence:
        """Store a new silence and return it; :class:`SilenceError` if it is malformed."""
        now = _now()
        silence = Silence(
            id=uuid.uuid4().hex[:12],
            account_sid=_account(account_sid),
            rule=_rule(rule),
            direction_group=_direction(direction_group),
            starts_at=_utc(starts_at or now),
            ends_at=_utc(ends_at),
            comment=comment.strip(),
            created_by=created_by.strip(),
            created_at=now,
        )
        _check(silence)
        with self._connect() as con:
            con.execute("INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _to_row(silence))
        return silence

    def get(self, silence_id: str) -> Silence:
        with self._connect() as con:
            row = con.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        if row is None:
            raise SilenceError(f"no silence with id {silence_id!r}")
        return _from_row(row)

    def silences(
        self, *, include_expired: bool = True, at: datetime | None = None
    ) -> list[Silence]:
        """Silences that have not ended (pending and active), and the past ones too unless
        ``include_expired`` is false; the newest first."""
        query = "SELECT * FROM silences"
        params: tuple[str, ...] = ()
        if not include_expired:
            query += " WHERE ends_at > ?"
            params = (_text(at or _now()),)
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY created_at DESC, id", params).fetchall()
        return [_from_row(row) for row in rows]

    def active(self, at: datetime | None = None) -> list[Silence]:
        """The silences in force at ``at`` (default: now)."""
        moment = _text(at or _now())
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM silences WHERE starts_at <= ? AND ends_at > ? ORDER BY id",
                (moment, moment),
            ).fetchall()
        return [_from_row(row) for row in rows]

    def expire(self, silence_id: str) -> Silence:
        """End the silence now (a pending one never starts); harmless on an ended one."""
        now = _now()
        with self._connect() as con:
            con.execute(
                "UPDATE silences SET ends_at = ?, starts_at = min(starts_at, ?)"
                " WHERE id = ? AND ends_at > ?",
                (_text(now), _text(now), silence_id, _text(now)),
            )
        return self.get(silence_id)

    def matching(self, alert: Mapping[str, Any], at: datetime | None = None) -> list[Silence]:
        """The active silences that cover ``alert`` (a mapping with ``account_sid``, ``rule``
        and ``direction_group``, such as an ``AlertChange`` envelope's fields)."""
        account, rule = str(alert.get("account_sid")), str(alert.get("rule"))
        group = alert.get("direction_group")
        return [s for s in self.active(at) if s.covers(account, rule, group)]

    def matches(self, alert: Mapping[str, Any], at: datetime | None = None) -> bool:
        """True when an active silence covers ``alert``: no notifier is told about it."""
        return bool(self.matching(alert, at))

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10.0)
        try:
            with con:  # one transaction: committed on success, rolled back on error
                yield con
        except sqlite3.Error as exc:
            raise SilenceError(f"silence store {self.path}: {exc}") from exc
        finally:
            con.close()


def parse_duration(text: str) -> timedelta:
    """``2h``, ``90m``, ``1h30m``, ``1d``, ``45s``: a positive span of time."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise SilenceError(f"not a duration: {text!r} (e.g. 2h, 90m, 1h30m, 1d)")
    seconds = sum(float(number) * _UNIT_S[unit] for number, unit in parts)
    if seconds <= 0:
        raise SilenceError(f"duration must be positive: {text!r}")
    return timedelta(seconds=seconds)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise SilenceError(f"time without a UTC offset: {moment.isoformat()}")
    return moment.astimezone(UTC)


def _text(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _account(value: str | None) -> str | None:
    if not value or value == "all":
        return None
    if value.upper() == ISV_ACCOUNT:
        return ISV_ACCOUNT
    if not _ACCOUNT.match(value):
        raise SilenceError(f"not a subaccount SID (AC + 32 hex digits) or ISV: {value!r}")
    return "AC" + value[2:].lower()


def _rule(value: str | None) -> str | None:
    if not value or value == "all":
        return None
    if not _RULE.match(value):
        raise SilenceError(f"not a rule name: {value!r} (e.g. asr_low)")
    return value


def _direction(value: str | None) -> str | None:
    if not value or value == "all":
        return None
    if value not in ("outbound", "inbound"):
        raise SilenceError(f"direction group must be outbound or inbound, not {value!r}")
    return value


def _check(silence: Silence) -> None:
    if silence.ends_at <= silence.starts_at:
        raise SilenceError("a silence must end after it starts")
    if not silence.comment:
        raise SilenceError("a silence needs a comment (why it is there)")
    if not silence.created_by:
        raise SilenceError("a silence needs its author (created_by)")


def _to_row(s: Silence) -> tuple[str | None, ...]:
    return (
        s.id,
        s.account_sid,
        s.rule,
        s.direction_group,
        _text(s.starts_at),
        _text(s.ends_at),
        s.comment,
        s.created_by,
        _text(s.created_at),
    )


def _from_row(row: tuple[Any, ...]) -> Silence:
    sid, account, rule, group, starts, ends, comment, by, created = row
    return Silence(
        id=sid,
        account_sid=account,
        rule=rule,
        direction_group=group,
        starts_at=datetime.fromisoformat(starts),
        ends_at=datetime.fromisoformat(ends),
        comment=comment,
        created_by=by,
        created_at=datetime.fromisoformat(created),
    )
