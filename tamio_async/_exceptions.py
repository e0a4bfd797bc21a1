"""Every error tamio-async raises, and the one table that maps an HTTP status to its class.

::

    TamioError
     ├── ClientClosedError            the client was used after aclose() (also a RuntimeError)
     ├── APIConnectionError           the request failed: no usable answer came back
     │    └── APITimeoutError         ... because it took too long (also a built-in TimeoutError)
     ├── APIStatusError               the server answered with an error status
     │    ├── BadRequestError         400
     │    ├── AuthenticationError     401
     │    ├── PermissionDeniedError   403
     │    ├── NotFoundError           404
     │    ├── RateLimitError          429 (carries retry_after)
     │    └── InternalServerError     500-599
     ├── APIResponseValidationError   a 2xx that is not JSON, does not fit the schema, or is too big
     └── IncompleteListingError       a listing yielded all it could but cannot prove it is complete

Every error may carry the ``page`` it happened on, a ``hint`` and ``resume_page`` (how to resume
a listing, set only when following it is correct); page and hint show in ``str(error)``. No
message ever contains the API key: we never put request headers into an error. Every error
pickles with all its attributes, so it crosses a process boundary (``ProcessPoolExecutor``).
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Literal

import msgspec

from ._stats import ListingStats

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "IncompleteListingError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "TamioError",
    "parse_retry_after",
    "status_error",
]

# How much of an error body goes into a message; the full body stays on `.body`.
_BODY_PREVIEW = 200


class TamioError(Exception):
    """Base class of every error raised by tamio-async."""

    page: int | None
    hint: str | None
    resume_page: int | None

    def __init__(self, message: str, *, page: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.page = page
        self.hint = None
        #: Where a listing can be resumed without losing or repeating a ticket, if anywhere.
        self.resume_page = None

    def __str__(self) -> str:
        text = self.message if self.page is None else f"{self.message} (page {self.page})"
        return text if self.hint is None else f"{text}; {self.hint}"

    def __reduce__(self) -> tuple[object, ...]:
        # The default (cls(*args) then __dict__) calls __init__, whose keyword-only arguments
        # are not in args: subclasses would fail to unpickle (a BrokenProcessPool in a worker
        # pool). Rebuild without __init__ instead; every attribute is in __dict__.
        return (_rebuild, (type(self), self.args), self.__dict__)


class ClientClosedError(TamioError, RuntimeError):
    """The client was used after it was closed."""


class APIConnectionError(TamioError):
    """The request failed before a complete answer arrived (connection, TLS, truncated body)."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """The request timed out."""


class APIStatusError(TamioError):
    """The server answered with a 4xx or 5xx status."""

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        page: int | None = None,
        now: float | None = None,
    ) -> None:
        super().__init__(message, page=page)
        self.status_code = status_code
        self.body = body
        self.headers: Mapping[str, str] = dict(headers or {})
        self.request_id: str | None = _header(self.headers, "x-request-id") or _header(
            self.headers, "request-id"
        )
        #: Seconds the server asked us to wait (Retry-After / retry-after-ms), if it did.
        self.retry_after: float | None = parse_retry_after(self.headers, now=now)


class BadRequestError(APIStatusError):
    """400: the server rejected the parameters."""

    status_code: Literal[400]


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or expired."""

    status_code: Literal[401]


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""

    status_code: Literal[403]


class NotFoundError(APIStatusError):
    """404: no such endpoint (check base_url)."""

    status_code: Literal[404]


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` says how long the server wants us to wait."""

    status_code: Literal[429]


class InternalServerError(APIStatusError):
    """500-599: the server failed."""


class APIResponseValidationError(TamioError):
    """A 2xx answer whose body is not JSON, does not fit the documented schema, or is too large."""

    status_code: int
    path: str | None

    def __init__(
        self, message: str, *, status_code: int, path: str | None = None, page: int | None = None
    ) -> None:
        super().__init__(message, page=page)
        self.status_code = status_code
        #: The JSON path msgspec reported, for example ``$.tickets[3].created_at``.
        self.path = path


class IncompleteListingError(TamioError):
    """A listing delivered every ticket it could, but cannot show it delivered them all.

    Raised after the last ticket was yielded, never instead of yielding: the tickets you got
    are real and unique. ``missing`` lists what is known to be uncovered as ``(start, end)``
    positions of the listing as it stood at its first page (estimates when it moved);
    ``stats`` are the listing's counters; ``resume_page`` is set only when a listing started
    there would deliver exactly the rest.
    """

    def __init__(
        self,
        message: str,
        *,
        stats: ListingStats,
        missing: tuple[tuple[int, int], ...] = (),
        resume_page: int | None = None,
    ) -> None:
        super().__init__(message)
        self.stats = stats
        self.missing = missing
        self.resume_page = resume_page


def _rebuild(cls: type[TamioError], args: tuple[object, ...]) -> TamioError:
    """Unpickle an error without its ``__init__``; pickle then restores ``__dict__``."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


class _ErrorBody(msgspec.Struct):
    """The documented error envelope; every field optional because error bodies vary."""

    message: str | None = None
    error: str | None = None


_error_body_decoder = msgspec.json.Decoder(_ErrorBody)


def status_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    page: int | None = None,
    now: float | None = None,
) -> APIStatusError:
    """Build the error for an error status: the one place that maps a status to a class."""
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    return cls(
        f"HTTP {status}: {_describe(body)}",
        status_code=status,
        body=body,
        headers=headers,
        page=page,
        now=now,
    )


def _describe(body: bytes) -> str:
    """The server's own message if the body carries one, else a short preview of the body."""
    try:
        parsed = _error_body_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        parsed = _ErrorBody()
    text = parsed.message or parsed.error
    if text is None:
        text = body[: _BODY_PREVIEW + 1].decode("utf-8", "replace").strip() or "(empty body)"
    return text if len(text) <= _BODY_PREVIEW else text[:_BODY_PREVIEW] + "..."


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts too."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # "-0000": RFC 9110 dates are GMT anyway
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        seconds = moment.timestamp() - (time.time() if now is None else now)
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
