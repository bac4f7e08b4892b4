"""X-Twilio-Signature checks (docs/twilio.md, "Signatures").

Twilio signs the full URL it requested, then for a form POST every parameter sorted by name
(case-sensitive), each name followed by its value, a repeated name once per distinct value in
sorted order; HMAC with the account's auth token (or a shared key), base64.

- GET: the parameters are in the URL; nothing is appended.
- JSON bodies: the URL carries ``bodySHA256`` (hex SHA-256 of the raw body) and only the URL is
  signed; both the HMAC and the body hash must match.
- Twilio is inconsistent about the port, so the URL is tried without and with it.
- ``X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256`` announces the
  shared-key scheme: the secret is the shared key named ``<id>``, the hash the one named.

The twilio SDK's ``RequestValidator.validate`` is the reference: :func:`verify` accepts exactly
what it accepts (the property test in tests/ingest/test_signature_oracle.py shows it), including
how it rebuilds the URL with and without the port, but signs each candidate once instead of
twice and stops at the first match. Every comparison of a signature or a hash is constant-time.
"""

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import ParseResult, parse_qs, urlparse

from pydantic import SecretStr

__all__ = [
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SignatureSettings",
    "form_payload",
    "is_valid_signature",
    "parse_signature_settings",
    "sign",
    "url_variants",
    "verify",
]

HMAC_SHA1: Final = "HMAC_SHA1"
HMAC_SHA256: Final = "HMAC_SHA256"
_DIGESTS: Final = {HMAC_SHA1: "sha1", HMAC_SHA256: "sha256"}
_BODY_HASH: Final = "bodySHA256"


@dataclass(frozen=True, slots=True)
class SignatureSettings:
    """What ``X-Twilio-Webhooks-Signature-Settings`` announces; no header: the auth token, SHA1."""

    key_id: str | None
    algorithm: str

    @property
    def supported(self) -> bool:
        return self.algorithm in _DIGESTS


_AUTH_TOKEN_SHA1: Final = SignatureSettings(None, HMAC_SHA1)


def parse_signature_settings(header: str | None) -> SignatureSettings:
    """Parse ``key=<id>,algorithm=<name>``; a missing algorithm means HMAC_SHA1, as in the SDK."""
    if not header:
        return _AUTH_TOKEN_SHA1
    found: dict[str, str] = {}
    for part in (header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and value.strip():
            found.setdefault(name.strip(), value.strip())
    return SignatureSettings(found.get("key"), found.get("algorithm", HMAC_SHA1).upper())


def form_payload(params: Iterable[tuple[str, str]]) -> str:
    """The parameters as Twilio appends them to the URL before signing."""
    return "".join(map("".join, sorted(set(params))))


def sign(token: str, url: str, payload: str = "", algorithm: str = HMAC_SHA1) -> str:
    """The signature Twilio would send for ``url`` and the signed ``payload``."""
    return _sign(token.encode(), (url + payload).encode(), _DIGESTS[algorithm]).decode()


def _sign(key: bytes, message: bytes, digest: str) -> bytes:
    return base64.b64encode(hmac.digest(key, message, digest))


def _remove_port(uri: ParseResult) -> str:
    # The SDK's remove_port, kept as it is so that both build the same candidate URLs.
    if not uri.port:
        return uri.geturl()
    return uri._replace(netloc=uri.netloc.split(":")[0]).geturl()


def _add_port(uri: ParseResult) -> str:
    if uri.port:
        return uri.geturl()
    port = 443 if uri.scheme == "https" else 80
    return uri._replace(netloc=f"{uri.netloc}:{port}").geturl()


@functools.lru_cache(maxsize=4096)
def url_variants(url: str) -> tuple[str, str]:
    """``url`` without its port and with its scheme's default port made explicit (the two
    URLs the SDK tries), the one in the form ``url`` came in first: it is the likelier match.

    Cached: a receiver sees the same few callback URLs over and over. Raises ValueError for a
    port that is not a number in 0..65535.
    """
    parsed = urlparse(url)
    without, with_port = _remove_port(parsed), _add_port(parsed)
    return (with_port, without) if parsed.port else (without, with_port)


@functools.lru_cache(maxsize=4096)
def _declared_body_hash(url: str) -> str | None:
    values = parse_qs(urlparse(url).query).get(_BODY_HASH)
    return values[0] if values else None


def verify(
    url: str,
    params: Sequence[tuple[str, str]] | None,
    signature: str,
    secrets: Sequence[bytes],
    *,
    algorithm: str = HMAC_SHA1,
    json_body: bytes | None = None,
) -> bool:
    """True when ``signature`` matches the request under any of ``secrets``.

    ``params``: the form parameters of a POST (None or empty for a GET). ``json_body``: the raw
    body of a JSON request, which must match the URL's ``bodySHA256``; the URL alone is signed.
    An unsupported algorithm, a malformed port or an empty signature is never valid.
    """
    digest = _DIGESTS.get(algorithm)
    if digest is None or not signature or not secrets:
        return False
    try:
        variants = url_variants(url)
    except ValueError:
        return False
    if json_body is not None:
        declared = _declared_body_hash(url)
        actual = hashlib.sha256(json_body).hexdigest()
        if declared is None or not hmac.compare_digest(actual.encode(), _ascii(declared)):
            return False
        payload = b""
    else:
        payload = form_payload(params).encode() if params else b""
    given = _ascii(signature)
    for candidate in dict.fromkeys(variants):
        message = candidate.encode() + payload
        for secret in secrets:
            if hmac.compare_digest(_sign(secret, message, digest), given):
                return True
    return False


def _ascii(text: str) -> bytes:
    # A signature or hash is ASCII; anything else can only mismatch, never raise.
    return text.encode("ascii", "replace")


def is_valid_signature(
    url: str,
    params: Sequence[tuple[str, str]],
    signature: str,
    tokens: Sequence[SecretStr],
) -> bool:
    """True when ``signature`` matches a form POST to ``url`` under any of ``tokens``."""
    secrets = [token.get_secret_value().encode() for token in tokens]
    return verify(url, params, signature, secrets)
