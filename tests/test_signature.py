"""Signature checks against Twilio's worked example and the twilio SDK's signer."""

from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from ingest.signature import is_valid_signature, sign, url_variants

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
        "http://h.example/x",
        "http://h.example:8080/x",
    )
