"""X-Twilio-Signature checks (TWILIO.md, "Signatures").

Twilio signs the full URL it requested, then for a form POST every parameter sorted by name
(case-sensitive), each name followed by its value, a repeated name once per distinct value in
sorted order; HMAC-SHA1 with the account's auth token, base64. Twilio is inconsistent about the
port, so the URL is tried with and without it, as the twilio SDK does.
"""

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

__all__ = ["form_payload", "is_valid_signature", "sign", "url_variants"]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def form_payload(params: Iterable[tuple[str, str]]) -> str:
    """The parameters as Twilio appends them to the URL before signing."""
    return "".join(name + value for name, value in sorted(set(params)))


def sign(token: str, url: str, payload: str = "") -> str:
    """The signature Twilio would send for ``url`` and the signed ``payload``."""
    digest = hmac.new(token.encode(), (url + payload).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> tuple[str, str]:
    """``url`` without its port and with its scheme's default port made explicit."""
    parts = urlsplit(url)
    if parts.port is not None:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])), url
    port = _DEFAULT_PORTS.get(parts.scheme, 80)
    return url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))


def is_valid_signature(
    url: str,
    params: Sequence[tuple[str, str]],
    signature: str,
    tokens: Sequence[SecretStr],
) -> bool:
    """True when ``signature`` matches ``url`` and ``params`` under any of ``tokens``."""
    if not signature:
        return False
    payload = form_payload(params)
    given = signature.encode()
    matched = False
    for candidate_url in url_variants(url):
        for token in tokens:
            expected = sign(token.get_secret_value(), candidate_url, payload).encode()
            matched |= hmac.compare_digest(expected, given)
    return matched
