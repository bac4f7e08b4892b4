"""The live tenants registry: reloaded without a restart, topped up with fetched tokens.

Guarantees:

- Reload on SIGHUP or when the tenants file changes (checked every
  ``tenants_reload_interval_s``). The new registry replaces the old one in one assignment, so a
  request in flight keeps the registry it started with and is never dropped.
- A tenants file with an error keeps the old registry; the log says exactly what is wrong
  (file, entry, field), and ``voicepulse_ingest_tenants_reload_errors_total`` counts it.
- With a :class:`TokenFetcher`, an AccountSid not in the file that belongs to a parent marked
  ``fetch_subaccount_tokens`` is looked up with the parent's credentials on first sight and
  cached; after a signature mismatch it is fetched again, at most once per
  ``token_refresh_interval_s`` per account (a forged request cannot make us hammer Twilio).
"""

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from ingest.tenants import Tenant, TenantRegistry, load_tenants
from voicepulse.errors import ConfigError

__all__ = ["TenantSource", "TokenFetcher"]

logger = logging.getLogger(__name__)


class TokenFetcher(Protocol):
    """Looks up a subaccount with its parent's credentials (Twilio's Accounts API)."""

    async def fetch(self, parent: Tenant, account_sid: str) -> Tenant | None:
        """The subaccount with its current token, or None when it is not the parent's."""
        ...

    async def close(self) -> None: ...


class TenantSource:
    """Where the receiver looks tenants up; see the module docstring for the guarantees."""

    def __init__(
        self,
        registry: TenantRegistry,
        *,
        path: Path | None = None,
        shared_keys: Mapping[str, SecretStr] | None = None,
        fetcher: TokenFetcher | None = None,
        reload_interval_s: float = 2.0,
        refresh_interval_s: float = 60.0,
        on_reload_error: Callable[[], None] | None = None,
    ) -> None:
        self._registry = registry
        self._path = path
        self._shared_keys = dict(shared_keys or {})
        self._fetcher = fetcher
        self._reload_interval_s = reload_interval_s
        self._refresh_interval_s = refresh_interval_s
        self.on_reload_error = on_reload_error
        self._fetched: dict[str, Tenant] = {}
        self._last_fetch: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[Tenant | None]] = {}
        self._stamp = _stamp(path) if path is not None else None
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    def from_file(cls, path: Path, **options: object) -> "TenantSource":
        """Load ``path`` now (a bad file is a :class:`ConfigError` at start-up)."""
        return cls(load_tenants(path), path=path, **options)  # type: ignore[arg-type]

    @property
    def registry(self) -> TenantRegistry:
        return self._registry

    def get(self, account_sid: str) -> Tenant | None:
        """The tenant from the file, else a fetched one; never waits."""
        return self._registry.get(account_sid) or self._fetched.get(account_sid)

    def shared_key(self, key_id: str) -> SecretStr | None:
        return self._registry.shared_keys.get(key_id) or self._shared_keys.get(key_id)

    async def resolve(self, account_sid: str, claimed_parent: str | None) -> Tenant | None:
        """:meth:`get`, else (with a fetcher) a lookup under the claimed or configured parents."""
        tenant = self.get(account_sid)
        if tenant is not None or self._fetcher is None:
            return tenant
        return await self._fetch_once(account_sid, claimed_parent)

    async def refresh(self, account_sid: str) -> Tenant | None:
        """After a mismatch: a fetched tenant whose token changed, else None (rate-limited)."""
        known = self._fetched.get(account_sid)
        if known is None or self._fetcher is None or account_sid in self._registry:
            return None
        fresh = await self._fetch_once(account_sid, known.parent_account_sid)
        if fresh is None or fresh.auth_tokens == known.auth_tokens:
            return None
        return fresh

    def reload(self) -> bool:
        """Read the tenants file again; on an error keep the old registry and log it."""
        if self._path is None:
            return False
        self._stamp = _stamp(self._path)
        try:
            registry = load_tenants(self._path)
        except ConfigError as exc:
            logger.error("tenants file not reloaded, keeping the previous one: %s", exc)
            if self.on_reload_error is not None:
                self.on_reload_error()
            return False
        self._registry = registry
        logger.info("tenants file %s reloaded: %d tenants", self._path, len(registry))
        return True

    async def start(self) -> None:
        """Watch the file and listen for SIGHUP (when running in the main thread)."""
        if self._path is None or self._watcher is not None:
            return
        self._watcher = asyncio.create_task(self._watch(), name="tenants-watcher")
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)

    async def stop(self) -> None:
        """Stop watching, cancel lookups in flight, close the fetcher; harmless twice."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for task in list(self._inflight.values()):
            task.cancel()
        if self._fetcher is not None:
            await self._fetcher.close()

    async def _watch(self) -> None:
        assert self._path is not None
        while True:
            await asyncio.sleep(self._reload_interval_s)
            if _stamp(self._path) != self._stamp:
                self.reload()

    async def _fetch_once(self, account_sid: str, claimed_parent: str | None) -> Tenant | None:
        running = self._inflight.get(account_sid)
        if running is not None:
            return await asyncio.shield(running)
        last = self._last_fetch.get(account_sid)
        if last is not None and time.monotonic() - last < self._refresh_interval_s:
            return self._fetched.get(account_sid)
        self._last_fetch[account_sid] = time.monotonic()
        task = asyncio.create_task(self._fetch(account_sid, claimed_parent))
        self._inflight[account_sid] = task
        task.add_done_callback(lambda _: self._inflight.pop(account_sid, None))
        return await asyncio.shield(task)

    async def _fetch(self, account_sid: str, claimed_parent: str | None) -> Tenant | None:
        assert self._fetcher is not None
        for parent in self._parents(claimed_parent):
            tenant = await self._fetcher.fetch(parent, account_sid)
            if tenant is not None:
                self._fetched[account_sid] = tenant
                logger.info(
                    "fetched the token of %s from parent %s", account_sid, parent.account_sid
                )
                return tenant
        return None

    def _parents(self, claimed: str | None) -> list[Tenant]:
        parents = [t for t in self._registry.values() if t.fetch_subaccount_tokens]
        if claimed is not None:
            parents = [t for t in parents if t.account_sid == claimed]
        return parents


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
