"""Opening the DuckLake warehouse: a catalog (SQLite file by default) plus Parquet data files.

The catalog is ``sqlite:PATH`` (the default, ``data/catalog.sqlite``) or a PostgreSQL URL
(``postgresql://user@host:port/db``, or DuckLake's own ``postgres:`` libpq form), so that
several machines can write and read one lake.

DuckDB's automatic extension install and load are switched off: the DuckLake, SQLite and
PostgreSQL extensions are loaded by path from their PyPI wheels, so a missing one is a clear
error at start, never a download or a hang.
"""

import importlib
import logging
import re
import sqlite3
from pathlib import Path

import duckdb

from voicepulse.errors import ConfigError, WarehouseError
from voicepulse.settings import Settings

__all__ = ["LAKE", "ducklake_catalog", "extension_path", "is_remote", "open_lake"]

logger = logging.getLogger(__name__)

LAKE = "lake"
_EXTENSIONS = {
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "ducklake": "duckdb_extension_ducklake",
    "httpfs": "duckdb_extension_httpfs",
}
_REMOTE = ("s3://", "s3a://", "s3n://", "r2://", "http://", "https://")
_POSTGRES_URL = ("postgresql://", "postgres://")


def open_lake(settings: Settings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A new DuckDB connection with the lake attached as ``lake`` and selected.

    Writers (the sink) create the catalog on first use; readers (analysts) attach it read-only
    and never block the writer: the SQLite catalog runs in WAL mode.
    """
    catalog = ducklake_catalog(settings.catalog_path)
    if catalog.startswith("sqlite:"):
        _prepare_sqlite_catalog(Path(catalog.removeprefix("sqlite:")), create=not read_only)
    data_path = settings.warehouse_data_path
    if not is_remote(data_path):
        Path(data_path or settings.parquet_dir).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    try:
        scanner = "postgres_scanner" if catalog.startswith("postgres:") else "sqlite_scanner"
        for name in (scanner, "ducklake"):
            con.load_extension(str(extension_path(name)))
        if is_remote(settings.warehouse_data_path):
            _object_storage(con, settings)
        if read_only:
            options = "READ_ONLY"
        else:
            # Inserts up to this many rows go into the catalog instead of a Parquet file each;
            # maintenance flushes them to files. (An ATTACH option: set_option crashes
            # DuckDB 1.5.5 once the lake has views.)
            options = f"DATA_INLINING_ROW_LIMIT {int(settings.warehouse_inline_row_limit)}"
        attach = f"ATTACH 'ducklake:{_quote(catalog)}' AS {LAKE}"
        try:
            con.execute(f"{attach} ({_data_path_option(settings, catalog)}, {options})")
        except duckdb.Error as exc:
            if not (catalog.startswith("postgres:") and _DATA_PATH_MISMATCH in str(exc)):
                raise
            # An existing PostgreSQL lake keeps the data path it was created with: other
            # machines share it, and a local spelling of the directory may not be theirs.
            logger.info("the lake keeps the data path stored in its PostgreSQL catalog")
            con.execute(f"{attach} ({options})")
        con.execute(f"USE {LAKE}")
    except duckdb.Error as exc:
        con.close()
        shown = _without_password(settings.catalog_path)
        raise WarehouseError(f"could not attach the DuckLake catalog {shown}: {exc}") from exc
    return con


_DATA_PATH_MISMATCH = "does not match existing data path"


def _data_path_option(settings: Settings, catalog: str) -> str:
    """The ATTACH option that says where the lake's Parquet files are.

    DuckLake stores the data path given when the lake was created and refuses another one.
    A SQLite catalog lives in the data directory beside its files, so any spelling of that
    directory (relative, absolute, through a link, after a move) names the same files: its
    absolute path is given with ``OVERRIDE_DATA_PATH``, for this connection only (the catalog
    keeps what it stores; the files' own paths are relative to it). A PostgreSQL catalog is
    shared by machines that may each name the files differently, so an existing one keeps its
    stored data path, unless ``warehouse_data_path`` says otherwise.
    """
    if settings.warehouse_data_path:
        return f"DATA_PATH '{_quote(settings.warehouse_data_path)}', OVERRIDE_DATA_PATH true"
    path = f"DATA_PATH '{_quote(str(settings.parquet_dir.resolve()))}/'"
    if catalog.startswith("postgres:"):
        return path  # creates a new lake there; an existing one keeps its own (see open_lake)
    return f"{path}, OVERRIDE_DATA_PATH true"


def is_remote(data_path: str | None) -> bool:
    """The lake's files are on object storage (S3 or S3-compatible, or HTTP)."""
    return data_path is not None and data_path.startswith(_REMOTE)


def _object_storage(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Load httpfs and give it the S3 settings as a temporary secret (never logged).

    Without any S3 setting, DuckDB's own persistent secrets (``CREATE PERSISTENT SECRET``)
    apply. A custom endpoint (an S3-compatible server) is addressed path-style, with TLS as
    its URL's scheme says.
    """
    con.load_extension(str(extension_path("httpfs")))
    options: dict[str, str] = {}
    if settings.s3_endpoint:
        endpoint = settings.s3_endpoint
        secure = not endpoint.startswith("http://")
        options |= {
            "ENDPOINT": endpoint.split("://", 1)[-1].rstrip("/"),
            "URL_STYLE": "path",
            "USE_SSL": "true" if secure else "false",
        }
    if settings.s3_region:
        options["REGION"] = settings.s3_region
    if settings.s3_access_key_id:
        options["KEY_ID"] = settings.s3_access_key_id
    if settings.s3_secret_access_key:
        options["SECRET"] = settings.s3_secret_access_key.get_secret_value()
    if settings.s3_session_token:
        options["SESSION_TOKEN"] = settings.s3_session_token.get_secret_value()
    if not options:
        return
    given = ", ".join(
        f"{key} {value}" if value in ("true", "false") else f"{key} '{_quote(value)}'"
        for key, value in options.items()
    )
    try:
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET voicepulse_s3 (TYPE s3, {given})")
    except duckdb.Error as exc:
        # The statement holds the secret: say what failed, never the statement.
        raise ConfigError(f"the S3 settings were refused: {type(exc).__name__}") from None


def ducklake_catalog(catalog: str) -> str:
    """The catalog as DuckLake's ATTACH takes it: a PostgreSQL URL becomes ``postgres:URL``."""
    if catalog.startswith(_POSTGRES_URL):
        return f"postgres:{catalog}"
    if catalog.startswith(("sqlite:", "postgres:", "duckdb:")):
        return catalog
    raise ConfigError(
        f"unknown catalog {_without_password(catalog)!r}: "
        "use sqlite:PATH or postgresql://user@host:port/database"
    )


def _without_password(catalog: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", catalog)


def extension_path(name: str) -> Path:
    """The ``.duckdb_extension`` file that the extension's wheel ships for this DuckDB."""
    module_name = _EXTENSIONS[name]
    hint = f"pip install {module_name.replace('_', '-')}=={duckdb.__version__}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"DuckDB extension {name} is not installed: {hint}") from exc
    assert module.__file__ is not None
    folder = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(folder.glob("*.duckdb_extension"))
    if not found:
        raise ConfigError(
            f"DuckDB extension {name} has no build for DuckDB {duckdb.__version__}: {hint}"
        )
    return found[0]


_WAL_KEEPERS: dict[Path, sqlite3.Connection] = {}


def _prepare_sqlite_catalog(path: Path, *, create: bool) -> None:
    if not path.exists():
        if not create:
            raise WarehouseError(
                f"no warehouse at {path}: start the pipeline (voicepulse run) to create it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    key = path.resolve()
    if key in _WAL_KEEPERS:
        return
    # WAL keeps readers from stalling the writer; the mode persists in the file.
    db = sqlite3.connect(path, check_same_thread=False)
    mode = db.execute("PRAGMA journal_mode").fetchone()
    if mode is None or str(mode[0]).lower() != "wal":
        db.execute("PRAGMA journal_mode=WAL")
    # SQLite deletes the -wal and -shm files when the last connection to the catalog closes;
    # a read-only reader opening it at that instant fails with "disk I/O error". One idle
    # connection held for the life of the process keeps both files in place.
    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    _WAL_KEEPERS[key] = db


def _quote(text: str) -> str:
    return text.replace("'", "''")
