"""The twilio SDK's RequestValidator is the oracle: ours accepts exactly what it accepts.

Random URLs (scheme, host, with and without a port, paths, raw query strings), random parameter
sets with repeated names and unicode, form POSTs, GETs and JSON bodies with ``bodySHA256``,
both hash algorithms, and signatures that are genuine (made by the SDK for the URL with or
without the port), made with another token, made over other parameters, or garbage.
"""

import hashlib
import json
from collections.abc import Sequence
from urllib.parse import quote, urlparse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator, add_port, remove_port

from ingest.signature import HMAC_SHA1, HMAC_SHA256, verify

_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0x1F600), max_size=12
)
_NAME = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0x2FF),
    min_size=1,
    max_size=8,
)
_HOST = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True)
_SEGMENT = st.text(alphabet="abcXYZ019-_.~%", max_size=8)


class MultiParams(dict[str, str]):
    """A form as Flask's MultiDict shows it to the SDK: every value of a repeated name."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._pairs = list(pairs)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(_HOST)
    port = draw(st.one_of(st.none(), st.integers(1, 65535), st.sampled_from([80, 443])))
    path = "/" + "/".join(draw(st.lists(_SEGMENT, max_size=3)))
    query = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}"
        for k, v in draw(st.lists(st.tuples(_NAME, _TEXT), max_size=3))
    )
    netloc = host if port is None else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _pairs() -> st.SearchStrategy[list[tuple[str, str]]]:
    names = st.lists(_NAME, min_size=1, max_size=4, unique=True)
    return names.flatmap(lambda ns: st.lists(st.tuples(st.sampled_from(ns), _TEXT), max_size=10))


@st.composite
def signatures(
    draw: st.DrawFn, url: str, params: dict[str, str] | MultiParams, algorithm: str
) -> str:
    kind = draw(st.sampled_from(["without_port", "with_port", "other_token", "other", "junk"]))
    parsed = urlparse(url)
    if kind == "junk":
        return draw(st.text(max_size=30))
    if kind == "other":
        params = MultiParams([("Extra", draw(_TEXT))])
    token = "other" if kind == "other_token" else "token"
    signed_url = add_port(parsed) if kind == "with_port" else remove_port(parsed)
    return str(RequestValidator(token).compute_signature(signed_url, params, algorithm))


_ALGORITHMS = st.sampled_from([HMAC_SHA1, HMAC_SHA256])
_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(url=urls(), pairs=_pairs(), algorithm=_ALGORITHMS, data=st.data())
def test_form_posts_agree_with_the_sdk(
    url: str, pairs: list[tuple[str, str]], algorithm: str, data: st.DataObject
) -> None:
    params = MultiParams(pairs)
    signature = data.draw(signatures(url, params, algorithm))
    expected = RequestValidator("token").validate(url, params, signature, algorithm)
    assert verify(url, pairs, signature, [b"token"], algorithm=algorithm) == expected
    assert verify(url, pairs, signature, [b"first", b"token"], algorithm=algorithm) == expected


@_SETTINGS
@given(url=urls(), algorithm=_ALGORITHMS, data=st.data())
def test_gets_agree_with_the_sdk(url: str, algorithm: str, data: st.DataObject) -> None:
    signature = data.draw(signatures(url, {}, algorithm))
    expected = RequestValidator("token").validate(url, {}, signature, algorithm)
    assert verify(url, None, signature, [b"token"], algorithm=algorithm) == expected


@_SETTINGS
@given(
    url=urls(),
    doc=st.dictionaries(_NAME, st.one_of(_TEXT, st.integers())),
    hash_kind=st.sampled_from(["right", "wrong", "upper"]),
    algorithm=_ALGORITHMS,
    data=st.data(),
)
def test_json_bodies_agree_with_the_sdk(
    url: str, doc: dict[str, object], hash_kind: str, algorithm: str, data: st.DataObject
) -> None:
    body = json.dumps(doc, ensure_ascii=False)
    digest = hashlib.sha256(body.encode()).hexdigest()
    declared = {"right": digest, "wrong": hashlib.sha256(b"x").hexdigest(), "upper": digest.upper()}
    url += ("&" if "?" in url else "?") + f"bodySHA256={declared[hash_kind]}"
    signature = data.draw(signatures(url, {}, algorithm))
    expected = RequestValidator("token").validate(url, body, signature, algorithm)
    ours = verify(url, None, signature, [b"token"], algorithm=algorithm, json_body=body.encode())
    assert ours == expected


def test_the_oracle_test_sees_both_outcomes() -> None:
    """Guards the property tests against comparing False with False only."""
    url = "https://voice.example.com:8443/hook?x=1"
    pairs = [("To", "+2"), ("To", "+1"), ("Name", "Zoë")]
    good = RequestValidator("token").compute_signature(
        remove_port(urlparse(url)), MultiParams(pairs)
    )
    assert RequestValidator("token").validate(url, MultiParams(pairs), good)
    assert verify(url, pairs, good, [b"token"])
    assert not verify(url, [*pairs, ("To", "+3")], good, [b"token"])
