"""Contender 1: tamio_async, as its README shows (``list_all``, or ``iterate`` to stream)."""

from __future__ import annotations

import zlib

from benchmarks.contenders import Listing, Options, Tally
from tamio_async import TamioClient, Ticket


def _client(options: Options) -> TamioClient:
    if options.concurrency is None:  # the library's default
        return TamioClient(
            api_key=options.api_key,
            base_url=options.base_url,
            # None is each option's default: scenarios (a)-(c) leave the rate control alone.
            rate_limit=options.rate_limit,
            rate_limit_storage=options.rate_limit_storage,
            rate_limit_key=options.rate_limit_key,
        )
    return TamioClient(
        api_key=options.api_key,
        base_url=options.base_url,
        max_concurrency=options.concurrency,
        rate_limit=options.rate_limit,
        rate_limit_storage=options.rate_limit_storage,
        rate_limit_key=options.rate_limit_key,
    )


async def list_all(options: Options) -> list[Ticket]:
    """Collect every ticket."""
    async with _client(options) as client:
        return await client.tickets.list_all(per_page=options.per_page)


async def iterate(options: Options) -> Tally:
    """Stream every ticket, keeping only a count and a running checksum of the ids."""
    count = crc = 0
    async with _client(options) as client:
        async for ticket in client.tickets.iterate(per_page=options.per_page):
            count += 1
            crc = zlib.crc32(ticket.id.encode(), crc)
    return Tally(count, crc)


async def list_pages(options: Options) -> Listing:
    """Collect the tickets of pages ``start_page..end_page``, with what the listing counted."""
    tickets: list[Ticket] = []
    async with _client(options) as client:
        async with client.tickets.pages(
            per_page=options.per_page, start_page=options.start_page, end_page=options.end_page
        ) as pages:
            async for page in pages:
                tickets.extend(page.tickets)
        stats, rate = pages.stats, client.rate
    return Listing(
        tickets,
        {
            "throttled": stats.throttled,
            "retries": stats.retries,
            "pages_fetched": stats.pages_fetched,
            "rate": rate.rate,
            "learned": rate.learned,
            "limit": rate.limit,
            "fallback": rate.fallback,
        },
    )
