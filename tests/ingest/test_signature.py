"""Signature checks against Twilio's worked example and the twilio SDK's signer."""

import hashlib

from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from ingest.signature import (
    HMAC_SHA1,
    HMAC_SHA256,
    SignatureSettings,
    is_valid_signature,
    parse_signature_settings,
    sign,
    url_variants,
    verify,
)

URL = "https://example.com/myapp.php?foo=1&bar=2"
PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
]


def test_twilios_worked_example() -> None:
    assert is_valid_signature(URL, PARAMS, "L/OH5YylLD5NRKLltdqwSvS0BnU=", [SecretStr("12345")])


def test_wrong_token_or_signature_fails() -> None:
    assert not is_valid_signature(URL, PARAMS, "L/OH5YylLD5NRKLltdqwSvS0BnU=", [SecretStr("1")])
    assert not is_valid_signature(URL, PARAMS, "", [SecretStr("12345")])


def test_repeated_parameters_sign_like_the_sdk() -> None:
    params = [("To", "+2"), ("To", "+1"), ("To", "+2"), ("a", "x"), ("B", "y")]
    sdk = RequestValidator("tok")

    class Multi(dict[str, str]):
        def getall(self, name: str) -> list[str]:
            return [v for k, v in params if k == name]

    expected = sdk.compute_signature(URL, Multi({k: v for k, v in params}))
    assert sign("tok", URL, "".join(k + v for k, v in sorted(set(params)))) == expected
    assert is_valid_signature(URL, params, expected, [SecretStr("tok")])


def test_port_variants() -> None:
    assert url_variants("https://h.example/x?y=1") == (
        "https://h.example/x?y=1",
        "https://h.example:443/x?y=1",
    )
    assert url_variants("http://h.example:8080/x") == (
        "http://h.example:8080/x",
        "http://h.example/x",
    )


def test_json_body_checks_hash_and_url() -> None:
    body = b'{"CallSid": "CA1", "AccountSid": "AC1"}'
    url = f"https://h.example/hook?x=1&bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator("tok").compute_signature(url, {})
    assert verify(url, None, signature, [b"tok"], json_body=body)
    assert not verify(url, None, signature, [b"tok"], json_body=body + b" ")
    no_hash = "https://h.example/hook?x=1"
    assert not verify(
        no_hash,
        None,
        RequestValidator("tok").compute_signature(no_hash, {}),
        [b"tok"],
        json_body=body,
    )


def test_get_signs_the_url_alone() -> None:
    url = "https://h.example/hook?CallSid=CA1&AccountSid=AC1"
    signature = RequestValidator("tok").compute_signature(url, {})
    assert verify(url, None, signature, [b"tok"])
    assert not verify(url, [("CallSid", "CA1")], signature, [b"tok"])


def test_shared_key_scheme_uses_sha256() -> None:
    settings = parse_signature_settings("key=webhooks_sharedkey_1, algorithm=HMAC_SHA256")
    assert settings == SignatureSettings("webhooks_sharedkey_1", HMAC_SHA256)
    assert settings.supported
    signature = RequestValidator("shared").compute_signature(URL, dict(PARAMS), HMAC_SHA256)
    assert verify(URL, PARAMS, signature, [b"shared"], algorithm=HMAC_SHA256)
    assert not verify(URL, PARAMS, signature, [b"shared"], algorithm=HMAC_SHA1)
    assert parse_signature_settings(None) == SignatureSettings(None, HMAC_SHA1)
    assert not parse_signature_settings("algorithm=HMAC_MD5").supported
    assert not verify(URL, PARAMS, signature, [b"shared"], algorithm="HMAC_MD5")


def test_any_of_several_tokens() -> None:
    signature = sign("second", URL, "")
    assert verify(URL, [], signature, [b"first", b"second"])
    assert not verify(URL, [], signature, [b"first"])
    assert not verify(URL, [], signature, [])


def test_malformed_port_is_invalid_not_an_error() -> None:
    assert not verify("https://h.example:99999/x", [], "c2ln", [b"tok"])
