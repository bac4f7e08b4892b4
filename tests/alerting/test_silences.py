"""Silences: one SQLite file shared by the CLI, the notifier and the dashboard."""

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerting.silences import SilenceError, SilenceStore, parse_duration
from voicepulse.cli import main

ACCOUNT = "AC" + "1" * 32
OTHER = "AC" + "2" * 32


def _alert(
    account: str = ACCOUNT, rule: str = "asr_low", group: str = "outbound"
) -> dict[str, str]:
    return {"account_sid": account, "rule": rule, "direction_group": group, "state": "firing"}


@pytest.fixture
def store(tmp_path: Path) -> SilenceStore:
    return SilenceStore.in_data_dir(tmp_path / "data")


def _in(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def test_a_silence_matches_its_account_rule_and_direction_only(store: SilenceStore) -> None:
    store.create(
        account_sid=ACCOUNT, rule="asr_low", direction_group="outbound", ends_at=_in(2),
        comment="carrier maintenance", created_by="ops",
    )  # fmt: skip
    assert store.matches(_alert())
    assert not store.matches(_alert(account=OTHER))
    assert not store.matches(_alert(rule="acd_low"))
    assert not store.matches(_alert(group="inbound"))


def test_unset_matchers_match_every_value(store: SilenceStore) -> None:
    store.create(rule="cps_saturated", ends_at=_in(1), comment="load test", created_by="ops")
    assert store.matches(_alert(account=OTHER, rule="cps_saturated"))
    assert store.matches(_alert(account="ISV", rule="cps_saturated", group="inbound"))
    assert not store.matches(_alert(rule="asr_low"))
    store.create(account_sid=OTHER, ends_at=_in(1), comment="tenant onboarding", created_by="ops")
    assert store.matches(_alert(account=OTHER, rule="toll_fraud_shape"))


def test_a_silence_holds_only_between_its_start_and_end(store: SilenceStore) -> None:
    silence = store.create(
        account_sid=ACCOUNT, starts_at=_in(1), ends_at=_in(3), comment="later", created_by="ops"
    )
    assert not store.matches(_alert())
    assert silence.state() == "pending"
    assert store.matches(_alert(), at=_in(2))
    assert silence.state(_in(2)) == "active"
    assert not store.matches(_alert(), at=_in(3))
    assert silence.state(_in(3)) == "expired"


def test_expire_ends_a_silence_now_and_keeps_it_listed(store: SilenceStore) -> None:
    kept = store.create(account_sid=OTHER, ends_at=_in(2), comment="kept", created_by="ops")
    ended = store.create(account_sid=ACCOUNT, ends_at=_in(2), comment="ended", created_by="ops")
    assert store.matches(_alert())
    expired = store.expire(ended.id)
    assert expired.state() == "expired"
    assert expired.ends_at <= datetime.now(UTC)
    assert not store.matches(_alert())
    assert store.expire(ended.id) == expired  # twice is harmless
    assert [s.id for s in store.silences(include_expired=False)] == [kept.id]
    assert {s.id for s in store.silences()} == {kept.id, ended.id}


def test_expiring_a_pending_silence_means_it_never_starts(store: SilenceStore) -> None:
    pending = store.create(starts_at=_in(1), ends_at=_in(2), comment="later", created_by="ops")
    store.expire(pending.id)
    assert not store.matches(_alert(), at=_in(1.5))


def test_bad_silences_are_refused_with_the_reason(store: SilenceStore) -> None:
    def create(**given: object) -> None:
        values: dict[str, object] = {"ends_at": _in(1), "comment": "why", "created_by": "ops"}
        store.create(**(values | given))  # type: ignore[arg-type]

    with pytest.raises(SilenceError, match="subaccount SID"):
        create(account_sid="AC123")
    with pytest.raises(SilenceError, match="direction group"):
        create(direction_group="sideways")
    with pytest.raises(SilenceError, match="end after it starts"):
        create(ends_at=_in(-1))
    with pytest.raises(SilenceError, match="comment"):
        create(comment="  ")
    with pytest.raises(SilenceError, match="no silence"):
        store.expire("nope")
    assert store.silences() == []


def test_the_store_is_in_wal_mode_and_seen_by_a_second_store(tmp_path: Path) -> None:
    first = SilenceStore.in_data_dir(tmp_path)
    second = SilenceStore.in_data_dir(tmp_path)
    made = first.create(account_sid=ACCOUNT, ends_at=_in(1), comment="c", created_by="ops")
    assert second.silences() == [made]
    assert second.get(made.id) == made
    with sqlite3.connect(tmp_path / "silences.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("1d", 86400), ("45s", 45), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "0m", "2h-1m"])
def test_parse_duration_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(SilenceError):
        parse_duration(text)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[..., Ran]:
    """``voicepulse alert ARGS --data-dir DATA``, run in this process; its errors are logged."""

    def run(data: Path, *args: str) -> Ran:
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="voicepulse"):
            code = main(["alert", *args, "--data-dir", str(data)])
        out, err = capsys.readouterr()
        return Ran(code, out, err + caplog.text)

    return run


def test_the_cli_silences_lists_and_expires(tmp_path: Path, cli: Callable[..., Ran]) -> None:
    data = tmp_path / "data"
    made = cli(data, "silence", "--account", ACCOUNT, "--rule", "asr_low", "--for", "2h",
                "--comment", "carrier maintenance", "--by", "alice")  # fmt: skip
    assert made.returncode == 0, made.stderr
    silence_id = made.stdout.strip()
    store = SilenceStore.in_data_dir(data)  # another process's view, as the notifier has it
    assert store.matches(_alert())
    assert store.get(silence_id).created_by == "alice"
    ends = store.get(silence_id).ends_at - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < ends <= timedelta(hours=2)

    table = cli(data, "silences")
    assert table.returncode == 0, table.stderr
    assert silence_id in table.stdout
    assert "active" in table.stdout
    assert "carrier maintenance" in table.stdout

    expired = cli(data, "expire", silence_id)
    assert expired.returncode == 0, expired.stderr
    assert not store.matches(_alert())
    assert silence_id not in cli(data, "silences").stdout
    listed = json.loads(cli(data, "silences", "--all", "--format", "json").stdout)
    assert [(s["id"], s["state"]) for s in listed] == [(silence_id, "expired")]


def test_the_cli_reports_a_bad_silence_and_stores_nothing(
    tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    data = tmp_path / "data"
    bad = cli(data, "silence", "--account", "ACnope", "--for", "2h", "--comment", "x")
    assert bad.returncode == 1
    assert "subaccount SID" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = cli(data, "expire", "nope")
    assert unknown.returncode == 1
    assert "no silence" in unknown.stderr
    assert SilenceStore.in_data_dir(data).silences() == []
