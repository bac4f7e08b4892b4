"""The dashboard as a pipeline stage (``voicepulse dashboard``, and inside ``voicepulse run``).

It refuses to listen beyond loopback while no token exists: there would be no way in but an
open door. For the demo (``voicepulse run`` on the demo tenants) it makes an operator token
named ``demo`` when there is none to sign in with, and prints it once.
"""

import ipaddress
import logging

from dashboards.app import create_app, tokens_path
from dashboards.reader import Reader
from dashboards.tokens import DEMO_TOKEN_NAME, TokenStore
from ingest.server import HttpServerStage
from voicepulse.errors import ConfigError
from voicepulse.settings import Settings

__all__ = ["dashboard_stage", "demo_token", "is_loopback"]

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dashboard_stage(settings: Settings) -> HttpServerStage:
    """The dashboard on ``dashboard_host:dashboard_port``; ConfigError when it would be open
    beyond loopback without a token."""
    store = TokenStore(tokens_path(settings), admin_token=settings.admin_token)
    if not is_loopback(settings.dashboard_host) and not store.has_live():
        store.close()
        raise ConfigError(
            f"the dashboard would listen on {settings.dashboard_host} with no token: create one "
            "with `voicepulse tokens create --operator --name ...` (or listen on 127.0.0.1)"
        )
    reader = Reader(settings, ttl_s=settings.dashboard_cache_ttl_s)
    app = create_app(settings, tokens=store, reader=reader, owns_tokens=True)
    return HttpServerStage("dashboard", app, settings.dashboard_host, settings.dashboard_port)


def demo_token(settings: Settings) -> str | None:
    """A fresh demo operator token when no other token exists (earlier demo tokens are
    revoked: only their hashes were kept, so they cannot be shown again); else None."""
    store = TokenStore(tokens_path(settings))
    try:
        live = [t for t in store.list() if t.revoked_at is None]
        if any(t.name != DEMO_TOKEN_NAME for t in live):
            return None
        for old in live:
            store.revoke(old.id)
        token, _ = store.create(DEMO_TOKEN_NAME, operator=True)
        return token
    finally:
        store.close()
