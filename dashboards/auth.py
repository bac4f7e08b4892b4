"""Who is asking: a bearer token (the API) or a browser session signed in with a token once.

Browser sessions are kept on the server: the cookie holds only a random session id (HttpOnly,
SameSite=Strict, Secure when the request came over HTTPS), and the session names the token it
was opened with, which is checked again on every request, so revoking a token ends its
sessions. Each session has its own CSRF token, which every state-changing form carries; a
state-changing request whose Origin is another site is refused before that.
"""

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from starlette.requests import Request

from dashboards.tokens import Principal, TokenStore

__all__ = ["COOKIE", "Session", "Sessions", "principal_of", "same_origin"]

COOKIE = "vp_session"
_TTL_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    token_id: str
    csrf: str
    expires: float


class Sessions:
    """Server-side browser sessions, in memory (a restart signs everyone out)."""

    def __init__(self, ttl_s: float = _TTL_S) -> None:
        self._ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token_id: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(token_id, secrets.token_urlsafe(24), time.monotonic() + self._ttl_s)
        with self._lock:
            self._expire()
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[session_id]
                return None
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]


def principal_of(
    request: Request, tokens: TokenStore, sessions: Sessions
) -> tuple[Principal | None, Session | None]:
    """The principal behind the request's bearer token or session cookie, and the session."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential:
        return tokens.authenticate(credential.strip()), None
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None, None
    session = sessions.get(session_id)
    if session is None:
        return None, None
    principal = tokens.principal(session.token_id)
    return principal, session if principal is not None else None


def csrf_ok(session: Session | None, presented: str) -> bool:
    return session is not None and hmac.compare_digest(session.csrf, presented)


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
