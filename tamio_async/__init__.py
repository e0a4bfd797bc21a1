"""tamio-async: the fastest correct way to get every ticket from Tamio, with asyncio.

::

    async with TamioClient() as client:            # key from $TAMIO_API_KEY
        async for ticket in client.tickets.iterate(closed=False):
            print(ticket.id, ticket.title)
"""

from . import _logging as _logging  # TAMIO_LOG=debug|info|warning: library logs to stderr
from ._client import ListingOptions, PageOptions, PageResponse, TamioClient, Tickets
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_RETRY_STATUSES,
    DEFAULT_SPECULATIVE_PAGES,
    DEFAULT_TIMEOUT,
    RetryPolicy,
)
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    IncompleteListingError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TamioError,
)
from ._pagination import PageStream, TicketStream
from ._params import TicketFilters
from ._ratecontrol import RateLimit, RateState
from ._stats import ListingStats, Progress
from ._version import __version__
from .models import Asset, Client, Customer, Reply, Thumbnail, Ticket, TicketList

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "Asset",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ClientClosedError",
    "Customer",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_RETRY_STATUSES",
    "DEFAULT_SPECULATIVE_PAGES",
    "DEFAULT_TIMEOUT",
    "IncompleteListingError",
    "InternalServerError",
    "ListingOptions",
    "ListingStats",
    "NotFoundError",
    "PageOptions",
    "PageResponse",
    "PageStream",
    "PermissionDeniedError",
    "Progress",
    "RateLimit",
    "RateLimitError",
    "RateState",
    "Reply",
    "RetryPolicy",
    "TamioClient",
    "TamioError",
    "Thumbnail",
    "Ticket",
    "TicketFilters",
    "TicketList",
    "TicketStream",
    "Tickets",
    "__version__",
]
