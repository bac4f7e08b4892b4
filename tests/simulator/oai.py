"""Twilio's OpenAPI specs as JSON Schema validators for the fake Twilio's answers.

The specs come from ``TWILIO_OAI_DIR``, else ``/work/shared/twilio-oai``, else
``../shared/twilio-oai`` beside the repository. Validation is strict where Twilio is: every
property a resource schema names must be present (``null`` when empty) and no other may
appear; formats Twilio uses (RFC 2822 and ISO 8601 times, dates) are checked too.
"""

import functools
import os
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

ROOT = Path(__file__).resolve().parents[2]
API_V2010 = "twilio_api_v2010.json"
INSIGHTS_V1 = "twilio_insights_v1.json"


def specs_dir() -> Path | None:
    given = os.environ.get("TWILIO_OAI_DIR")
    candidates = [Path(given)] if given else []
    candidates += [Path("/work/shared/twilio-oai"), ROOT.parent / "shared" / "twilio-oai"]
    for candidate in candidates:
        if (candidate / API_V2010).is_file() and (candidate / INSIGHTS_V1).is_file():
            return candidate
    return None


def require_specs() -> Path:
    """The specs directory; without it, fail in CI and skip elsewhere."""
    found = specs_dir()
    if found is None:
        message = "Twilio OpenAPI specs not found (set TWILIO_OAI_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@functools.cache
def _spec(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def _formats() -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("date-time-rfc-2822", raises=(TypeError, ValueError))
    def _rfc2822(value: object) -> bool:
        return not isinstance(value, str) or parsedate_to_datetime(value).tzinfo is not None

    @checker.checks("date-time", raises=ValueError)
    def _iso(value: object) -> bool:
        return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None

    @checker.checks("date", raises=ValueError)
    def _date(value: object) -> bool:
        return not isinstance(value, str) or bool(date.fromisoformat(value))

    return checker


def response_validator(spec_file: str, path: str, status: str = "200") -> Draft202012Validator:
    """A validator for the JSON body of ``GET path`` answering ``status``, per the spec."""
    spec = _spec(require_specs() / spec_file)
    operation = spec["paths"][path]["get"]
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    converted = _convert(schema, spec["components"]["schemas"])
    return Draft202012Validator(converted, format_checker=_formats())


def query_parameters(spec_file: str, path: str) -> set[str]:
    """The names of the query parameters the spec declares for ``GET path``."""
    spec = _spec(require_specs() / spec_file)
    parameters = spec["paths"][path]["get"].get("parameters", [])
    return {p["name"] for p in parameters if p["in"] == "query"}


def _convert(node: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null alternative, a ``$ref``
    is inlined (its siblings other than ``nullable`` ignored, as OpenAPI 3.0 says), objects with
    named properties become closed with every property required."""
    if "$ref" in node:
        target = components[node["$ref"].rsplit("/", 1)[-1]]
        converted = _convert(target, components)
    else:
        converted = {k: node[k] for k in _KEPT if k in node}
        if "items" in node:
            converted["items"] = _convert(node["items"], components)
        if "properties" in node:
            properties = node["properties"]
            converted["properties"] = {k: _convert(v, components) for k, v in properties.items()}
            converted["required"] = sorted(properties)
            converted["additionalProperties"] = False
    if node.get("nullable"):
        return {"anyOf": [{"type": "null"}, converted]}
    return converted


_KEPT = ("type", "enum", "pattern", "minLength", "maxLength", "format", "minimum", "maximum")
