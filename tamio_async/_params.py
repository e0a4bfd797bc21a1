"""Validation and encoding of the listing's query parameters: pure functions, no I/O.

Choices where the API document is vague (README "Parameters" repeats them):

* ``None`` means "not sent"; booleans go out as ``true``/``false``.
* ``from_``/``to`` always go out as integer unix seconds, whatever the caller passed, so
  the server never has to guess a time zone. A ``date`` means midnight UTC of that day; an
  ISO-8601 string is parsed here (a bad one fails before any request). A naive ``datetime``
  (or an ISO string without an offset) is refused: guessing its zone would silently shift
  the window by hours. A fractional timestamp is widened outward (``from_`` floored, ``to``
  ceiled) so the window never loses the instant asked for.
* ``teammate_id``/``client_id`` must be UUIDs (the document says so); ``uuid.UUID`` works too.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import uuid
from collections.abc import Mapping
from typing import Literal, TypedDict

from ._config import check_int

__all__ = [
    "is_loopback",
    "Order",
    "SortBy",
    "TicketFilters",
    "TimeBound",
    "check_paging",
    "encode_filters",
    "encode_time",
    "list_query",
]

Order = Literal["asc", "desc"]
SortBy = Literal["created_at", "title"]
TimeBound = datetime.datetime | datetime.date | int | float | str

_ORDERS = ("asc", "desc")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_SECOND = datetime.timedelta(seconds=1)
_MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last instant ISO-8601 can name
_SORT_KEYS = ("created_at", "title")


class TicketFilters(TypedDict, total=False):
    """The listing's filters, shared by ``list``, ``iterate``, ``pages`` and ``list_all``."""

    order: Order | None
    sort_by: SortBy | None
    filter: str | None
    from_: TimeBound | None
    to: TimeBound | None
    closed: bool | None
    teammate_id: str | uuid.UUID | None
    client_id: str | uuid.UUID | None


def check_paging(
    *,
    per_page: int,
    start_page: int = 1,
    end_page: int | None = None,
    limit: int | None = None,
    max_concurrency: int = 1,
    max_requests: int | None = None,
    speculative_pages: int = 0,
    page_name: str = "start_page",
) -> None:
    """Validate the paging arguments, each named as the caller passed it (the one place)."""
    check_int(page_name, start_page, minimum=1)
    check_int("per_page", per_page, minimum=1)
    check_int("max_concurrency", max_concurrency, minimum=1)
    if end_page is not None:
        check_int("end_page", end_page, minimum=start_page)
    if limit is not None:
        check_int("limit", limit, minimum=0)
    if max_requests is not None:
        check_int("max_requests", max_requests, minimum=1)
    check_int("speculative_pages", speculative_pages, minimum=0)


def list_query(page: int, per_page: int, filters: Mapping[str, str]) -> dict[str, str]:
    """The full query for one page (paging already validated by `check_paging`)."""
    return {"page": str(page), "per_page": str(per_page), **filters}


def encode_filters(filters: TicketFilters) -> dict[str, str]:
    """Validate every filter and encode it for the query string (``None`` is left out)."""
    unknown = set(filters) - set(TicketFilters.__annotations__)
    if unknown:
        raise TypeError(f"unknown filter argument(s): {', '.join(sorted(unknown))}")
    query: dict[str, str] = {}
    order, sort_by = filters.get("order"), filters.get("sort_by")
    if order is not None:
        query["order"] = _choice("order", order, _ORDERS)
    if sort_by is not None:
        query["sort_by"] = _choice("sort_by", sort_by, _SORT_KEYS)
    text = filters.get("filter")
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"filter must be a str (a title search), got {type(text).__name__}")
        query["filter"] = text
    start, end = filters.get("from_"), filters.get("to")
    if start is not None:
        query["from"] = str(encode_time("from_", start, upper=False))
    if end is not None:
        query["to"] = str(encode_time("to", end, upper=True))
    if start is not None and end is not None and int(query["from"]) > int(query["to"]):
        raise ValueError(f"from_ must not be after to (from_={start!r}, to={end!r})")
    closed = filters.get("closed")
    if closed is not None:
        if not isinstance(closed, bool):
            raise TypeError(f"closed must be a bool or None, got {type(closed).__name__}")
        query["closed"] = "true" if closed else "false"
    for name in ("teammate_id", "client_id"):
        value = filters.get(name)
        if value is not None:
            query[name] = _uuid(name, value)
    return query


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _uuid(name: str, value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a UUID string or uuid.UUID, got {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{name} must be a UUID, got {value!r}") from None


def encode_time(name: str, value: object, *, upper: bool) -> int:
    """Unix seconds for a ``from_``/``to`` bound; ``upper`` rounds a fraction up."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a datetime, date, unix timestamp or ISO-8601 string")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite unix timestamp >= 0, got {value!r}")
        seconds = math.ceil(value) if upper else math.floor(value)
    else:
        if isinstance(value, str):
            value = _parse_iso(name, value)
        if isinstance(value, datetime.datetime):
            if value.utcoffset() is None:
                raise ValueError(
                    f"{name} is a naive datetime; give it a time zone, "
                    "e.g. value.replace(tzinfo=datetime.timezone.utc)"
                )
            delta = value - _EPOCH
        elif isinstance(value, datetime.date):
            delta = (
                datetime.datetime.combine(value, datetime.time(), datetime.timezone.utc) - _EPOCH
            )
        else:
            raise TypeError(
                f"{name} must be a datetime, date, unix timestamp or ISO-8601 string, "
                f"got {type(value).__name__}"
            )
        # Integer arithmetic: float timestamps lose sub-second precision far from 1970.
        seconds = -(-delta // _SECOND) if upper else delta // _SECOND
    if not 0 <= seconds <= _MAX_TIMESTAMP:
        raise ValueError(
            f"{name} must lie between 1970-01-01 and 9999-12-31 (unix 0..{_MAX_TIMESTAMP}), "
            f"got {_shown(value)}"
        )
    return seconds


def _shown(value: object) -> str:
    """A short repr; Python refuses to print ints of more than 4300 digits at all."""
    try:
        text = repr(value)
    except ValueError:
        return "an int too long to print"
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_iso(name: str, text: str) -> datetime.datetime | datetime.date:
    """Parse an ISO-8601 date or datetime (Python 3.10's fromisoformat lacks "Z")."""
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        if len(candidate) == 10:
            return datetime.date.fromisoformat(candidate)
        return datetime.datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO-8601 date or datetime (e.g. 2024-05-01 or "
            f"2024-05-01T12:00:00Z), got {text!r}"
        ) from None


def is_loopback(host: str) -> bool:
    """The one rule for where plain http may go without ``allow_insecure_http``: this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
