"""``voicepulse shell``: an interactive DuckDB prompt with the lake attached read-only.

DuckDB's Python package has no shell of its own, so this is a small one: statements end with
``;`` (they may span lines), results print as tables (or CSV/JSON with ``.mode``), an error is
shown and the prompt goes on. Dot commands: ``.tables``, ``.schema TABLE``,
``.mode table|csv|json``, ``.help``, ``.quit``. Reading from a pipe works too
(``voicepulse shell < queries.sql``).
"""

from collections.abc import Callable, Iterator
from typing import TextIO, cast, get_args

import duckdb

from warehouse.render import Format, write_relation

__all__ = ["Shell", "prompt_lines"]

_HELP = """\
Statements end with ';'. Tables: .tables   Columns: .schema TABLE
Output: .mode table|csv|json   Leave: .quit (or Ctrl-D)"""


class Shell:
    """A read-eval-print loop over one DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, out: TextIO, err: TextIO) -> None:
        self._con = con
        self._out = out
        self._err = err
        self._mode: Format = "table"
        self._commands: dict[str, Callable[[str], bool]] = {
            ".quit": lambda _: False,
            ".exit": lambda _: False,
            ".help": self._help,
            ".tables": self._tables,
            ".schema": self._schema,
            ".mode": self._set_mode,
        }

    def run(self, lines: Iterator[str]) -> int:
        """Run statements from ``lines`` until they end or ``.quit``; return an exit code."""
        failed = False
        pending: list[str] = []
        for line in lines:
            stripped = line.strip()
            if not pending and stripped.startswith("."):
                name, _, argument = stripped.partition(" ")
                command = self._commands.get(name)
                if command is None:
                    self._err.write(f"unknown command {name}: try .help\n")
                    continue
                if not command(argument.strip()):
                    break
                continue
            pending.append(line)
            if stripped.endswith(";"):
                failed |= not self._execute("\n".join(pending))
                pending = []
        if pending and "".join(pending).strip():
            failed |= not self._execute("\n".join(pending))
        return 1 if failed else 0

    def _execute(self, sql: str) -> bool:
        try:
            relation = self._con.sql(sql)
            if relation is not None:
                self._print(relation)
        except duckdb.Error as exc:
            self._err.write(f"Error: {exc}\n")
            return False
        return True

    def _print(self, relation: duckdb.DuckDBPyRelation) -> None:
        write_relation(relation, self._mode, self._out, indent=False)

    def _help(self, _: str) -> bool:
        self._out.write(_HELP + "\n")
        return True

    def _tables(self, _: str) -> bool:
        self._execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY 1;"
        )
        return True

    def _schema(self, table: str) -> bool:
        if not table.isidentifier():
            self._err.write("usage: .schema TABLE\n")
            return True
        self._execute(f"DESCRIBE {table};")
        return True

    def _set_mode(self, mode: str) -> bool:
        if mode in get_args(Format):
            self._mode = cast(Format, mode)
        else:
            self._err.write("usage: .mode table|csv|json\n")
        return True


def prompt_lines(stdin: TextIO, out: TextIO) -> Iterator[str]:
    """Lines typed at a prompt (with readline history) or read from a pipe."""
    if not stdin.isatty():
        yield from (line.rstrip("\n") for line in stdin)
        return
    import readline  # noqa: F401 - enables line editing and history for input()

    out.write("VoicePulse warehouse (DuckDB, read-only). .help for help, .quit to leave.\n")
    continuation = False
    while True:
        try:
            line = input("   ...> " if continuation else "lake> ")
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:
            out.write("\n")
            continuation = False
            continue
        continuation = not line.strip().endswith(";") and not line.strip().startswith(".")
        if not line.strip():
            continuation = False
        yield line
