"""The contenders: each is what a user would write to fetch the whole listing.

Each lives in its own module, written as its author would write it, deliberately independent
of the others. ``python -m benchmarks.contenders <name> '<json options>'`` runs one of them
once in a fresh process (see ``__main__``). This package imports nothing but the stdlib, so
a contender's "RSS after imports" counts only its own dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONTENDERS", "Options", "Tally"]

#: name -> (module, coroutine function taking `Options`)
CONTENDERS: dict[str, tuple[str, str]] = {
    "tamio_list_all": ("benchmarks.contenders.tamio", "list_all"),
    "tamio_iterate": ("benchmarks.contenders.tamio", "iterate"),
    "aiohttp_json": ("benchmarks.contenders.aiohttp_json", "fetch_all"),
    "httpx_pydantic": ("benchmarks.contenders.httpx_pydantic", "fetch_all"),
    "gather_msgspec": ("benchmarks.contenders.gather_msgspec", "fetch_all"),
    "floor": ("benchmarks.contenders.floor", "fetch_all"),
}


@dataclass(frozen=True)
class Options:
    """What every contender is told: where the listing is, and how wide to fetch."""

    base_url: str
    api_key: str
    per_page: int
    #: Requests in flight for concurrent contenders; None means "the library's default".
    concurrency: int | None = None


@dataclass(frozen=True)
class Tally:
    """What a streaming contender keeps: a count and the running id checksum (see _checksum)."""

    count: int
    crc: int
