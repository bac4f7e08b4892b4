"""The front door: `voicepulse run` on the embedded default, `voicepulse sql`, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

VOICEPULSE = [sys.executable, "-m", "voicepulse.cli"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}


def _sql(data_dir: Path, query: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VOICEPULSE, "sql", "--data-dir", str(data_dir), "--format", "json", query],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )


def test_run_fills_the_warehouse_with_demo_traffic_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = subprocess.Popen(
        [*VOICEPULSE, "run", "--data-dir", str(data), "--port", "0", "--dashboard-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_env(), "VOICEPULSE_ALERT_METRICS_PORT": "0"},  # not the fixed 9109
    )
    query = (
        "SELECT account_sid, sum(attempts) AS attempts FROM health_minute "
        "WHERE account_sid <> 'ISV' GROUP BY ALL"
    )
    try:
        deadline = time.monotonic() + 60
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(rows) < 3:
            time.sleep(1)
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            result = _sql(data, query)
            if result.returncode == 0:
                rows = json.loads(result.stdout)
        assert len(rows) == 3, f"demo traffic for three tenants did not arrive: {rows}"
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert "Traceback" not in err
    assert "Receiver:  http://127.0.0.1:" in out
    assert "voicepulse sql" in out
    assert "Dashboard: http://127.0.0.1:" in out
    assert "Demo login token (an operator token for this demo only): vpd_" in out
    after = _sql(data, query)
    assert after.returncode == 0, after.stderr
    assert sum(int(str(r["attempts"])) for r in json.loads(after.stdout)) >= sum(
        int(str(r["attempts"])) for r in rows
    )


def test_sql_without_a_warehouse_says_how_to_make_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _sql(data, "SELECT 1")
    assert result.returncode == 1
    assert "no warehouse at" in result.stderr
    assert "Traceback" not in result.stderr
