"""The public URL Twilio called, rebuilt from what the receiver sees.

Behind a proxy or TLS terminator the app sees ``http://internal:8000/...`` while Twilio signed
``https://voice.example.com/...``. The scheme and host come from, in order:

1. the configured public base URL (``public_base_url``), when set;
2. ``Forwarded`` (RFC 7239) or ``X-Forwarded-Proto/Host/Port``, only when the connection comes
   from a configured trusted proxy address; the rightmost value, the one that proxy set,
   wins (anything to its left could have come from the client);
3. the request's own scheme and ``Host`` header.

The path and the query string are the raw bytes of the request line, never re-encoded.
"""

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

from starlette.types import Scope

__all__ = ["PublicUrl"]

_DEFAULT_PORT: Final = {"http": "80", "https": "443"}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PublicUrl:
    """Rebuilds the URL that Twilio requested, for the signature check."""

    def __init__(self, base_url: str | None = None, trusted_proxies: Iterable[str] = ()) -> None:
        self._base = base_url.rstrip("/") if base_url else None
        self._trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies
        )

    def __call__(self, scope: Scope) -> str:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        url = self._origin(scope) + raw_path.decode("latin-1")
        query: bytes = scope.get("query_string", b"")
        return f"{url}?{query.decode('latin-1')}" if query else url

    def is_trusted(self, client: tuple[str, int] | None) -> bool:
        """True when the peer address is one of the configured trusted proxies."""
        if client is None or not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def _origin(self, scope: Scope) -> str:
        if self._base is not None:
            return self._base
        scheme: str = scope.get("scheme", "http")
        if self.is_trusted(scope.get("client")):
            headers = _headers(scope)
            scheme, host = _forwarded(headers, scheme, headers.get("host", ""))
        else:
            host = _host(scope)
        return f"{scheme}://{host}"


def _host(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return str(value.decode("latin-1"))
    return ""


def _headers(scope: Scope) -> dict[str, str]:
    """Header values by lower-case name; a repeated header is joined with commas."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def _forwarded(headers: Mapping[str, str], scheme: str, host: str) -> tuple[str, str]:
    element = _last_forwarded_element(headers.get("forwarded"))
    proto = element.get("proto") or _last(headers.get("x-forwarded-proto"))
    forwarded_host = element.get("host") or _last(headers.get("x-forwarded-host"))
    port = _last(headers.get("x-forwarded-port"))
    scheme = proto.lower() if proto else scheme
    host = forwarded_host or host
    if port and not _has_port(host) and port != _DEFAULT_PORT.get(scheme):
        host = f"{host}:{port}"
    return scheme, host


def _last(value: str | None) -> str | None:
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def _last_forwarded_element(value: str | None) -> dict[str, str]:
    if not value:
        return {}
    element = value.rsplit(",", 1)[-1]
    pairs: dict[str, str] = {}
    for part in element.split(";"):
        name, separator, text = part.partition("=")
        if separator:
            pairs[name.strip().lower()] = text.strip().strip('"')
    return pairs


def _has_port(host: str) -> bool:
    if host.startswith("["):
        return "]:" in host
    return ":" in host
