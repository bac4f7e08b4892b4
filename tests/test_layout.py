"""The simulated Twilio stays off the product's path: no production package imports it.

``simulator/`` is a tool (load driver, traffic model, ground truth, fake REST API) for the
composition, the tests and the benchmarks; what runs in production must work without it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("ingest", "processors", "warehouse", "alerting", "dashboards")


def imported_modules(source: str) -> set[str]:
    """The absolute module names a source file imports, wherever the import statement is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _imports_simulator(source: str) -> bool:
    return any(name.split(".")[0] == "simulator" for name in imported_modules(source))


@pytest.mark.parametrize("package", PRODUCTION)
def test_no_production_package_imports_the_simulator(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    found = [
        str(path.relative_to(ROOT))
        for path in files
        if _imports_simulator(path.read_text(encoding="utf-8"))
    ]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "import simulator\n",
        "import simulator.traffic as t\n",
        "from simulator import Simulator\n",
        "from simulator.fake_twilio import serve_fake_twilio\n",
        "def f() -> None:\n    from simulator.truth import expected_rows\n",
    ],
)
def test_the_check_sees_every_form_of_import(source: str) -> None:
    assert _imports_simulator(source)


def test_the_check_ignores_names_that_only_look_alike() -> None:
    assert not _imports_simulator("import simulators\nfrom ingest import simulator_clock\n")
    assert not _imports_simulator("from . import simulator\n")
