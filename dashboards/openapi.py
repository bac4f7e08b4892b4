"""The OpenAPI 3.1 document of ``/api/v1`` (JSON Schema 2020-12 for every answer).

The tests validate every answer of every route against it, so it cannot drift from the code.
"""

from typing import Any

__all__ = ["document"]

_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}
_DAY = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
_SID = {"type": "string", "pattern": r"^AC[0-9a-fA-F]{32}$"}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_NUM = _null({"type": "number"})
_INT = _null({"type": "integer"})
_STR = _null({"type": "string"})
_COUNTS = _null({"type": "object", "additionalProperties": {"type": "integer"}})


def _object(props: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required if required is not None else list(props),
        "additionalProperties": False,
    }


def _page(item: str, *, total: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "limit": {"type": "integer", "minimum": 1},
        "offset": {"type": "integer", "minimum": 0},
        "next_offset": _INT,
    }
    if total:
        props["total"] = {"type": "integer", "minimum": 0}
    return _object(props)


_LIGHT = {"enum": ["ok", "bad", "none"]}
_SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": {"type": "string"}}),
    "FleetRow": _object(
        {
            "account_sid": _SID,
            "name": {"type": "string"},
            "calls_today": {"type": "integer", "minimum": 0},
            "answered_today": {"type": "integer", "minimum": 0},
            "asr": _NUM,
            "acd_s": _NUM,
            "short_call_ratio": _NUM,
            "queue_time_p95_ms": _NUM,
            "cps_peak": {"type": "integer", "minimum": 0},
            "cps_limit": {"type": "number"},
            "cps_utilisation": _NUM,
            "open_alerts": {"type": "integer", "minimum": 0},
            "cost_month": _MONEY,
            "currency": _STR,
            "sparkline": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 24,
                "maxItems": 24,
                "description": "attempts per hour over the last 24 hours, oldest first",
            },
            "health": _object(
                {k: _LIGHT for k in ("asr", "acd", "short_calls", "queue_time", "cps")}
            ),
        }
    ),
    "FleetPage": _page("FleetRow", total=True),
    "SeriesPoint": _object(
        {
            "attempts": _INT,
            "answered": _INT,
            "asr": _NUM,
            "ner": _NUM,
            "acd_s": _NUM,
            "short_call_ratio": _NUM,
            "queue_time_p50_ms": _NUM,
            "queue_time_p95_ms": _NUM,
            "cps_peak": _INT,
            "cps_limit": _NUM,
            "calls_created": _INT,
            "trunk_cps_rejections": _INT,
            "attestation": _COUNTS,
            "debugger_errors": _COUNTS,
            "caller_id_top_share": _NUM,
        }
    ),
    "Series": _object(
        {
            "account_sid": {"anyOf": [_SID, {"const": "ISV"}]},
            "range": {"enum": ["1h", "24h", "7d", "30d"]},
            "unit": {"enum": ["minute", "hour", "day"]},
            "periods": {"type": "array", "items": _TIME},
            "groups": {
                "type": "object",
                "description": "per direction group, one point per period",
                "additionalProperties": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/SeriesPoint"},
                },
            },
        }
    ),
    "Callback": _object(
        {
            "event_time": _TIME,
            "call_status": {"type": "string"},
            "sequence_number": _INT,
            "sip_response_code": _INT,
            "call_duration": _INT,
        }
    ),
    "Call": _object(
        {
            "call_sid": {"type": "string"},
            "call_time": _TIME,
            "status": {"type": "string"},
            "answered": {"type": "boolean"},
            "direction": _STR,
            "from_number": _STR,
            "to_number": _STR,
            "call_duration_s": _INT,
            "billed_minutes": _INT,
            "cost": _null(_MONEY),
            "price_unit": _STR,
            "call_type": _STR,
            "queue_time_ms": _INT,
            "pdd_ms": _INT,
            "sip_response_code": _INT,
            "last_sip_response_num": _INT,
            "disconnected_by": _STR,
            "attestation": _STR,
            "stir_verstat": _STR,
            "answered_by": _STR,
            "insights_state": _STR,
            "tags": _null({"type": "array", "items": {"type": "string"}}),
            "trunk_cps_rejection": _null({"type": "boolean"}),
            "callbacks": {"type": "array", "items": {"$ref": "#/components/schemas/Callback"}},
        }
    ),
    "CallsPage": _page("Call"),
    "Alert": _object(
        {
            "alert_id": {"type": "string"},
            "account_sid": {"type": "string"},
            "changed_at": _TIME,
            "rule": _STR,
            "state": {"type": "string"},
            "severity": _STR,
            "direction_group": _STR,
            "window_start": _null(_TIME),
            "value": _NUM,
            "threshold": _NUM,
            "message": _STR,
        }
    ),
    "AlertsPage": _page("Alert"),
    "BillingLine": _object(
        {
            "scope": {"enum": ["subaccount", "parent"]},
            "account_sid": _SID,
            "name": _STR,
            "direction": {"type": "string"},
            "call_type": {"type": "string"},
            "currency": _STR,
            "calls": {"type": "integer"},
            "answered": {"type": "integer"},
            "talk_seconds": {"type": "integer"},
            "billed_minutes": {"type": "integer"},
            "cost": _MONEY,
            "estimated_cost": _MONEY,
            "estimated_calls": {"type": "integer"},
            "estimated": {"type": "boolean"},
        }
    ),
    "BillingTotal": _object(
        {
            "scope": {"enum": ["subaccount", "parent"]},
            "account_sid": _SID,
            "name": _STR,
            "currency": _STR,
            "calls": {"type": "integer"},
            "billed_minutes": {"type": "integer"},
            "cost": _MONEY,
            "estimated": {"type": "boolean"},
        }
    ),
    "ReconciliationDay": _object(
        {
            "account_sid": _SID,
            "day": _DAY,
            "our_minutes": _null(_MONEY),
            "twilio_minutes": _null(_MONEY),
            "minutes_diff": _null(_MONEY),
            "our_cost": _null(_MONEY),
            "twilio_cost": _null(_MONEY),
            "cost_diff": _null(_MONEY),
            "estimated": {"type": "boolean"},
            "status": {"type": "string"},
            "flagged": {"type": "boolean"},
        }
    ),
    "Billing": _object(
        {
            "month": {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
            "lines": {"type": "array", "items": {"$ref": "#/components/schemas/BillingLine"}},
            "totals": {"type": "array", "items": {"$ref": "#/components/schemas/BillingTotal"}},
            "reconciliation": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ReconciliationDay"},
            },
        }
    ),
    "Silence": _object(
        {
            "id": {"type": "string"},
            "account_sid": _null(_SID),
            "rule": _STR,
            "direction_group": _STR,
            "starts_at": _TIME,
            "ends_at": _TIME,
            "comment": {"type": "string"},
            "created_by": {"type": "string"},
            "state": {"enum": ["pending", "active", "expired"]},
        }
    ),
    "Silences": _object(
        {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Silence"}}}
    ),
    "NewSilence": _object(
        {
            "account_sid": _null(_SID),
            "rule": _STR,
            "direction_group": _null({"enum": ["outbound", "inbound"]}),
            "duration": {"type": "string", "description": "e.g. 30m, 2h, 1d; default 2h"},
            "comment": {"type": "string"},
        },
        required=[],
    ),
    "IsvTop": _object(
        {
            "account_sid": _SID,
            "name": {"type": "string"},
            "calls_created": {"type": "integer"},
            "cps_peak": {"type": "integer"},
            "share": _NUM,
        }
    ),
    "CpsRecommendation": _object(
        {
            "account_sid": {"anyOf": [_SID, {"const": "ISV"}]},
            "name": {"type": "string"},
            "configured_cps": _NUM,
            "recommended_cps": _INT,
            "peak_cps": {"type": "integer"},
            "calls": {"type": "integer"},
        }
    ),
    "Isv": _object(
        {
            "series": {"$ref": "#/components/schemas/Series"},
            "top": {"type": "array", "items": {"$ref": "#/components/schemas/IsvTop"}},
            "recommendations": {
                "type": "array",
                "description": "the least CPS that kept QueueTime p95 <= 5 s over 7 days",
                "items": {"$ref": "#/components/schemas/CpsRecommendation"},
            },
        }
    ),
}


def _param(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": text,
    }


_PAGING = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
    _param("offset", "query", {"type": "integer", "minimum": 0}, "first item"),
]
_ACCOUNT = _param("account_sid", "path", _SID, "the subaccount (404 when not yours)")
_RANGE = _param("range", "query", {"enum": ["1h", "24h", "7d", "30d"]}, "default 24h")
_STATE = _param("state", "query", {"enum": ["open", "all"]}, "open alerts or every change")


def _answer(ref: str, text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _operation(
    summary: str, schema: str, params: list[dict[str, Any]], ok: str = "200"
) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": params,
        "security": [{"bearer": []}, {"session": []}],
        "responses": {
            ok: _answer(schema, "OK"),
            "400": _answer("Error", "a bad parameter"),
            "401": _answer("Error", "no or unknown token"),
            "403": _answer("Error", "a session without its CSRF token"),
            "404": _answer("Error", "no such subaccount, or not yours"),
            "503": _answer("Error", "the warehouse cannot be read yet"),
        },
    }


def _get(summary: str, schema: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": _operation(summary, schema, params)}


def _silences() -> dict[str, Any]:
    create = _operation("silence alerts (operators)", "Silence", [], ok="201")
    create["requestBody"] = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewSilence"}}}
    }
    listed = _get(
        "the current silences (operators; state=all: past ones too)",
        "Silences",
        [_param("state", "query", {"enum": ["current", "all"]}, "default current")],
    )
    return {**listed, "post": create}


def document() -> dict[str, Any]:
    """The OpenAPI document (a new dict each time)."""
    sub = "/api/v1/subaccounts/{account_sid}"
    return {
        "openapi": "3.1.0",
        "info": {"title": "VoicePulse dashboard API", "version": "1"},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": {
            "/api/v1/fleet": _get(
                "every visible subaccount today",
                "FleetPage",
                [
                    _param("q", "query", {"type": "string"}, "name or SID contains"),
                    _param("sort", "query", {"type": "string"}, "a column of FleetRow"),
                    _param("order", "query", {"enum": ["asc", "desc"]}, "default asc"),
                    *_PAGING,
                ],
            ),
            sub + "/series": _get(
                "a subaccount's health over a range", "Series", [_ACCOUNT, _RANGE]
            ),
            sub + "/calls": _get(
                "a subaccount's calls, newest first", "CallsPage", [_ACCOUNT, *_PAGING]
            ),
            sub + "/alerts": _get(
                "a subaccount's alerts", "AlertsPage", [_ACCOUNT, _STATE, *_PAGING]
            ),
            "/api/v1/isv": _get("the ISV rows and top CPS users (operators)", "Isv", [_RANGE]),
            "/api/v1/billing": _get(
                "a month's billing and reconciliation",
                "Billing",
                [_param("month", "query", {"type": "string"}, "YYYY-MM, default this month")],
            ),
            "/api/v1/silences": _silences(),
            "/api/v1/silences/{silence_id}/expire": {
                "post": _operation(
                    "end a silence now (operators)",
                    "Silence",
                    [_param("silence_id", "path", {"type": "string"}, "the silence")],
                )
            },
            "/api/v1/alerts": _get(
                "alerts of every visible subaccount", "AlertsPage", [_STATE, *_PAGING]
            ),
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "vp_session"},
            },
        },
    }
