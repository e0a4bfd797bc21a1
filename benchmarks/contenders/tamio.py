"""Contender 1: tamio_async, as its README shows (``list_all``, or ``iterate`` to stream)."""

from __future__ import annotations

import zlib

from benchmarks.contenders import Options, Tally
from tamio_async import TamioClient, Ticket


def _client(options: Options) -> TamioClient:
    if options.concurrency is None:  # the library's default
        return TamioClient(api_key=options.api_key, base_url=options.base_url)
    return TamioClient(
        api_key=options.api_key, base_url=options.base_url, max_concurrency=options.concurrency
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
