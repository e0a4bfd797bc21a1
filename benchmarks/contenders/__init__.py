"""The contenders: each is what a user would write to fetch the whole listing.

Each lives in its own module, written as its author would write it, deliberately independent
of the others. ``python -m benchmarks.contenders <name> '<json options>'`` runs one of them
once in a fresh process (see ``__main__``). This package imports nothing but the stdlib, so
a contender's "RSS after imports" counts only its own dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CONTENDERS", "Listing", "Options", "Tally"]

#: name -> (module, coroutine function taking `Options`)
CONTENDERS: dict[str, tuple[str, str]] = {
    "tamio_list_all": ("benchmarks.contenders.tamio", "list_all"),
    "tamio_iterate": ("benchmarks.contenders.tamio", "iterate"),
    "tamio_quota": ("benchmarks.contenders.tamio", "list_pages"),
    "aiohttp_json": ("benchmarks.contenders.aiohttp_json", "fetch_all"),
    "httpx_pydantic": ("benchmarks.contenders.httpx_pydantic", "fetch_all"),
    "gather_msgspec": ("benchmarks.contenders.gather_msgspec", "fetch_all"),
    "floor": ("benchmarks.contenders.floor", "fetch_all"),
    "gather_retry_after": ("benchmarks.contenders.gather_retry_after", "fetch_all"),
}


@dataclass(frozen=True)
class Options:
    """What every contender is told: where the listing is, and how wide to fetch."""

    base_url: str
    api_key: str
    per_page: int
    #: Requests in flight for concurrent contenders; None means "the library's default".
    concurrency: int | None = None
    # The quota scenario (q) only; the other contenders ignore these.
    #: A shard of the listing: its first page and last page (None: to the end).
    start_page: int = 1
    end_page: int | None = None
    #: tamio_async's rate control options, passed through as given (None: not set).
    rate_limit: str | None = None
    rate_limit_storage: str | None = None
    rate_limit_key: str | None = None


@dataclass(frozen=True)
class Tally:
    """What a streaming contender keeps: a count and the running id checksum (see _checksum)."""

    count: int
    crc: int


@dataclass(frozen=True)
class Listing:
    """A quota contender's result: the tickets, and what it counted of the server's throttles."""

    tickets: list[Any]
    #: e.g. ``throttled`` (429s seen), ``retries``; reported as the result's ``client`` field.
    stats: dict[str, Any] = field(default_factory=dict)
