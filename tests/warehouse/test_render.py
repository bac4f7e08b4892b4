"""Every type a DuckDB query can return prints in each format and reaches pandas.

DuckDB's ``test_all_types()`` returns one column per type it has (nested ones included), with
its minimum, maximum and NULL in three rows: the domain of the property, taken whole.
"""

import csv
import io
import json
import os
import subprocess
import sys
from typing import get_args

import duckdb
import pytest

import voicepulse
from tests.conftest import SettingsFactory
from voicepulse.settings import Settings
from warehouse.lake import open_lake
from warehouse.render import Format, write_relation
from warehouse.schema import migrate

_ALL = duckdb.connect().sql("SELECT * FROM test_all_types()").columns


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@pytest.mark.parametrize("column", _ALL)
@pytest.mark.parametrize("fmt", get_args(Format))
def test_every_type_prints_in_every_format(
    con: duckdb.DuckDBPyConnection, column: str, fmt: Format
) -> None:
    out = io.StringIO()
    write_relation(con.sql(f'SELECT "{column}" FROM test_all_types()'), fmt, out)
    text = out.getvalue()
    if fmt == "json":
        rows = json.loads(text)
        assert [list(row) for row in rows] == [[column]] * 3
        assert rows[2][column] is None
        assert rows[0][column] is not None
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == [column]
        assert len(rows) == 4
    else:
        assert column in text


@pytest.mark.parametrize("column", _ALL)
def test_every_type_reaches_pandas(con: duckdb.DuckDBPyConnection, column: str) -> None:
    frame = voicepulse.dataframe(con.sql(f'SELECT "{column}" FROM test_all_types()'))
    assert list(frame.columns) == [column]
    assert len(frame) == 3


def test_json_keeps_values_json_cannot_hold_as_text(con: duckdb.DuckDBPyConnection) -> None:
    out = io.StringIO()
    query = (
        "SELECT 170141183460469231731687303715884105727::HUGEINT AS big, 'nan'::DOUBLE AS nan, "
        "1.10::DECIMAL(5, 2) AS money, MAP {1: 'a'} AS m, TIMESTAMPTZ '2026-12-04 10:00:00+00'"
        " AS at"
    )
    write_relation(con.sql(query), "json", out)
    [row] = json.loads(out.getvalue())
    assert row["big"] == "170141183460469231731687303715884105727"
    assert row["nan"] == "nan"
    assert row["money"] == "1.10"
    assert row["m"] == {"1": "a"}
    assert row["at"].startswith("2026-12-04")


@pytest.fixture
def warehouse(settings_factory: SettingsFactory) -> Settings:
    settings = settings_factory()
    con = open_lake(settings)
    migrate(con)
    con.close()
    return settings


@pytest.mark.parametrize("fmt", get_args(Format))
def test_voicepulse_sql_prints_a_time_with_a_zone_and_every_type(
    warehouse: Settings, fmt: Format
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    env["VOICEPULSE_DATA_DIR"] = str(warehouse.data_dir)
    for query in ("SELECT now() AS now", "SELECT * FROM test_all_types()"):
        result = subprocess.run(
            [sys.executable, "-m", "voicepulse.cli", "sql", "--format", fmt, query],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()
