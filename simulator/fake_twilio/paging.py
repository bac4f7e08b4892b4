"""Twilio's paging: PageSize, Page and a PageToken naming the last record of the page before.

Api v2010 lists answer with relative ``*_page_uri`` fields; Insights lists with a ``meta``
object of absolute ``*_page_url`` fields pointing back at the server that answered.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from simulator.fake_twilio.params import BadParameter, page_size

__all__ = ["Paged", "paginate"]

T = TypeVar("T")
_PAGING = frozenset({"PageSize", "Page", "PageToken"})


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    items: Sequence[T]
    page: int
    size: int
    start: int
    filters: list[tuple[str, str]]
    next_token: str | None
    previous_token: str | None
    token: str | None

    def query(self, page: int, token: str | None) -> str:
        params = [*self.filters, ("PageSize", str(self.size)), ("Page", str(page))]
        if token is not None:
            params.append(("PageToken", token))
        return urlencode(params)

    def v2010(self, path: str, key: str, render: Callable[[T], Any]) -> dict[str, Any]:
        """The Api v2010 list body: relative URIs, records under ``key``."""
        token = self.token
        return {
            "first_page_uri": f"{path}?{self.query(0, None)}",
            "end": self.start + max(len(self.items) - 1, 0),
            "previous_page_uri": self._uri(path, self.page - 1, self.previous_token),
            "uri": f"{path}?{self.query(self.page, token)}",
            "page_size": self.size,
            "start": self.start,
            "next_page_uri": self._uri(path, self.page + 1, self.next_token),
            "page": self.page,
            key: [render(item) for item in self.items],
        }

    def insights(self, url: str, key: str, render: Callable[[T], Any]) -> dict[str, Any]:
        """The Insights list body: ``meta`` with absolute URLs, records under ``key``."""
        token = self.token
        return {
            key: [render(item) for item in self.items],
            "meta": {
                "page": self.page,
                "page_size": self.size,
                "first_page_url": f"{url}?{self.query(0, None)}",
                "previous_page_url": self._uri(url, self.page - 1, self.previous_token),
                "next_page_url": self._uri(url, self.page + 1, self.next_token),
                "key": key,
                "url": f"{url}?{self.query(self.page, token)}",
            },
        }

    def _uri(self, base: str, page: int, token: str | None) -> str | None:
        return None if token is None else f"{base}?{self.query(page, token)}"


def paginate(
    request: Request,
    items: Sequence[T],
    ident: Callable[[T], str],
    *,
    default_size: int = 50,
    max_size: int = 1000,
) -> Paged[T]:
    """The page of ``items`` the request asks for; the token wins over the page number."""
    query = request.query_params
    size = page_size(query.get("PageSize"), default_size, max_size)
    try:
        page = int(query.get("Page", "0"))
    except ValueError as exc:
        raise BadParameter("Page must be an integer") from exc
    token = query.get("PageToken")
    start = _start(token, items, ident, page * size, size)
    chunk = items[start : start + size]
    filters = [(k, v) for k, v in query.multi_items() if k not in _PAGING]
    more = start + size < len(items)
    return Paged(
        items=chunk,
        page=page,
        size=size,
        start=start,
        filters=filters,
        next_token=f"PA{ident(chunk[-1])}" if more and chunk else None,
        previous_token=f"PB{ident(chunk[0])}" if page > 0 and chunk else None,
        token=token,
    )


def _start(
    token: str | None, items: Sequence[T], ident: Callable[[T], str], default: int, size: int
) -> int:
    """PA<id>: the page after record <id>; PB<id>: the page before it."""
    if not token:
        return default
    wanted = token[2:]
    for index, item in enumerate(items):
        if ident(item) == wanted:
            return index + 1 if token.startswith("PA") else max(index - size, 0)
    raise BadParameter(f"PageToken is not valid for this list: {token!r}")
