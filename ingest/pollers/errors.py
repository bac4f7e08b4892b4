"""The pollers' errors: what Twilio's REST API answered, translated at one boundary.

    VoicePulseError
    └── PullError              a request failed after its retries; ``status`` is Twilio's HTTP
                               status (None: no answer at all), ``code`` Twilio's error code

``retriable`` is true for 429, 5xx and network failures: trying again later may help. Other 4xx
answers (no access, Insights Advanced Features off) will not change by retrying soon.
"""

import json

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.response import Response

from voicepulse.errors import VoicePulseError

__all__ = ["PullError", "from_twilio"]


class PullError(VoicePulseError):
    """A Twilio REST request that did not succeed."""

    def __init__(self, message: str, *, status: int | None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retriable = status is None or status == 429 or status >= 500


def from_twilio(exc: TwilioException, what: str) -> PullError:
    """Translate the SDK's exception (a REST error, or a page it could not load)."""
    if isinstance(exc, TwilioRestException):
        return PullError(f"{what}: HTTP {exc.status} {exc.msg}", status=exc.status, code=exc.code)
    response = next((a for a in exc.args if isinstance(a, Response)), None)
    if response is None:
        return PullError(f"{what}: {exc}", status=None)
    code, message = _error_body(response.text)
    return PullError(
        f"{what}: HTTP {response.status_code} {message}", status=response.status_code, code=code
    )


def _error_body(text: str) -> tuple[int | None, str]:
    try:
        body = json.loads(text)
    except ValueError:
        return None, text[:200]
    if not isinstance(body, dict):
        return None, text[:200]
    code = body.get("code")
    return (code if isinstance(code, int) else None), str(body.get("message", ""))[:200]
