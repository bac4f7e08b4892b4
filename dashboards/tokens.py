"""Read-access tokens for the dashboard and its JSON API, kept as SHA-256 hashes in SQLite.

A token is 32 random bytes (``vpd_`` + URL-safe base64), shown once when created. Only its
SHA-256 is stored (``<data_dir>/tokens.sqlite``): the token has 256 bits of entropy, so a fast
hash is as good as a slow one, and lookups by hash stay O(1). The stored hash is compared to the
presented one in constant time. Operator tokens see every subaccount and may act on alerts;
tenant tokens see the subaccounts they were issued for, read-only. A revoked token stops
working at once, also for browser sessions signed in with it.
"""

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from voicepulse.errors import ConfigError

__all__ = ["DEMO_TOKEN_NAME", "Principal", "TokenInfo", "TokenStore"]

DEMO_TOKEN_NAME = "demo"
_PREFIX = "vpd_"
_MIN_ADMIN = 24
_ACCOUNT = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    operator INTEGER NOT NULL,
    accounts TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: an operator (every subaccount) or a tenant (``accounts`` only)."""

    token_id: str
    name: str
    operator: bool
    accounts: frozenset[str]

    def may_see(self, account_sid: str) -> bool:
        return self.operator or account_sid in self.accounts


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token without its secret."""

    id: str
    name: str
    operator: bool
    accounts: tuple[str, ...]
    created_at: str
    revoked_at: str | None


_ADMIN = Principal("admin", "admin token", operator=True, accounts=frozenset())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens in a SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path, *, admin_token: SecretStr | None = None) -> None:
        # VOICEPULSE_ADMIN_TOKEN, when set, is one more operator token, configured not stored.
        admin = admin_token.get_secret_value().strip() if admin_token else ""
        if admin and len(admin) < _MIN_ADMIN:
            raise ConfigError(f"VOICEPULSE_ADMIN_TOKEN must be at least {_MIN_ADMIN} characters")
        self._admin = _digest(admin) if admin else None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def create(
        self, name: str, *, operator: bool = False, accounts: tuple[str, ...] = ()
    ) -> tuple[str, TokenInfo]:
        """A new token and its record; the token itself is returned here and never again."""
        if operator == bool(accounts):
            raise ConfigError("a token is either --operator or for one or more --tenant AC...")
        for account in accounts:
            if not _ACCOUNT.match(account):
                raise ConfigError(f"not an account SID: {account!r}")
        token = _PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id=secrets.token_hex(4),
            name=name,
            operator=operator,
            accounts=tuple(sorted(set(accounts))),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            revoked_at=None,
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    info.id,
                    name,
                    int(operator),
                    json.dumps(info.accounts),
                    _digest(token),
                    info.created_at,
                ),
            )
        return token, info

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, operator, accounts, created_at, revoked_at FROM tokens "
                "ORDER BY created_at, id"
            ).fetchall()
        return [_info(row) for row in rows]

    def revoke(self, token_id: str) -> bool:
        """Revoke by id; False when no live token has that id."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            cursor = self._db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, token_id),
            )
        return cursor.rowcount > 0

    def has_live(self) -> bool:
        if self._admin is not None:
            return True
        with self._lock:
            row = self._db.execute("SELECT 1 FROM tokens WHERE revoked_at IS NULL").fetchone()
        return row is not None

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a live token, or None."""
        if not token or len(token) > 200:
            return None
        presented = _digest(token)
        if self._admin is not None and hmac.compare_digest(self._admin, presented):
            return _ADMIN
        if not token.startswith(_PREFIX):
            return None
        row = self._live("sha256", presented)
        if row is None or not hmac.compare_digest(str(row[4]), presented):
            return None
        return _principal(row)

    def principal(self, token_id: str) -> Principal | None:
        """The principal of a live token by id (browser sessions re-check it per request)."""
        if token_id == _ADMIN.token_id:
            return _ADMIN if self._admin is not None else None
        row = self._live("id", token_id)
        return None if row is None else _principal(row)

    def _live(self, column: str, value: str) -> tuple[object, ...] | None:
        with self._lock:
            row: tuple[object, ...] | None = self._db.execute(
                "SELECT id, name, operator, accounts, sha256 FROM tokens "
                f"WHERE {column} = ? AND revoked_at IS NULL",
                (value,),
            ).fetchone()
        return row


def _principal(row: tuple[object, ...]) -> Principal:
    return Principal(str(row[0]), str(row[1]), bool(row[2]), frozenset(json.loads(str(row[3]))))


def _info(row: tuple[object, ...]) -> TokenInfo:
    return TokenInfo(
        id=str(row[0]),
        name=str(row[1]),
        operator=bool(row[2]),
        accounts=tuple(json.loads(str(row[3]))),
        created_at=str(row[4]),
        revoked_at=None if row[5] is None else str(row[5]),
    )
